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


async def test_backpressure_when_postgres_stalls(mqtt_url, database_url, runtime_factory):
    """A stalled database stops acknowledgements; the broker then stops sending (its in-flight window,
    100 in the test Mosquitto), so the gateway holds a bounded number of messages and loses none."""
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    ids = [f"bp-car-{i:02d}" for i in range(50)]
    await devices.provision(runtime.db, ids, kind="car")
    blocker = await psycopg.AsyncConnection.connect(database_url)
    await blocker.execute("LOCK TABLE fixes IN ACCESS EXCLUSIVE MODE")
    try:
        publisher = asyncio.create_task(
            run_cars(mqtt_url, ids, fixes_per_car=40, realtime=False, seed=4)  # 2000 messages
        )
        await asyncio.sleep(3)
        received = runtime.metrics.get("vigil_ingest_messages_total")
        assert 0 < received <= 100 + 50  # the broker's window (+ the batch being assembled)
        assert runtime.metrics.get("vigil_ingest_acked_total") == 0
        lag = runtime.metrics.snapshot()["vigil_ingest_unacked_batches"][""]
        assert lag >= 1
    finally:
        await blocker.rollback()
        await blocker.close()
    assert await asyncio.wait_for(publisher, 60) == 2000
    assert await wait_for_rows(runtime.db, "fixes", 2000) == 2000
    await asyncio.sleep(0.3)
    assert await count_rows(runtime.db, "fixes") == 2000
