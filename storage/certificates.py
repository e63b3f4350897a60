"""Certificates in PostgreSQL, and the reads their content needs (fixes around a moment, a period's
thinned track and event counts). Times are UTC ms in the arrays, datetimes at the edges."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from storage.db import Database

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS = "(extract(epoch FROM ts) * 1000)::bigint"


@dataclass(frozen=True, slots=True)
class Vehicle:
    code: int
    device_id: str
    owner: str | None
    timezone: str


@dataclass(frozen=True, slots=True)
class StoredCertificate:
    id: str
    kind: str
    vehicle_id: str
    owner: str | None
    body: bytes
    signature: bytes
    key_id: str
    created_at: dt.datetime


async def vehicle(db: Database, device_id: str) -> Vehicle | None:
    """The car ``device_id`` (None when there is no such car)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT id, device_id, owner, timezone FROM devices WHERE device_id = %s AND kind = 'car'",
            (device_id,))
        row = await cur.fetchone()
    return Vehicle(*row) if row else None


async def insert(db: Database, *, cert_id: str, kind: str, device_code: int, owner: str | None, body: bytes,
                 signature: bytes, key_id: str, created_at: dt.datetime) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO certificates (id, kind, device_id, owner, body, signature, key_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (cert_id, kind, device_code, owner, body, signature, key_id, created_at))


_SELECT = ("SELECT c.id, c.kind, d.device_id, c.owner, c.body, c.signature, c.key_id, c.created_at"
           " FROM certificates c JOIN devices d ON d.id = c.device_id")


async def get(db: Database, cert_id: str) -> StoredCertificate | None:
    async with db.connection() as conn:
        cur = await conn.execute(_SELECT + " WHERE c.id = %s", (cert_id,))
        row = await cur.fetchone()
    return _row(row) if row else None


async def list_for_vehicle(db: Database, device_code: int, *, owner: str | None, limit: int,
                           offset: int) -> list[StoredCertificate]:
    """A car's certificates, newest first (only ``owner``'s unless owner is None)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            _SELECT + " WHERE c.device_id = %s AND (%s::text IS NULL OR c.owner = %s)"
            " ORDER BY c.created_at DESC, c.id LIMIT %s OFFSET %s", (device_code, owner, owner, limit, offset))
        return [_row(r) for r in await cur.fetchall()]


def _row(row) -> StoredCertificate:
    return StoredCertificate(row[0], row[1], row[2], row[3], bytes(row[4]), bytes(row[5]), row[6], row[7])


async def fixes_between(db: Database, device_code: int, start_ms: int, end_ms: int) -> dict[str, np.ndarray]:
    """A device's fixes with start <= ts <= end, oldest first: ts_ms, lat, lon, speed_kmh, heading_deg,
    accuracy_m (NaN when not reported), ignition (1 on, 0 off, -1 not reported)."""
    start, end = _EPOCH + dt.timedelta(milliseconds=start_ms), _EPOCH + dt.timedelta(milliseconds=end_ms)
    async with db.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_MS}, lat, lon, speed_kmh, heading_deg, accuracy_m,"
            " CASE WHEN ignition IS NULL THEN -1 WHEN ignition THEN 1 ELSE 0 END"
            " FROM fixes WHERE device_id = %s AND ts BETWEEN %s AND %s ORDER BY ts", (device_code, start, end))
        rows = await cur.fetchall()
    cols = list(zip(*rows)) if rows else [()] * 7
    out = {"ts_ms": np.array(cols[0], np.int64), "ignition": np.array(cols[6], np.int8)}
    for name, col in zip(("lat", "lon", "speed_kmh", "heading_deg", "accuracy_m"), cols[1:6]):
        out[name] = np.array([np.nan if v is None else v for v in col], np.float64)
    return out


async def thinned_track(db: Database, device_code: int, start: dt.datetime | None,
                        end: dt.datetime | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts_ms, lat, lon) of the first fix of each minute in [start, end), oldest first: a period's map."""
    async with db.connection() as conn:
        cur = await conn.execute(
            f"SELECT DISTINCT ON (date_trunc('minute', ts)) {_MS}, lat, lon FROM fixes WHERE device_id = %s"
            " AND (%s::timestamptz IS NULL OR ts >= %s) AND (%s::timestamptz IS NULL OR ts < %s)"
            " ORDER BY date_trunc('minute', ts), ts", (device_code, start, start, end, end))
        rows = await cur.fetchall()
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    ts, lat, lon = zip(*rows)
    return np.array(ts, np.int64), np.array(lat, np.float64), np.array(lon, np.float64)


async def event_counts(db: Database, device_code: int, start: dt.datetime | None,
                       end: dt.datetime | None) -> dict[str, int]:
    """Driving events of a device in [start, end) by type, in trips or not (a crash while parked counts)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT type, count(*) FROM trip_events WHERE device_id = %s"
            " AND (%s::timestamptz IS NULL OR ts >= %s) AND (%s::timestamptz IS NULL OR ts < %s) GROUP BY type",
            (device_code, start, start, end, end))
        return {t: int(n) for t, n in await cur.fetchall()}
