"""Every protocol end to end over real Mosquitto into PostgreSQL: decoded values land in their columns."""

from __future__ import annotations

import asyncio
import json
import math
import time

import aiomqtt
import numpy as np
import pytest

from ingest import teltonika
from storage import devices
from tests.helpers import make_settings, wait_for_rows
from vigil.settings import parse_mqtt_url

NOW_MS = (int(time.time()) - 60) * 1000


async def fetch(db, sql: str, *args):
    async with db.connection() as conn:
        cur = await conn.execute(sql, args)
        return await cur.fetchall()


async def test_all_protocols_reach_the_database(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    await devices.provision(runtime.db, ["352093089612345"], kind="car")  # a Teltonika IMEI
    await devices.provision(runtime.db, ["alice:phone"], kind="car")  # an OwnTracks phone as a tracker
    await devices.provision(runtime.db, ["pet-7"], kind="pet")
    await devices.provision(runtime.db, ["home-3"], kind="home")

    avl = teltonika.encode(teltonika.AvlRecords.from_columns(
        ts_ms=[NOW_MS, NOW_MS + 1000, NOW_MS + 2000], lat=[45.4642, 45.4643, 0.0], lon=[9.19, 9.1901, 0.0],
        satellites=[9, 10, 0], speed_kmh=[50, 52, 0], heading_deg=[90, 91, 0], ignition=[1, 1, 1],
        odometer_m=[120_000, 120_014, 120_014], accel_x=[0.12, -0.4, 0.0], accel_y=0.0, accel_z=1.0,
    ))
    owntracks = {"_type": "location", "lat": 60.17, "lon": 24.94, "tst": NOW_MS // 1000, "acc": 12,
                 "vel": 4, "cog": 180, "batt": 77, "tid": "al", "t": "u", "conn": "w"}
    pet_fix = {"v": 1, "seq": 4, "fixes": [{"ts": NOW_MS, "lat": 60.2, "lon": 24.9, "accuracy_m": 8,
                                            "battery_pct": 64}]}
    pet_sos = {"v": 1, "seq": 5, "ts": NOW_MS + 500, "event_id": "sos-1", "lat": 60.2001, "lon": 24.9001,
               "accuracy_m": 9}
    home = {"v": 1, "seq": 9, "events": [
        {"ts": NOW_MS, "type": "armed", "event_id": "e1"},
        {"ts": NOW_MS + 10, "type": "water_leak", "event_id": "e2", "sensor": "kitchen", "battery_pct": 88}]}
    home_hb = {"v": 1, "seq": 10, "ts": NOW_MS + 20, "battery_pct": 90, "mains": True}

    host, port = parse_mqtt_url(mqtt_url)
    async with aiomqtt.Client(host, port) as client:
        await client.publish("vigil/v1/car/352093089612345/avl", avl, qos=1)
        await client.publish("owntracks/alice/phone", json.dumps(owntracks).encode(), qos=1)
        await client.publish("vigil/v1/pet/pet-7/fix", json.dumps(pet_fix).encode(), qos=1)
        await client.publish("vigil/v1/pet/pet-7/sos", json.dumps(pet_sos).encode(), qos=1)
        for _ in range(2):  # the replay of a home event is stored once
            await client.publish("vigil/v1/home/home-3/event", json.dumps(home).encode(), qos=1)
        await client.publish("vigil/v1/home/home-3/heartbeat", json.dumps(home_hb).encode(), qos=1)

    assert await wait_for_rows(runtime.db, "fixes", 4) == 4
    assert await wait_for_rows(runtime.db, "device_events", 4) == 4
    assert await wait_for_rows(runtime.db, "dead_letters", 1) == 1
    await asyncio.sleep(0.3)

    rows = await fetch(runtime.db,
        "SELECT d.device_id, (extract(epoch FROM f.ts) * 1000)::bigint, f.lat, f.lon, f.speed_kmh, f.heading_deg,"
        " f.accuracy_m, f.ignition, f.accel_x, f.battery_pct, f.odometer_m"
        " FROM fixes f JOIN devices d ON d.id = f.device_id ORDER BY d.device_id, f.ts")
    by_device = {}
    for r in rows:
        by_device.setdefault(r[0], []).append(r[1:])
    avl_rows = by_device["352093089612345"]
    assert [r[0] for r in avl_rows] == [NOW_MS, NOW_MS + 1000]  # the record without a GNSS fix is refused
    assert avl_rows[0][1:5] == (pytest.approx(45.4642), pytest.approx(9.19), 50.0, 90.0)
    assert avl_rows[0][6] is True and avl_rows[0][7] == pytest.approx(0.12)
    assert avl_rows[1][9] == 120_014.0 and avl_rows[1][7] == pytest.approx(-0.4)
    (phone,) = by_device["alice:phone"]
    assert phone[:6] == (NOW_MS, 60.17, 24.94, 4.0, 180.0, 12.0) and phone[8] == 77.0
    (pet,) = by_device["pet-7"]
    assert pet[:3] == (NOW_MS, 60.2, 24.9) and pet[5] == 8.0 and pet[8] == 64.0

    events = await fetch(runtime.db,
        "SELECT d.device_id, e.type, e.sensor, e.event_id, e.value, e.lat, e.lon"
        " FROM device_events e JOIN devices d ON d.id = e.device_id ORDER BY e.ts")
    assert [(e[0], e[1], e[2], e[3]) for e in events] == [
        ("home-3", "armed", None, "e1"), ("home-3", "water_leak", "kitchen", "e2"),
        ("home-3", "heartbeat", None, "hb-10"), ("pet-7", "sos", None, "sos-1")]
    assert events[1][4] == 88.0 and math.isclose(events[3][5], 60.2001) and math.isclose(events[3][6], 24.9001)

    (letter,) = await fetch(runtime.db, "SELECT topic, reason, detail, payload FROM dead_letters")
    assert letter[:3] == ("vigil/v1/car/352093089612345/avl", "gps_invalid", '{"fixes": [2]}')
    assert bytes(letter[3]) == avl
    assert np.isclose(runtime.metrics.get("vigil_storage_events_total"), 4)
