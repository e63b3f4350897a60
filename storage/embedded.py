"""The embedded database default: a private PostgreSQL from the ``pgserver`` wheel (no root, no apt)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server under ``data_dir``, reached over a Unix socket; ``stop`` shuts it down.

    pgserver keeps one server per data directory and stops it when its last user lets go, so a second
    ``vigil`` process on the same data dir shares the server instead of corrupting it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = Path(data_dir) / "postgres"
        self._server = None

    async def start(self, database: str = "vigil") -> str:
        """Start (or join) the server and return a libpq URL of ``database``, created if missing."""
        import pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(pgserver.get_server, self.pgdata, cleanup_mode="stop")
        exists = await asyncio.to_thread(
            self._server.psql, f"SELECT 1 FROM pg_database WHERE datname = '{database}';"
        )
        if "(1 row)" not in exists:
            await asyncio.to_thread(self._server.psql, f'CREATE DATABASE "{database}";')
        url = self._server.get_uri(database)
        log.info("embedded PostgreSQL at %s (data %s)", url, self.pgdata)
        return url

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.cleanup)
