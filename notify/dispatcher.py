"""Sends due notices from the outbox with retries and back-off; survives restarts.

Each round claims due rows with ``FOR UPDATE SKIP LOCKED`` (several dispatchers never take the same
row), sends them and records the outcome in the same transaction. A notice is marked sent once its
sender returned; a crash between the send and the commit can repeat it once, which is why the dedup key
travels with it as the provider's idempotency key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Callable, Mapping

from notify.outbox import Notice
from notify.senders import Sender
from storage.db import Database

log = logging.getLogger(__name__)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Dispatcher:
    def __init__(self, *, db: Database, senders: Mapping[str, Sender], clock: Callable[[], dt.datetime] = _utcnow,
                 batch: int = 100, first_retry_s: float = 5.0, max_retry_s: float = 600.0,
                 max_attempts: int = 8, poll_s: float = 1.0) -> None:
        self.db, self.senders, self.clock = db, dict(senders), clock
        self.batch, self.first_retry_s, self.max_retry_s = batch, first_retry_s, max_retry_s
        self.max_attempts, self.poll_s = max_attempts, poll_s

    async def run(self) -> None:
        while True:
            sent = await self.send_due()
            if not sent:
                await asyncio.sleep(self.poll_s)

    async def send_due(self) -> int:
        """One round: send what is due now; returns how many notices were attempted."""
        now = self.clock()
        async with self.db.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id, dedup_key, recipient, channel, subject, body, event_ts, attempts FROM notifications"
                " WHERE status = 'pending' AND next_attempt_at <= %s ORDER BY next_attempt_at, id LIMIT %s"
                " FOR UPDATE SKIP LOCKED", (now, self.batch),
            )
            rows = await cur.fetchall()
            for row_id, key, recipient, channel, subject, body, event_ts, attempts in rows:
                notice = Notice(key, recipient, channel, subject, body, event_ts)
                error = await self._send(notice)
                if error is None:
                    await conn.execute(
                        "UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = %s,"
                        " last_error = NULL WHERE id = %s", (now, row_id))
                    continue
                tries = attempts + 1
                delay = min(self.first_retry_s * 2 ** (tries - 1), self.max_retry_s)
                await conn.execute(
                    "UPDATE notifications SET attempts = %s, last_error = %s, next_attempt_at = %s,"
                    " status = CASE WHEN %s THEN 'failed' ELSE 'pending' END WHERE id = %s",
                    (tries, error, now + dt.timedelta(seconds=delay), tries >= self.max_attempts, row_id))
        return len(rows)

    async def _send(self, notice: Notice) -> str | None:
        sender = self.senders.get(notice.channel)
        if sender is None:
            return f"no sender for channel {notice.channel}"
        try:
            await sender.send(notice)
        except Exception as exc:  # a channel's failure is data for the retry, never a crash
            log.warning("sending %s over %s failed: %r", notice.dedup_key, notice.channel, exc)
            return repr(exc)[:500]
        return None
