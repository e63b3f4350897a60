"""Two customers' devices with a last fix and one trip each, a car geofence with an event, a pet fence and a
certificate: written through the storage and service functions, without the API."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from storage import FixWriter, devices
from storage import geofences as fence_store
from trips import EVENT_NAMES
from vigil.batch import FixBatch

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone.utc)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def certificate_context(directory: Path):
    """A certificate context with its own signing keys under ``directory`` (for ``make_app(certificates=)``)."""
    from api.certificate_service import CertificateContext
    from certificates.keys import KeyStore

    return CertificateContext(keys=KeyStore(directory), public_url="https://vigil.example")


async def seed_fix(db, code: int, ts: dt.datetime, lat: float, lon: float) -> None:
    """One fix of device ``code`` through the real writer (fixes and device_last_fix)."""
    ms = (ts - _EPOCH) // dt.timedelta(milliseconds=1)
    one = lambda v, t: np.array([v], t)  # noqa: E731
    await FixWriter(db).write(FixBatch(
        device=one(code, np.int64), ts_ms=one(ms, np.int64), lat=one(lat, np.float64), lon=one(lon, np.float64),
        speed_kmh=one(3.0, np.float32), heading_deg=one(0.0, np.float32), accuracy_m=one(8.0, np.float32),
        ignition=one(-1, np.int8), accel_x=one(np.nan, np.float32), accel_y=one(np.nan, np.float32),
        accel_z=one(np.nan, np.float32), seq=one(1, np.int64), received_ms=one(ms, np.int64)))


async def seed_fences(db, owner: str, car: str, pet: str) -> dict:
    """A car geofence of ``owner`` around ``car`` with one enter event, and a fence of ``pet``; their ids."""
    from api import fence_service
    from api.geofence_schemas import FenceIn, PetFenceIn

    fence = await fence_service.create_fence(db=db, owner=owner, feature=FenceIn.model_validate(
        {"geometry": {"type": "Point", "coordinates": [24.94, 60.17]},
         "properties": {"name": "home", "radius_m": 300.0, "vehicle_id": car}}))
    pet_fence = await fence_service.add_pet_fence(db=db, owner=owner, pet_id=pet, feature=PetFenceIn.model_validate(
        {"geometry": {"type": "Point", "coordinates": [24.94, 60.17]}, "properties": {"name": "garden",
                                                                                    "radius_m": 200.0}}))
    code = (await devices.lookup(db, [car]))[car].id
    ms = (T0 - _EPOCH) // dt.timedelta(milliseconds=1)
    await fence_store.write(db, {"device": [code], "fence": [fence["id"]], "kind": ["enter"], "ts": [ms],
                                 "since": [ms - 10_000], "lat": [60.17], "lon": [24.94], "notified": [True]}, None)
    return {"fence": fence["id"], "pet_fence": pet_fence["id"]}


async def seed_alarm(db, code: int, event_id: str) -> int:
    """A water-leak alarm of home kit ``code``, raised through the alarm handler at ``T0``; its id."""
    from alarms.handler import apply_device_events
    from alarms.model import AlarmConfig, DeviceEvent

    (alarm_id,) = await apply_device_events(
        db, [DeviceEvent(device=code, type="water_leak", ts=T0, event_id=event_id, received=T0)], AlarmConfig(), T0)
    return alarm_id


async def seed_certificate(db, ctx, car: str, owner: str) -> str:
    """A vehicle-usage certificate of ``car`` for the day of its trip; its id."""
    from api import certificate_service

    document = await certificate_service.create_vehicle_usage(
        db=db, ctx=ctx, vehicle_id=car, owner=owner, now=T0 + dt.timedelta(days=1),
        start=T0 - dt.timedelta(hours=9), end=T0 + dt.timedelta(hours=15))
    return json.loads(document)["certificate"]["id"]


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


async def seed_two_customers(db, certificates=None) -> dict:
    """alice (customer ``cust-a``) and bob (``cust-b``) with a car, a pet (with a last fix) and a home kit
    each, a geofence of the car with one event, a pet fence, a water-leak alarm of the home kit, and (given
    a certificate context) a certificate; and an operator ``olga``. Returns the ids by owner."""
    from tests.helpers import add_account

    await add_account(db, "alice", customer_id="cust-a")
    await add_account(db, "bob", customer_id="cust-b")
    await add_account(db, "olga", role="operator")
    out = {}
    for owner, tag in (("cust-a", "a"), ("cust-b", "b")):
        trip = await seed_car(db, f"car-{tag}", owner)
        (pet,) = await devices.provision(db, [f"pet-{tag}"], kind="pet", owner=owner)
        await seed_fix(db, pet.id, T0, 60.171, 24.941)
        (home,) = await devices.provision(db, [f"home-{tag}"], kind="home", owner=owner, status="provisioned")
        out[owner] = {"car": f"car-{tag}", "pet": f"pet-{tag}", "home": f"home-{tag}", "trip": trip,
                      **await seed_fences(db, owner, f"car-{tag}", f"pet-{tag}"),
                      "alarm": await seed_alarm(db, home.id, f"seed-{tag}")}
        if certificates is not None:
            out[owner]["cert"] = await seed_certificate(db, certificates, f"car-{tag}", owner)
    return out
