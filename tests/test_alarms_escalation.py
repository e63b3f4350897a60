"""The escalation chain on a real PostgreSQL with an injected clock: stages at T1 and T2, acknowledgement
stops it, a restart between stages resumes it with no step run twice, old events never escalate."""

from __future__ import annotations

import datetime as dt

import numpy as np
import psycopg
import pytest

from alarms import operations
from alarms.model import AlarmConfig
from alarms.service import AlarmService
from storage import devices
from tests.alarm_helpers import fetch
from vigil.events import EVENT_CODE, EventBatch
from vigil.metrics import Metrics

T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)
CONFIG = AlarmConfig().with_timers(30, 120, 300)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + dt.timedelta(seconds=seconds)


def events(device: int, types: list[str], ids: list[str], ts: dt.datetime = T0,
           received: dt.datetime | None = None) -> EventBatch:
    """Device events at ``ts``, received by the gateway at ``received`` (default: at once)."""
    n = len(types)
    ms = int(ts.timestamp() * 1000)
    received_ms = int((received or ts).timestamp() * 1000)
    return EventBatch(device=[device] * n, ts_ms=[ms] * n, type=[EVENT_CODE[t] for t in types],
                      value=np.full(n, np.nan), lat=np.full(n, np.nan), lon=np.full(n, np.nan),
                      accuracy_m=np.full(n, np.nan), seq=np.arange(n), received_ms=[received_ms] * n,
                      late=np.zeros(n), sensor=[None] * n, event_id=ids)


def service(db, clock) -> AlarmService:
    return AlarmService(db=db, bus=None, metrics=Metrics(), config=CONFIG, clock=clock)


async def steps(db) -> list[tuple[int, int]]:
    return [tuple(r) for r in await fetch(db, "SELECT alarm_id, step FROM alarm_steps ORDER BY alarm_id, step")]


async def notices(db, alarm_id: int) -> list[tuple[str, str]]:
    rows = await fetch(db, "SELECT split_part(dedup_key, ':', 4)::int, channel FROM notifications"
                           " WHERE dedup_key LIKE %s ORDER BY 1, 2", f"alarm:{alarm_id}:%")
    return [(r[0], r[1]) for r in rows]


async def test_stages_fire_at_t1_t2_and_survive_a_restart(db):
    (kit,) = await devices.provision(db, ["kit-esc"], kind="home", owner="cust-1")
    clock = Clock(T0)
    first = service(db, clock)
    (alarm_id,) = await first.handle(events(kit.id, ["water_leak"], ["w-1"]))
    assert await steps(db) == [(alarm_id, 0)]
    assert await notices(db, alarm_id) == [(0, "email"), (0, "push"), (0, "sms")]

    clock.at(29.9)
    assert await first.escalate() == 0
    clock.at(30.0)
    assert await first.escalate() == 1
    assert await steps(db) == [(alarm_id, 0), (alarm_id, 1)]
    alarm = await operations.get(db=db, alarm_id=alarm_id)
    assert (alarm["severity"], alarm["escalation_level"]) == ("critical", 1)  # major → critical
    assert alarm["next_step_at"] == (T0 + dt.timedelta(seconds=120)).isoformat()

    # Restart: a new service over the same database at the same instant runs nothing again.
    second = service(db, clock)
    assert await second.escalate() == 0
    clock.at(119)
    assert await second.escalate() == 0
    clock.at(121)
    assert await second.escalate() == 1
    assert await steps(db) == [(alarm_id, 0), (alarm_id, 1), (alarm_id, 2)]
    assert await notices(db, alarm_id) == [(0, "email"), (0, "push"), (0, "sms"), (1, "push"), (1, "sms"),
                                           (1, "supervisor"), (2, "sms"), (2, "supervisor")]

    await operations.acknowledge(db=db, alarm_id=alarm_id, operator="op-1", now=clock())
    clock.at(10_000)
    assert await service(db, clock).escalate() == 0
    assert len(await steps(db)) == 3
    kinds = [a["kind"] for a in (await operations.get(db=db, alarm_id=alarm_id))["audit"]]
    assert kinds == ["raised", "notified", "escalated", "escalated", "acknowledged"]


async def test_a_service_down_past_several_stages_runs_each_once(db):
    (kit,) = await devices.provision(db, ["kit-down"], kind="home", owner="cust-1")
    clock = Clock(T0)
    (alarm_id,) = await service(db, clock).handle(events(kit.id, ["smoke"], ["s-1"]))
    clock.at(400)  # the service was down from the raise until after T3
    restarted = service(db, clock)
    assert await restarted.escalate() == 1
    assert await restarted.escalate() == 0
    assert await steps(db) == [(alarm_id, s) for s in range(4)]
    assert (await operations.get(db=db, alarm_id=alarm_id))["next_step_at"] is None


async def test_clearing_stops_the_chain_and_old_events_never_escalate(db):
    (kit,) = await devices.provision(db, ["kit-clear"], kind="home", owner="cust-1")
    clock = Clock(T0)
    svc = service(db, clock)
    (alarm_id,) = await svc.handle(events(kit.id, ["power_loss"], ["p-1"]))
    clock.at(10)
    await svc.handle(events(kit.id, ["power_restored"], ["p-2"], ts=T0 + dt.timedelta(seconds=10)))
    clock.at(1000)
    assert await svc.escalate() == 0
    assert await steps(db) == [(alarm_id, 0)]
    assert (await operations.get(db=db, alarm_id=alarm_id))["state"] == "cleared_unack"

    # A leak 1000 s old when it arrived (a device flushing its buffer) is recorded, stale, with no notice
    # and no chain.
    (old_id,) = await svc.handle(events(kit.id, ["water_leak"], ["w-old"], ts=T0, received=clock()))
    old = await operations.get(db=db, alarm_id=old_id)
    assert old["stale"] is True and old["next_step_at"] is None
    clock.at(5000)
    assert await svc.escalate() == 0
    assert await notices(db, old_id) == []
    # A replay of the same event ids changes nothing.
    assert await svc.handle(events(kit.id, ["water_leak", "power_loss"], ["w-old", "p-1"])) == []
    counts = await fetch(db, "SELECT type, count FROM alarms ORDER BY id")
    assert counts == [("power_loss", 1), ("water_leak", 1)]


async def test_an_event_received_in_time_but_applied_late_still_escalates(db):
    """The alarm service was down for an hour; the sweep then applies a leak the gateway stored at once:
    not a replay, so it escalates (its raise stage runs now)."""
    (kit,) = await devices.provision(db, ["kit-late"], kind="home", owner="cust-1")
    clock = Clock(T0 + dt.timedelta(hours=1))
    (alarm_id,) = await service(db, clock).handle(events(kit.id, ["water_leak"], ["w-1"], ts=T0, received=T0))
    alarm = await operations.get(db=db, alarm_id=alarm_id)
    assert alarm["stale"] is False and await steps(db) == [(alarm_id, 0)]
    assert await fetch(db, "SELECT DISTINCT status FROM notifications") == [("pending",)]  # to be sent


async def test_the_audit_trail_is_append_only(db):
    (kit,) = await devices.provision(db, ["kit-audit"], kind="home", owner="cust-1")
    await service(db, Clock(T0)).handle(events(kit.id, ["tamper"], ["t-1"]))
    with pytest.raises(psycopg.errors.RaiseException):
        async with db.connection() as conn:
            await conn.execute("UPDATE alarm_audit SET actor = 'someone else'")
    assert await fetch(db, "SELECT DISTINCT actor FROM alarm_audit ORDER BY 1") == [("device",), ("system",)]
