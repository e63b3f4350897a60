"""The notification outbox on a real PostgreSQL: once per key, late notices kept quiet, retries, restarts."""

from __future__ import annotations

import datetime as dt

from notify import Dispatcher, LoggingSender, Notice, enqueue

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)


class Channel:
    """A channel that records what it was given and fails its first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures, self.sent = failures, []

    async def send(self, notice: Notice) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("SMS gateway unreachable")
        self.sent.append(notice.dedup_key)


def notice(key: str, channel: str = "sms", age: dt.timedelta = dt.timedelta(0)) -> Notice:
    return Notice(key, "customer-1", channel, "Geofence", f"car left zone ({key})", NOW - age)


async def rows(db):
    async with db.connection() as conn:
        cur = await conn.execute("SELECT dedup_key, status, attempts FROM notifications ORDER BY id")
        return await cur.fetchall()


async def test_once_per_key_and_late_notices_are_kept_but_not_sent(db):
    assert await enqueue(db, [notice("a"), notice("b", age=2 * HOUR)], now=NOW, max_age=HOUR) == 2
    assert await enqueue(db, [notice("a")], now=NOW, max_age=HOUR) == 0  # a replayed event
    sms = Channel()
    dispatcher = Dispatcher(db=db, senders={"sms": sms}, clock=lambda: NOW)
    assert await dispatcher.send_due() == 1
    assert await dispatcher.send_due() == 0
    assert sms.sent == ["a"]
    assert await rows(db) == [("a", "sent", 1), ("b", "suppressed", 0)]


async def test_retries_with_back_off_across_a_restart(db):
    await enqueue(db, [notice("c")], now=NOW, max_age=HOUR)
    clock = [NOW]
    flaky = Channel(failures=2)
    first = Dispatcher(db=db, senders={"sms": flaky}, clock=lambda: clock[0], first_retry_s=5)
    assert await first.send_due() == 1                 # fails, retry in 5 s
    assert await first.send_due() == 0                 # not due yet
    clock[0] += dt.timedelta(seconds=5)
    assert await first.send_due() == 1                 # fails again, retry in 10 s
    clock[0] += dt.timedelta(seconds=9)
    restarted = Dispatcher(db=db, senders={"sms": flaky}, clock=lambda: clock[0], first_retry_s=5)
    assert await restarted.send_due() == 0             # the schedule survived the restart
    clock[0] += dt.timedelta(seconds=1)
    assert await restarted.send_due() == 1
    assert flaky.sent == ["c"]
    assert await rows(db) == [("c", "sent", 3)]


async def test_gives_up_after_max_attempts_and_unknown_channels_fail(db):
    await enqueue(db, [notice("d"), notice("e", channel="push")], now=NOW, max_age=HOUR)
    dispatcher = Dispatcher(db=db, senders={"sms": Channel(failures=99)}, clock=lambda: NOW, first_retry_s=0,
                            max_attempts=3)
    for _ in range(3):
        await dispatcher.send_due()
    assert sorted(await rows(db)) == [("d", "failed", 3), ("e", "failed", 3)]


async def test_logging_sender_is_the_default_channel(db, caplog):
    await enqueue(db, [notice("f", channel="email")], now=NOW, max_age=HOUR)
    caplog.set_level("INFO", logger="vigil.notify")
    await Dispatcher(db=db, senders={"email": LoggingSender("email")}, clock=lambda: NOW).send_due()
    assert "car left zone (f)" in caplog.text
    assert await rows(db) == [("f", "sent", 1)]
