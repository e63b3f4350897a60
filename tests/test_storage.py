"""Storage against a real PostgreSQL: migrations, partitions, binary COPY round trip, idempotency."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from storage import Database, FixWriter, devices, fixes, partitions
from storage.migrations import MIGRATIONS, migrate
from vigil.batch import FixBatch

NOW_MS = 1_790_000_000_000  # 2026-09-21


def make_batch(device, ts_ms, **overrides) -> FixBatch:
    n = len(ts_ms)
    cols = dict(
        device=np.asarray(device, dtype=np.int64) * np.ones(n, dtype=np.int64),
        ts_ms=np.asarray(ts_ms),
        lat=np.linspace(60.1, 60.2, n),
        lon=np.linspace(24.9, 25.0, n),
        speed_kmh=np.full(n, 42.5),
        heading_deg=np.full(n, 90.0),
        accuracy_m=np.full(n, 4.0),
        ignition=np.ones(n),
        accel_x=np.full(n, 0.1),
        accel_y=np.full(n, -0.05),
        accel_z=np.full(n, 1.0),
        seq=np.arange(n),
        received_ms=np.asarray(ts_ms) + 500,
    )
    cols.update(overrides)
    return FixBatch(**cols)


async def test_migrations_are_idempotent(database_url):
    first = await Database.open(database_url)
    await first.close()
    second = await Database.open(database_url)
    try:
        async with second.connection() as conn:
            assert await migrate(conn) == []
            cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [r[0] for r in await cur.fetchall()] == [v for v, _, _ in MIGRATIONS]
    finally:
        await second.close()


async def test_native_partitions_fallback(database_url):
    db = await Database.open(database_url, partitioning="native", ahead_days=2)
    try:
        assert db.fixes_mode == "native"
        today = int(time.time() // 86_400)
        ahead = [partitions.partition_name(d) for d in range(today - 1, today + 3)]
        (car,) = await devices.provision(db, ["car-1"], kind="car")
        day = 86_400_000
        ts = NOW_MS + np.array([0, day, 2 * day])
        assert await FixWriter(db).write(make_batch(car.id, ts)) == 3
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'fixes'::regclass AND c.relkind = 'r' ORDER BY 1"
            )
            names = [r[0] for r in await cur.fetchall()]
            on_demand = [partitions.partition_name(int(d)) for d in partitions.days_of(ts)]
            assert names == sorted(set(ahead) | set(on_demand))
            cur = await conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'fixes' ORDER BY indexname"
            )
            defs = " ".join(r[0] for r in await cur.fetchall())
            assert "brin (ts)" in defs and "(device_id, ts)" in defs
    finally:
        await db.close()


async def test_auto_partitioning_records_its_choice(db):
    async with db.connection() as conn:
        assert await partitions.fixes_mode(conn) == db.fixes_mode
    assert db.fixes_mode in ("native", "timescaledb")


async def test_copy_round_trip_with_nulls_and_duplicates(db):
    car, other = await devices.provision(db, ["car-a", "car-b"], kind="car")
    ts = NOW_MS + np.arange(6) * 1000
    batch = make_batch(
        car.id,
        ts,
        speed_kmh=np.array([10, np.nan, 30, 40, 50, 60], dtype=np.float32),
        ignition=np.array([1, 0, -1, 1, 1, 0]),
        accel_x=np.array([0.1, np.nan, 0.1, 0.1, 0.1, 0.1]),
        seq=np.array([7, 7, -1, 8, 8, 9]),
    )
    writer = FixWriter(db)
    assert await writer.write(batch) == 6
    assert await writer.write(batch) == 0  # redelivery stores nothing twice
    assert await writer.write(make_batch(other.id, ts[:2])) == 2
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT ts, speed_kmh, ignition, accel_x, accel_y, seq FROM fixes WHERE device_id = %s ORDER BY ts",
            (car.id,),
        )
        rows = await cur.fetchall()
        cur = await conn.execute("SELECT count(*) FROM fixes")
        assert (await cur.fetchone())[0] == 8
    assert len(rows) == 6
    assert rows[0][0] == dt.datetime.fromtimestamp(NOW_MS / 1000, dt.timezone.utc)
    assert [r[1] for r in rows] == [10, None, 30, 40, 50, 60]
    assert [r[2] for r in rows] == [True, False, None, True, True, False]
    assert rows[1][3] is None and rows[1][4] is None  # accelerometer is all-or-nothing
    assert rows[0][3] == pytest.approx(0.1) and rows[0][4] == pytest.approx(-0.05)
    assert [r[5] for r in rows] == [7, 7, None, 8, 8, 9]

    pos = await fixes.last_position(db, "car-a", kind="car")
    assert pos.ts == dt.datetime.fromtimestamp((NOW_MS + 5000) / 1000, dt.timezone.utc)
    assert pos.lat == pytest.approx(60.2) and pos.speed_kmh == pytest.approx(60.0)
    assert pos.ignition is False


async def test_last_fix_ignores_late_older_fixes(db):
    (car,) = await devices.provision(db, ["car-late"], kind="car")
    writer = FixWriter(db)
    await writer.write(make_batch(car.id, [NOW_MS + 10_000]))
    await writer.write(make_batch(car.id, [NOW_MS], lat=np.array([1.0]), lon=np.array([2.0])))
    pos = await fixes.last_position(db, "car-late")
    assert pos.ts == dt.datetime.fromtimestamp((NOW_MS + 10_000) / 1000, dt.timezone.utc)
    assert await fixes.last_position(db, "car-late", kind="pet") is None
    assert await fixes.last_position(db, "nope") is None
