"""Trips, driving events and processor state in PostgreSQL (written by the trip processor, read by the API)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
from psycopg.rows import dict_row

from storage.db import Database
from trips import EVENT_NAMES, Events, Trips

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_TRIP_COLUMNS = (
    "start_lat", "start_lon", "end_lat", "end_lon", "distance_m", "duration_s", "moving_s", "idle_s",
    "max_speed_kmh", "mean_speed_kmh", "night_m", "urban_m", "extra_urban_m", "highway_m", "speeding_s",
    "speeding_excess_kmh_s", "score", "score_smoothness", "score_speed", "score_time_of_day",
)
_INSERT_TRIPS = f"""
INSERT INTO trips (device_id, start_ts, end_ts, {", ".join(_TRIP_COLUMNS)}, n_fixes, event_counts,
                   event_severity, road_class_source)
SELECT d, %(epoch)s + s * interval '1 millisecond', %(epoch)s + e * interval '1 millisecond',
       {", ".join("c" + str(i) for i in range(len(_TRIP_COLUMNS)))}, nf, ec::jsonb, es::jsonb, %(source)s
FROM unnest(%(device)s::bigint[], %(start)s::bigint[], %(end)s::bigint[],
            {", ".join(f"%(c{i})s::float8[]" for i in range(len(_TRIP_COLUMNS)))},
            %(n_fixes)s::int[], %(counts)s::text[], %(severity)s::text[])
     AS u(d, s, e, {", ".join("c" + str(i) for i in range(len(_TRIP_COLUMNS)))}, nf, ec, es)
ON CONFLICT (device_id, start_ts) DO NOTHING
"""
_INSERT_EVENTS = """
INSERT INTO trip_events (device_id, trip_start_ts, ts, lat, lon, type, severity, value, duration_s)
SELECT d, CASE WHEN t < 0 THEN NULL ELSE %(epoch)s + t * interval '1 millisecond' END,
       %(epoch)s + s * interval '1 millisecond', la, lo, ty, sv, v, du
FROM unnest(%(device)s::bigint[], %(trip)s::bigint[], %(ts)s::bigint[], %(lat)s::float8[], %(lon)s::float8[],
            %(type)s::text[], %(severity)s::smallint[], %(value)s::real[], %(duration)s::real[])
     AS u(d, t, s, la, lo, ty, sv, v, du)
ON CONFLICT (device_id, ts, type) DO NOTHING
"""


def _named(matrix: np.ndarray) -> list[str]:
    return [json.dumps(dict(zip(EVENT_NAMES, row))) for row in matrix.tolist()]


async def write(db: Database, trips: Trips, events: Events, state: tuple[str, bytes, int] | None = None) -> int:
    """Store closed trips and events (replays are no-ops) and, optionally, the processor's state
    ``(name, bytes, covers_received_before_ms)`` in the same transaction. Returns trips inserted."""
    inserted = 0
    async with db.connection() as conn, conn.transaction(), conn.cursor() as cur:
        if len(trips):
            params = {f"c{i}": getattr(trips, name).tolist() for i, name in enumerate(_TRIP_COLUMNS)}
            params.update(
                epoch=_EPOCH, source=Trips.road_class_source, device=trips.device.tolist(),
                start=trips.start_ms.tolist(), end=trips.end_ms.tolist(), n_fixes=trips.n_fixes.tolist(),
                counts=_named(trips.event_count), severity=_named(trips.event_severity),
            )
            await cur.execute(_INSERT_TRIPS, params)
            inserted = cur.rowcount
        if len(events):
            await cur.execute(_INSERT_EVENTS, dict(
                epoch=_EPOCH, device=events.device.tolist(), trip=events.trip_start_ms.tolist(),
                ts=events.ts_ms.tolist(), lat=events.lat.tolist(), lon=events.lon.tolist(),
                type=[EVENT_NAMES[k] for k in events.kind.tolist()], severity=events.severity.tolist(),
                value=events.value.tolist(), duration=events.duration_s.tolist(),
            ))
        if state is not None:
            name, blob, covers_ms = state
            await cur.execute(
                "INSERT INTO processor_state (name, state, covers_received_before) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
                " covers_received_before = excluded.covers_received_before, saved_at = now()",
                (name, blob, _EPOCH + dt.timedelta(milliseconds=covers_ms)),
            )
    return inserted


async def load_state(db: Database, name: str) -> tuple[bytes, int] | None:
    """The saved state and the arrival time (UTC ms) it covers, or None."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT state, covers_received_before FROM processor_state WHERE name = %s", (name,)
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return bytes(row[0]), int((row[1] - _EPOCH).total_seconds() * 1000)


