"""Alarm flows over real Mosquitto and PostgreSQL: a flooding sensor, supervision of silent devices, and
the operator stream resuming after a reconnect without a gap."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx

from storage import devices
from tests.alarm_helpers import StreamReader, fetch, home_event, home_heartbeat, logged_in, publish, wait_for
from tests.helpers import make_settings


async def test_a_flooding_sensor_makes_one_alarm_with_count_1000(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    await devices.provision(runtime.db, ["kit-flood"], kind="home", owner="cust-1")
    t = (int(time.time()) - 30) * 1000
    repeats = [home_event("kit-flood", i, t + i, "water_leak", f"w-{i}", sensor="basement") for i in range(1000)]
    await publish(mqtt_url, repeats + repeats[:50])  # and the first 50 delivered twice

    rows = await wait_for(runtime.db, "SELECT count FROM alarms", lambda r: r and r[0][0] >= 1000, timeout=60)
    await asyncio.sleep(2.5)  # a sweep round: nothing may be applied twice by the second path
    rows = await fetch(runtime.db, "SELECT type, count, first_ts < last_ts FROM alarms")
    assert rows == [("water_leak", 1000, True)]
    assert await fetch(runtime.db, "SELECT count(*) FROM notifications") == [(3,)]
    audit = await fetch(runtime.db, "SELECT kind, detail FROM alarm_audit ORDER BY id")
    kinds = [k for k, _ in audit]
    assert kinds[0] == "raised" and kinds.count("notified") == 1 and set(kinds[1:]) == {"repeated", "notified"}
    assert len(audit) < 1000 and audit[-1][1]["count"] == 1000  # repeats folded per batch


async def test_offline_after_silence_and_cleared_when_heartbeats_resume(mqtt_url, database_url, runtime_factory):
    settings = dataclasses.replace(make_settings(mqtt_url, database_url), alarm_offline_home_s=4,
                                   alarm_supervision_every_s=1)
    runtime = await runtime_factory(settings)
    await devices.provision(runtime.db, ["kit-hb", "kit-quiet"], kind="home", owner="cust-1")
    sql = "SELECT active, count FROM alarms a JOIN devices d ON d.id = a.device_id WHERE a.type = 'offline'"
    seq = 0

    async def beat(seconds: float, battery: float = 90.0) -> None:
        nonlocal seq
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            seq += 1
            await publish(mqtt_url, [home_heartbeat("kit-hb", seq, int(time.time() * 1000), battery)])
            await asyncio.sleep(0.5)

    await beat(6.0)
    assert await fetch(runtime.db, sql) == []  # alive all along: no alarm
    assert await wait_for(runtime.db, sql, bool, timeout=20) == [(True, 1)]
    await beat(4.0, battery=8.0)
    assert await wait_for(runtime.db, sql, lambda r: r == [(False, 1)], timeout=10) == [(False, 1)]
    low = await wait_for(runtime.db, "SELECT active, sensor FROM alarms WHERE type = 'low_battery'", bool, timeout=10)
    assert low == [(True, None)]  # 8 % in the heartbeats, raised by the scan
    # kit-quiet was never heard of: nothing to supervise.
    assert await fetch(runtime.db, "SELECT count(*) FROM alarms a JOIN devices d ON d.id = a.device_id"
                                   " WHERE d.device_id = 'kit-quiet'") == [(0,)]
    audit = await fetch(runtime.db, "SELECT x.kind FROM alarm_audit x JOIN alarms a ON a.id = x.alarm_id"
                                    " WHERE a.type = 'offline' ORDER BY x.id")
    assert [k for (k,) in audit] == ["raised", "notified", "cleared"]


async def test_the_stream_resumes_from_last_event_id_without_gaps(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    await devices.provision(runtime.db, [f"kit-s{i}" for i in range(6)], kind="home", owner="cust-1")
    t = (int(time.time()) - 5) * 1000
    op9 = await logged_in(runtime, "op-9", "operator")
    async with StreamReader(runtime.http_url, op9, after=0) as first:
        await publish(mqtt_url, [home_event(f"kit-s{i}", 1, t, "smoke", f"s-{i}") for i in range(3)])
        seen = await first.wait_for(lambda ev: sum(e["kind"] == "notified" for _, e in ev) == 3)
    last = seen[-1][0]
    # While disconnected: three more alarms and operator actions.
    await publish(mqtt_url, [home_event(f"kit-s{i}", 1, t, "smoke", f"s-{i}") for i in range(3, 6)])
    await wait_for(runtime.db, "SELECT count(*) FROM alarm_audit", lambda r: r[0][0] >= 12)
    async with httpx.AsyncClient(base_url=runtime.http_url) as http:
        for alarm_id in (seen[0][1]["alarm"]["id"], seen[-1][1]["alarm"]["id"]):
            r = await http.post(f"/v1/operator/alarms/{alarm_id}/acknowledge", headers=op9)
            assert r.status_code == 200
    async with StreamReader(runtime.http_url, op9, last_event_id=str(last)) as resumed:
        await resumed.wait_for(lambda ev: sum(e["kind"] == "acknowledged" for _, e in ev) == 2)
    ids = [i for (i,) in await fetch(runtime.db, "SELECT id FROM alarm_audit ORDER BY id")]
    assert [i for i, _ in seen] + [i for i, _ in resumed.events] == ids  # every audit row once, in order
    # A stream opened without a cursor starts from now.
    async with StreamReader(runtime.http_url, op9) as fresh:
        await asyncio.sleep(0.5)
        assert fresh.events == []


async def test_events_the_bus_never_brought_are_swept_from_storage(mqtt_url, database_url, runtime_factory):
    """The alarm service in another process than the gateway (in-process bus: it sees no batch) still
    applies every stored event once, from the catch-up sweep of device_events."""
    gateway = await runtime_factory(make_settings(mqtt_url, database_url), parts=frozenset({"gateway"}))
    alarms = await runtime_factory(make_settings(mqtt_url, database_url), parts=frozenset({"alarms"}))
    await devices.provision(gateway.db, ["kit-sweep"], kind="home", owner="cust-1")
    t = (int(time.time()) - 5) * 1000
    events = [home_event("kit-sweep", 1, t, "armed", "a-1"), home_event("kit-sweep", 2, t + 1, "motion", "m-1"),
              home_event("kit-sweep", 3, t + 2, "water_leak", "w-1")]
    await publish(mqtt_url, events + events)
    rows = await wait_for(alarms.db, "SELECT type, count FROM alarms ORDER BY type", lambda r: len(r) == 2)
    await asyncio.sleep(2.5)
    assert await fetch(alarms.db, "SELECT type, count FROM alarms ORDER BY type") == rows == [
        ("intrusion", 1), ("water_leak", 1)]
    assert alarms.metrics.get("vigil_alarm_events_total", "sweep") == 3
