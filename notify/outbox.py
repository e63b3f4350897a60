"""The outbox table: notices are stored before anything is sent, once per dedup key."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from storage.db import Database


@dataclass(frozen=True, slots=True)
class Notice:
    dedup_key: str      # the same key is the same notice: a replayed event never notifies twice
    recipient: str      # customer (owner) id, or the centre's supervisor line
    channel: str        # push | sms | email | supervisor
    subject: str
    body: str
    event_ts: dt.datetime  # when what the notice is about happened (UTC)


async def enqueue(db: Database, notices: list[Notice], *, now: dt.datetime, max_age: dt.timedelta) -> int:
    """Store notices; returns how many were new. A notice about something older than ``max_age`` (late
    data) is stored as ``suppressed``: on record, never pushed."""
    if not notices:
        return 0
    async with db.connection() as conn, conn.transaction():
        return await enqueue_on(conn, notices, now=now, max_age=max_age)


async def enqueue_on(conn: psycopg.AsyncConnection, notices: list[Notice], *, now: dt.datetime,
                     max_age: dt.timedelta) -> int:
    """:func:`enqueue` inside the caller's transaction, so notices commit with what caused them. (In
    pipeline mode the returned count is only known once the pipeline has synced.)"""
    if not notices:
        return 0
    cutoff = now - max_age
    rows = [(n.dedup_key, n.recipient, n.channel, n.subject, n.body, n.event_ts,
             "suppressed" if n.event_ts < cutoff else "pending", now) for n in notices]
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO notifications (dedup_key, recipient, channel, subject, body, event_ts, status,"
            " next_attempt_at)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
            " %s::timestamptz[], %s::text[], %s::timestamptz[])"
            " ON CONFLICT (dedup_key) DO NOTHING",
            [list(col) for col in zip(*rows)],
        )
        return cur.rowcount