_TRIP_SELECT = """
SELECT t.id, d.device_id, t.start_ts, t.end_ts, t.start_lat, t.start_lon, t.end_lat, t.end_lon, t.distance_m,
       t.duration_s, t.moving_s, t.idle_s, t.max_speed_kmh, t.mean_speed_kmh, t.night_m, t.urban_m,
       t.extra_urban_m, t.highway_m, t.road_class_source, t.speeding_s, t.n_fixes, t.event_counts, t.score,
       t.score_smoothness, t.score_speed, t.score_time_of_day, t.processed_at, t.device_id AS code,
       t.speeding_excess_kmh_s, t.event_severity
FROM trips t JOIN devices d ON d.id = t.device_id
"""


async def list_trips(db: Database, device_id: str, *, start: dt.datetime | None, end: dt.datetime | None,
                     limit: int, offset: int) -> list[dict]:
    """A car's trips starting in [start, end), oldest first."""
    async with db.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            _TRIP_SELECT + " WHERE d.device_id = %s AND d.kind = 'car'"
            " AND (%s::timestamptz IS NULL OR t.start_ts >= %s) AND (%s::timestamptz IS NULL OR t.start_ts < %s)"
            " ORDER BY t.start_ts LIMIT %s OFFSET %s",
            (device_id, start, start, end, end, limit, offset),
        )
        return await cur.fetchall()


async def get_trip(db: Database, trip_id: int, *, owner: str | None = None,
                   ) -> tuple[dict, list[dict], list[tuple[float, float]]] | None:
    """A trip, its driving events, and its line (lon, lat) from the stored fixes; None when there is no
    such trip or (``owner`` given) its car is not that customer's."""
    async with db.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_TRIP_SELECT + " WHERE t.id = %s AND (%s::text IS NULL OR d.owner = %s)",
                          (trip_id, owner, owner))
        trip = await cur.fetchone()
        if trip is None:
            return None
        await cur.execute(
            "SELECT ts, lat, lon, type, severity, value, duration_s FROM trip_events"
            " WHERE device_id = %s AND trip_start_ts = %s ORDER BY ts",
            (trip["code"], trip["start_ts"]),
        )
        events = await cur.fetchall()
        line_cur = await conn.execute(
            "SELECT lon, lat FROM fixes WHERE device_id = %s AND ts BETWEEN %s AND %s ORDER BY ts",
            (trip["code"], trip["start_ts"], trip["end_ts"]),
        )
        line = [(r[0], r[1]) for r in await line_cur.fetchall()]
    return trip, events, line


async def recompute_bounds(db: Database, device: int, lo_ms: int, hi_ms: int) -> tuple[int, int] | None:
    """The span to recompute for late fixes in [lo, hi]: from the end of the device's last trip ending
    before ``lo`` (or ``lo`` minus a day) to the start of its first trip starting after ``hi``; None
    when no trip starts after ``hi`` (the late fixes belong to the still-open part)."""
    lo = _EPOCH + dt.timedelta(milliseconds=lo_ms)
    hi = _EPOCH + dt.timedelta(milliseconds=hi_ms)
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT max(end_ts) FROM trips WHERE device_id = %s AND end_ts <= %s),"
            " (SELECT min(start_ts) FROM trips WHERE device_id = %s AND start_ts >= %s)",
            (device, lo, device, hi),
        )
        before, after = await cur.fetchone()
    if after is None:
        return None
    start = before if before is not None else lo - dt.timedelta(days=1)
    return _ms(start), _ms(after)


def _ms(ts: dt.datetime) -> int:
    return int((ts - _EPOCH) / dt.timedelta(milliseconds=1))


async def replace_range(db: Database, device: int, start_ms: int, end_ms: int, trips: Trips, events: Events) -> None:
    """Replace a device's trips starting in [start, end) and their events by recomputed ones."""
    start = _EPOCH + dt.timedelta(milliseconds=start_ms)
    end = _EPOCH + dt.timedelta(milliseconds=end_ms)
    async with db.connection() as conn, conn.transaction():
        await conn.execute("DELETE FROM trip_events WHERE device_id = %s AND ts >= %s AND ts < %s",
                           (device, start, end))
        await conn.execute("DELETE FROM trips WHERE device_id = %s AND start_ts >= %s AND start_ts < %s",
                           (device, start, end))
    await write(db, trips, events)
