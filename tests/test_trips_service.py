"""Trips end to end: fixes over MQTT → trip processor → trips table → API; restart resumes its state."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import aiomqtt
import httpx
import numpy as np
import pytest

from simulators.cars import encode_fix_message
from storage import devices
from tests.helpers import add_account, count_rows, login, make_settings, wait_for_rows
from vigil.settings import parse_mqtt_url

START_MS = (int(time.time()) // 86_400 - 1) * 86_400_000 + 10 * 3_600_000  # yesterday 10:00 UTC: daytime


def drive(t0_ms: int, lat0: float, lon0: float, seconds: int, kmh: float, brake_at: int | None = None):
    """1 Hz fixes driving north at ``kmh``; optionally braking 50→0 km/h in 3 s at second ``brake_at``."""
    speed = np.full(seconds, kmh, dtype=float)
    if brake_at is not None:
        speed[brake_at:brake_at + 3] = [kmh * 2 / 3, kmh / 3, 0.0]
        speed[brake_at + 3:brake_at + 8] = 0.0
    dist = np.concatenate([[0.0], np.cumsum(speed[:-1] / 3.6)])
    lat = lat0 + dist / 111_320.0
    return [{"ts": t0_ms + i * 1000, "lat": float(lat[i]), "lon": lon0, "speed_kmh": float(speed[i]),
             "heading_deg": 0.0, "accuracy_m": 5.0, "ignition": True} for i in range(seconds)]


def parked(t0_ms: int, lat: float, lon: float, seconds: int, every: int = 30):
    return [{"ts": t0_ms + i * 1000, "lat": lat, "lon": lon, "speed_kmh": 0.0, "heading_deg": 0.0,
             "accuracy_m": 5.0, "ignition": False} for i in range(0, seconds, every)]


async def publish(mqtt_url: str, device: str, fixes: list[dict], seq0: int) -> int:
    host, port = parse_mqtt_url(mqtt_url)
    async with aiomqtt.Client(host, port) as client:
        for k in range(0, len(fixes), 10):
            await client.publish(f"vigil/v1/car/{device}/fix", encode_fix_message(device, seq0 + k, fixes[k:k + 10]),
                                 qos=1)
    return seq0 + len(fixes)


def first_trip():
    fixes = drive(START_MS, 60.17, 24.94, 240, 50.0, brake_at=120)  # ~3 km with one harsh brake
    end = fixes[-1]
    return fixes + parked(end["ts"] + 1000, end["lat"], end["lon"], 600)


def second_trip(after_ms: int, lat: float):
    fixes = drive(after_ms + 1000, lat, 24.94, 180, 40.0)  # ~2 km, smooth
    end = fixes[-1]
    return fixes + parked(end["ts"] + 1000, end["lat"], end["lon"], 300)


async def test_trips_appear_in_the_api_and_survive_a_restart(mqtt_url, database_url, runtime_factory):
    settings = make_settings(mqtt_url, database_url)
    runtime = await runtime_factory(settings)
    await devices.provision(runtime.db, ["trip-car"], kind="car", owner="cust-t")
    await add_account(runtime.db, "tina", customer_id="cust-t")
    one = first_trip()
    two = second_trip(one[-1]["ts"], one[-1]["lat"])
    seq = await publish(mqtt_url, "trip-car", one + two[:90], 1)  # trip 1, and trip 2 half driven
    assert await wait_for_rows(runtime.db, "trips", 1) == 1
    assert await wait_for_rows(runtime.db, "fixes", len(one) + 90) == len(one) + 90
    await asyncio.sleep(0.3)
    await runtime.stop()  # mid-trip: the processor saves its state; the next one resumes the open trip

    runtime = await runtime_factory(settings)
    await publish(mqtt_url, "trip-car", two[90:], seq)
    assert await wait_for_rows(runtime.db, "trips", 2) == 2
    await asyncio.sleep(1.0)
    assert await count_rows(runtime.db, "trips") == 2

    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=10) as http:
        http.headers.update(await login(http, "tina"))
        page = (await http.get("/v1/vehicles/trip-car/trips")).json()
        assert [t["distance_m"] for t in page["items"]] == [pytest.approx(3280, rel=0.1),
                                                              pytest.approx(2000, rel=0.1)]
        first, second = page["items"]
        assert first["events"]["harsh_braking"] == 1 and second["events"]["harsh_braking"] == 0
        assert 0 <= first["score"] < second["score"] == 100.0
        assert first["road_class_source"] == "speed_bands"
        detail = (await http.get(f"/v1/trips/{first['id']}")).json()
        assert detail["line"]["type"] == "LineString" and len(detail["line"]["coordinates"]) >= 200
        assert [e["type"] for e in detail["driving_events"]] == ["harsh_braking"]
        style = (await http.get("/v1/vehicles/trip-car/driving-style")).json()
        assert style["trips"] == 2 and style["distance_km"] == pytest.approx(5.28, rel=0.1)
        assert style["events"]["harsh_braking"] == 1 and first["score"] <= style["score"] < 100
        missing = await http.get("/v1/vehicles/nobody/trips")
        assert missing.status_code == 404 and missing.json()["type"].endswith("/not-found")
        assert (await http.get("/v1/trips/999999")).status_code == 404


async def test_late_fixes_recompute_the_closed_trip(mqtt_url, database_url, runtime_factory):
    """A box that lost 40 s of trip 1 sends them after trip 2 closed: trip 1 is recomputed with them."""
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    runtime.trip_processor.save_every_s = 0.5
    await devices.provision(runtime.db, ["late-car"], kind="car")
    one = first_trip()  # the harsh brake is at seconds 120-123
    missing = one[100:140]
    two = second_trip(one[-1]["ts"], one[-1]["lat"])
    seq = await publish(mqtt_url, "late-car", one[:100] + one[140:] + two, 1)
    assert await wait_for_rows(runtime.db, "trips", 2) == 2
    async with runtime.db.connection() as conn:
        cur = await conn.execute("SELECT event_counts->>'harsh_braking', distance_m FROM trips ORDER BY start_ts")
        before = await cur.fetchall()
    assert before[0][0] == "0"  # the brake was in the missing part

    await publish(mqtt_url, "late-car", missing, seq)
    for _ in range(100):
        if runtime.metrics.get("vigil_trips_recomputed_total"):
            break
        await asyncio.sleep(0.1)
    async with runtime.db.connection() as conn:
        cur = await conn.execute("SELECT event_counts->>'harsh_braking', distance_m FROM trips ORDER BY start_ts")
        after = await cur.fetchall()
    assert len(after) == 2
    assert after[0][0] == "1" and after[1] == before[1]
    assert after[0][1] == pytest.approx(before[0][1], rel=0.02)


async def test_crash_is_published_as_a_device_event(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    runtime.trip_processor.step_every_s = 0.2
    await devices.provision(runtime.db, ["crash-car"], kind="car")
    fixes = drive(START_MS, 60.17, 24.94, 120, 50.0)
    for i, f in enumerate(fixes):
        f["accel_g"] = [3.2, 0.4, 0.0] if i == 60 else [0.0, 0.0, 0.0]  # an impact of 3.2 g at second 60
    await publish(mqtt_url, "crash-car", fixes, 1)
    assert await wait_for_rows(runtime.db, "device_events", 1, timeout=5) == 1  # at once, not at trip end
    async with runtime.db.connection() as conn:
        cur = await conn.execute("SELECT type, (extract(epoch FROM ts) * 1000)::bigint, value FROM device_events")
        (kind, ts_ms, value), = await cur.fetchall()
    assert kind == "crash" and ts_ms == fixes[60]["ts"] and value == pytest.approx(3.22, abs=0.01)


async def test_night_is_judged_in_the_devices_local_time(mqtt_url, database_url, runtime_factory):
    """22:00-22:07 UTC is night in Helsinki (UTC+2 in winter, 00:00 local) but not in UTC."""
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    await devices.provision(runtime.db, ["car-utc"], kind="car")
    await devices.provision(runtime.db, ["car-hel"], kind="car", timezone="Europe/Helsinki")
    with pytest.raises(ValueError):
        await devices.provision(runtime.db, ["car-x"], kind="car", timezone="Mars/Olympus")
    start = _winter_evening_ms()
    for device in ("car-utc", "car-hel"):
        fixes = drive(start, 60.17, 24.94, 240, 50.0)
        end = fixes[-1]
        await publish(mqtt_url, device, fixes + parked(end["ts"] + 1000, end["lat"], end["lon"], 300), 1)
    assert await wait_for_rows(runtime.db, "trips", 2) == 2
    await add_account(runtime.db, "night-operator", role="operator")
    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=10) as http:
        http.headers.update(await login(http, "night-operator"))
        utc = (await http.get("/v1/vehicles/car-utc/trips")).json()["items"]
        hel = (await http.get("/v1/vehicles/car-hel/trips")).json()["items"]
    assert utc[0]["night_share"] == 0.0 and utc[0]["sub_scores"]["time_of_day"] == 100.0
    assert hel[0]["night_share"] == 1.0 and hel[0]["sub_scores"]["time_of_day"] == 0.0


def _winter_evening_ms() -> int:
    """22:00 UTC on the most recent 15 January: Helsinki is on winter time (UTC+2) then."""
    today = dt.datetime.now(dt.timezone.utc)
    year = today.year if (today.month, today.day) > (1, 15) else today.year - 1
    return int(dt.datetime(year, 1, 15, 22, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
