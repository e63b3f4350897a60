"""Delivery guarantees on real Mosquitto and PostgreSQL: a message is acknowledged only once durable."""

from __future__ import annotations

import asyncio

import psycopg

from simulators.publisher import run_cars
from storage import devices
from tests.helpers import count_rows, make_settings, wait_for_rows


async def test_gateway_crash_before_durable_loses_nothing(mqtt_url, database_url, runtime_factory):
    settings = make_settings(mqtt_url, database_url)
    first = await runtime_factory(settings)
    ids = [f"dur-car-{i}" for i in range(10)]
    await devices.provision(first.db, ids, kind="car")
    # Hold the fixes table so nothing the gateway receives can become durable.
    blocker = await psycopg.AsyncConnection.connect(database_url)
    await blocker.execute("LOCK TABLE fixes IN ACCESS EXCLUSIVE MODE")
    try:
        published = await run_cars(mqtt_url, ids, fixes_per_car=30, realtime=False, fixes_per_message=5, seed=3)
        assert published == 300
        for _ in range(100):
            if first.metrics.get("vigil_ingest_messages_total") == 60:
                break
            await asyncio.sleep(0.05)
        assert first.metrics.get("vigil_ingest_messages_total") == 60  # all received …
        assert first.metrics.get("vigil_ingest_acked_total") == 0  # … none acknowledged
        await first.stop()  # the gateway goes away with 60 unacknowledged messages
    finally:
        await blocker.rollback()
        await blocker.close()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM fixes")
        assert (await cur.fetchone())[0] == 0

    second = await runtime_factory(settings)  # same client id: the broker resends the unacked messages
    assert await wait_for_rows(second.db, "fixes", 300) == 300
    await asyncio.sleep(0.5)
    assert await count_rows(second.db, "fixes") == 300
    for _ in range(100):
        if second.metrics.get("vigil_ingest_acked_total") == 60:
            break
        await asyncio.sleep(0.05)
    assert second.metrics.get("vigil_ingest_acked_total") == 60


async def test_redelivered_messages_are_stored_once(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    ids = [f"dup-car-{i}" for i in range(5)]
    await devices.provision(runtime.db, ids, kind="car")
    start_ms = 1_795_000_000_000
    for _ in range(2):  # the same fixes twice, as a device resending after a lost PUBACK would
        await run_cars(mqtt_url, ids, fixes_per_car=20, realtime=False, seed=9, start_ms=start_ms)
    assert await wait_for_rows(runtime.db, "fixes", 100) == 100
    for _ in range(100):
        if runtime.metrics.get("vigil_storage_duplicates_total") == 100:
            break
        await asyncio.sleep(0.05)
    assert runtime.metrics.get("vigil_storage_duplicates_total") == 100
    assert await count_rows(runtime.db, "fixes") == 100
