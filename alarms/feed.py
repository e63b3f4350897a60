"""Wakes operator-stream readers when alarm audit rows commit (PostgreSQL LISTEN/NOTIFY).

The audit table is the stream; this only says "look again now". Readers also look on their own every
``poll_s``, so a lost notification (or a listener that could not connect) delays, never loses, an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from alarms.store import NOTIFY_CHANNEL
from storage.db import Database

log = logging.getLogger(__name__)


class AlarmFeed:
    def __init__(self, db: Database, poll_s: float = 1.0) -> None:
        self.db, self.poll_s = db, poll_s
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self.version = 0  # bumped on every notification: read it before querying, then wait(version)

    def _ensure_listening(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="alarm-feed")

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.db.pool.conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    await self._wake()  # anything committed while we were not listening
                    async for _ in conn.notifies():
                        await self._wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # readers keep polling meanwhile
                log.warning("alarm feed listener lost (%r); reconnecting", exc)
                await asyncio.sleep(1.0)

    async def _wake(self) -> None:
        async with self._changed:
            self.version += 1
            self._changed.notify_all()

    def start(self) -> None:
        self._ensure_listening()

    async def wait(self, seen: int) -> None:
        """Until a change commits after the reader saw ``version`` == ``seen``, or ``poll_s`` passes."""
        self._ensure_listening()
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.version != seen), self.poll_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
