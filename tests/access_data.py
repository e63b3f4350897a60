"""Two customers' devices with a last fix and one trip each, written straight to the database."""

from __future__ import annotations

import datetime as dt
import json

from storage import devices
from trips import EVENT_NAMES

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone.utc)


async def seed_car(db, device_id: str, owner: str | None, *, lat: float = 60.17, lon: float = 24.94) -> int:
    """A car of ``owner`` with a last fix at ``T0`` and one 10-minute trip; returns the trip id."""
    (car,) = await devices.provision(db, [device_id], kind="car", owner=owner)
    zeros = json.dumps({n: 0 for n in EVENT_NAMES})
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO device_last_fix (device_id, ts, lat, lon, speed_kmh, heading_deg, accuracy_m, ignition,"
            " received_at) VALUES (%s, %s, %s, %s, 0, 0, 5, false, %s)", (car.id, T0, lat, lon, T0))
        cur = await conn.execute(
            "INSERT INTO trips (device_id, start_ts, end_ts, start_lat, start_lon, end_lat, end_lon, distance_m,"
            " duration_s, moving_s, idle_s, max_speed_kmh, mean_speed_kmh, night_m, urban_m, extra_urban_m,"
            " highway_m, road_class_source, speeding_s, speeding_excess_kmh_s, n_fixes, event_counts,"
            " event_severity, score, score_smoothness, score_speed, score_time_of_day)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 5000, 600, 560, 40, 62, 32, 0, 5000, 0, 0, 'speed_bands', 0, 0,"
            " 600, %s, %s, 100, 100, 100, 100) RETURNING id",
            (car.id, T0 - dt.timedelta(minutes=10), T0, lat - 0.04, lon, lat, lon, zeros, zeros))
        (trip_id,) = await cur.fetchone()
    return trip_id


async def seed_two_customers(db) -> dict:
    """alice (customer ``cust-a``) and bob (``cust-b``) with a car, a pet and a home kit each, and an
    operator ``olga``. Returns the ids by owner."""
    from tests.helpers import add_account

    await add_account(db, "alice", customer_id="cust-a")
    await add_account(db, "bob", customer_id="cust-b")
    await add_account(db, "olga", role="operator")
    out = {}
    for owner, tag in (("cust-a", "a"), ("cust-b", "b")):
        trip = await seed_car(db, f"car-{tag}", owner)
        await devices.provision(db, [f"pet-{tag}"], kind="pet", owner=owner)
        await devices.provision(db, [f"home-{tag}"], kind="home", owner=owner, status="provisioned")
        out[owner] = {"car": f"car-{tag}", "pet": f"pet-{tag}", "home": f"home-{tag}", "trip": trip}
    return out
