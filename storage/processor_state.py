"""Processors' saved state: one row per processor in ``processor_state`` (bytes + the arrival time covered).

Saved inside the caller's transaction, with what the processor wrote at that moment, so the state never
runs ahead of or behind its output. (storage/trips.py still inlines the same statement; it can use these.)
"""

from __future__ import annotations

import datetime as dt

import psycopg

from storage.db import Database

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


async def save_on(cur: psycopg.AsyncCursor, name: str, blob: bytes, covers_ms: int) -> None:
    """Upsert processor ``name``'s state covering fixes received before ``covers_ms`` (UTC ms)."""
    await cur.execute(
        "INSERT INTO processor_state (name, state, covers_received_before) VALUES (%s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
        " covers_received_before = excluded.covers_received_before, saved_at = now()",
        (name, blob, _EPOCH + dt.timedelta(milliseconds=covers_ms)))


async def load(db: Database, name: str) -> tuple[bytes, int] | None:
    """The saved state and the arrival time (UTC ms) it covers, or None."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT state, covers_received_before FROM processor_state WHERE name = %s",
                                 (name,))
        row = await cur.fetchone()
    if row is None:
        return None
    return bytes(row[0]), (row[1] - _EPOCH) // dt.timedelta(milliseconds=1)
