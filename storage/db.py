"""The database handle: an async psycopg 3 pool, migrated at open, plus where the fixes live."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import psycopg
from psycopg_pool import AsyncConnectionPool

from storage import migrations, partitions
from vigil.errors import StorageError

log = logging.getLogger(__name__)


class Database:
    def __init__(self, pool: AsyncConnectionPool, fixes_mode: str) -> None:
        self.pool = pool
        self.fixes_mode = fixes_mode

    @classmethod
    async def open(
        cls, url: str, *, partitioning: str = "auto", ahead_days: int = 3, min_size: int = 1, max_size: int = 8
    ) -> "Database":
        """Connect, apply pending migrations, create the coming days' partitions (native mode) and
        report how fixes are partitioned."""
        pool = AsyncConnectionPool(url, min_size=min_size, max_size=max_size, open=False)
        try:
            await pool.open(wait=True, timeout=30)
            async with pool.connection() as conn:
                await migrations.migrate(conn, partitioning)
                mode = await partitions.fixes_mode(conn)
                if mode == "native":
                    today = int(time.time() // 86_400)
                    await partitions.ensure_day_partitions(conn, list(range(today - 1, today + ahead_days + 1)))
        except (psycopg.Error, TimeoutError) as exc:
            await pool.close()
            raise StorageError(f"cannot open database: {exc}") from exc
        log.info(
            "fixes storage: %s",
            "TimescaleDB hypertable (1-day chunks, compressed by device)"
            if mode == "timescaledb"
            else "native PostgreSQL daily range partitions (BRIN on ts, B-tree on device, ts)",
        )
        return cls(pool, mode)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        async with self.pool.connection() as conn:
            yield conn
