"""The dead-letter table: rejected device messages, whole, with a machine-readable reason."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    reason: str
    detail: str
    payload: bytes


async def store(db: Database, letters: list[DeadLetter]) -> None:
    if not letters:
        return
    async with db.connection() as conn:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO dead_letters (topic, reason, detail, payload) VALUES (%s, %s, %s, %s)",
                [(d.topic, d.reason, d.detail, d.payload) for d in letters],
            )


async def counts_by_reason(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY reason")
        return {reason: n for reason, n in await cur.fetchall()}
