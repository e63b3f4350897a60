"""End to end on real components: simulator → Mosquitto → gateway → bus → PostgreSQL → API."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from simulators.publisher import run_cars
from storage import devices
from tests.helpers import add_account, count_rows, login, make_settings, wait_for_rows
from vigil.runtime import Runtime


async def run_pipeline(runtime: Runtime, cars: int, fixes_per_car: int) -> None:
    ids = [f"e2e-car-{i:03d}" for i in range(cars)]
    codes = {d.device_id: d.id for d in await devices.provision(runtime.db, ids, kind="car")}
    published = await run_cars(
        runtime.mqtt_url, ids, fixes_per_car=fixes_per_car, realtime=False, fixes_per_message=3, seed=7
    )
    expected = cars * fixes_per_car
    assert published == expected
    assert await wait_for_rows(runtime.db, "fixes", expected) == expected
    await asyncio.sleep(0.5)  # anything extra (a duplicate, a stray) would arrive now
    assert await count_rows(runtime.db, "fixes") == expected
    assert await count_rows(runtime.db, "dead_letters") == 0

    async with runtime.db.connection() as conn:
        cur = await conn.execute(
            "SELECT d.device_id, count(*), max(f.ts), count(DISTINCT f.seq)"
            " FROM fixes f JOIN devices d ON d.id = f.device_id GROUP BY d.device_id ORDER BY 1"
        )
        per_car = await cur.fetchall()
        cur = await conn.execute(
            "SELECT DISTINCT ON (device_id) device_id, lat, lon FROM fixes ORDER BY device_id, ts DESC"
        )
        newest = {row[0]: row[1:] for row in await cur.fetchall()}
    assert [r[0] for r in per_car] == ids
    assert all(r[1] == fixes_per_car for r in per_car)
    assert all(r[3] == -(-fixes_per_car // 3) for r in per_car)  # seq per 3-fix message

    await add_account(runtime.db, "e2e-operator", role="operator")  # the cars have no owner: an operator sees them
    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=10) as http:
        http.headers.update(await login(http, "e2e-operator"))
        for device_id, _, newest_ts, _ in per_car:
            r = await http.get(f"/v1/vehicles/{device_id}/position")
            assert r.status_code == 200
            body = r.json()
            assert dt.datetime.fromisoformat(body["ts"]) == newest_ts
            assert (body["lat"], body["lon"]) == pytest.approx(newest[codes[device_id]])
            assert body["age_s"] >= 0
        page = (await http.get("/v1/vehicles", params={"limit": cars})).json()
        assert [v["device_id"] for v in page["items"]] == ids
        missing = await http.get("/v1/vehicles/no-such-car/position")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["type"].endswith("/not-found")
        health = (await http.get("/healthz")).json()
        assert health["status"] == "ok" and health["fixes_storage"] == runtime.db.fixes_mode
        metrics = (await http.get("/metrics")).text
        assert f"vigil_storage_fixes_total {expected}" in metrics


async def test_end_to_end_in_process_bus(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    await run_pipeline(runtime, cars=20, fixes_per_car=25)


async def test_end_to_end_kafka_bus(mqtt_url, database_url, kafka_bootstrap, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url, kafka=kafka_bootstrap))
    await run_pipeline(runtime, cars=20, fixes_per_car=25)
