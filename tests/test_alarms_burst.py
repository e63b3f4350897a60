"""The alarm service's latency paths on a real PostgreSQL: a burst of queued bus batches applied in one
transaction (exactly once, full audit, outbox and stream), alarm ids drawn in the read round trip, and
the alarm lane's device cache."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import socket

import uvicorn

from accounts import AuthConfig, Caller, issue_access
from alarms.model import AlarmConfig
from alarms.service import AlarmService
from api.alarm_app import create_alarm_app
from bus.base import EVENTS
from bus.memory import MemoryBus
from ingest.registry import DeviceRegistry
from storage import devices
from tests.alarm_helpers import StreamReader, fetch, wait_for
from tests.test_alarms_escalation import events
from vigil.events import EventBatch
from vigil.metrics import Metrics

T0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


class CountingClock:
    """The service reads its clock once per transaction it applies: ``calls`` counts them."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dt.datetime:
        self.calls += 1
        return T0 + dt.timedelta(milliseconds=self.calls)


async def _serve(app) -> tuple[uvicorn.Server, asyncio.Task, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    return server, task, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_a_burst_of_queued_batches_is_applied_in_one_transaction(db):
    n = 20
    kits = await devices.provision(db, [f"kit-burst-{i}" for i in range(n)], kind="home", owner="cust-burst")
    auth = AuthConfig.ephemeral()
    app = create_alarm_app(db=db, auth=auth)
    token = issue_access(auth, Caller(0, "op-burst", "operator", None), now=dt.datetime.now(dt.timezone.utc))[0]
    server, serving, url = await _serve(app)
    bus = MemoryBus()
    await bus.start()
    clock = CountingClock()
    service = AlarmService(db=db, bus=bus, metrics=Metrics(), config=AlarmConfig(), clock=clock, timers=False)
    bus.subscribe(EVENTS, "alarms")
    try:
        async with StreamReader(url, {"Authorization": f"Bearer {token}"}) as stream:
            # Queued before the service reads: one batch per kit (a leak each), the first kit's batch a
            # second time (the main gateway's copy) and a repeat of the first kit's leak.
            batches = [events(k.id, ["water_leak"], [f"w-{k.id}"], ts=T0) for k in kits]
            batches += [batches[0], events(kits[0].id, ["water_leak"], ["w-again"], ts=T0 + dt.timedelta(seconds=1))]
            for batch in batches:
                await bus.enqueue(EVENTS, batch)
            task = asyncio.create_task(service.run())
            await wait_for(db, "SELECT count(*) FROM alarm_audit", lambda r: r[0][0] >= 2 * n + 1)
            for _ in range(100):
                if len(stream.events) >= 2 * n + 1:
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await bus.stop()
        server.should_exit = True
        await serving
        await app.state.alarm_feed.close()

    assert clock.calls == 1  # the whole burst in one transaction
    rows = await fetch(db, "SELECT device_id, count, raised_at FROM alarms ORDER BY device_id")
    assert [(r[0], r[1]) for r in rows] == [(k.id, 2 if k is kits[0] else 1) for k in kits]
    assert {r[2] for r in rows} == {T0 + dt.timedelta(milliseconds=1)}
    assert await fetch(db, "SELECT count(*), count(DISTINCT dedup_key) FROM notifications") == [(3 * n, 3 * n)]
    assert await fetch(db, "SELECT channel, count(*) FROM notifications GROUP BY 1 ORDER BY 1") == [
        ("email", n), ("push", n), ("sms", n)]
    audit = await fetch(db, "SELECT kind, count(*) FROM alarm_audit GROUP BY 1 ORDER BY 1")
    assert audit == [("notified", n), ("raised", n), ("repeated", 1)]
    assert await fetch(db, "SELECT count(*) FROM alarm_inputs") == [(n + 1,)]
    kinds = [body["kind"] for _, body in stream.events]
    assert len(stream.events) == 2 * n + 1 and sorted(kinds) == sorted(["raised", "notified"] * n + ["repeated"])
    assert [i for i, _ in stream.events] == sorted(i for i, _ in stream.events)


async def test_applied_twice_the_burst_changes_nothing(db):
    """Exactly once across transactions too: the same events again (the sweep, a redelivery) are skipped,
    and the ids drawn for them leave no alarm behind."""
    kits = await devices.provision(db, ["kit-twice-1", "kit-twice-2"], kind="home", owner="cust-burst")
    service = AlarmService(db=db, bus=None, metrics=Metrics(), clock=CountingClock())
    batch = EventBatch.concat([events(k.id, ["smoke"], [f"s-{k.id}"], ts=T0) for k in kits])
    first = await service.handle(batch)
    assert len(first) == 2
    assert await service.handle(batch) == []
    assert await fetch(db, "SELECT count(*), sum(count) FROM alarms") == [(2, 2)]
    assert await fetch(db, "SELECT count(*) FROM alarm_audit") == [(4,)]
    # A new alarm after that still gets its own, higher id.
    later = await service.handle(events(kits[0].id, ["power_loss"], ["p-1"], ts=T0))
    assert later[0] > max(first)
    assert await fetch(db, "SELECT count(*) FROM alarms") == [(3,)]


async def test_the_lane_device_cache_answers_without_the_database(db):
    (kit,) = await devices.provision(db, ["kit-cache"], kind="home", owner="a")
    (pet,) = await devices.provision(db, ["pet-cache"], kind="pet", owner="a")
    await devices.provision(db, ["car-cache"], kind="car", owner="a")
    registry = DeviceRegistry(db, ttl_s=30.0)
    assert await registry.warm(("home", "pet")) == 2
    # Changed in the database after the warm-up: the cache answers as it was, so it did not look.
    await devices.set_status(db, "kit-cache", "suspended")
    found = await registry.resolve({"kit-cache", "pet-cache"})
    assert found == {"kit-cache": kit, "pet-cache": pet}
    # A device outside the cached kinds is still looked up.
    assert (await registry.resolve({"car-cache"}))["car-cache"].kind == "car"
    # The refresh loop picks the change up.
    refresh = asyncio.create_task(registry.keep_warm(("home", "pet"), every_s=0.05))
    await asyncio.sleep(0.2)
    refresh.cancel()
    await asyncio.gather(refresh, return_exceptions=True)
    assert (await registry.resolve({"kit-cache"}))["kit-cache"] == dataclasses.replace(kit, status="suspended")
