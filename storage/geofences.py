"""Fences and geofence events in PostgreSQL: the SQL behind the geofence API and processor.

Fence rows come back as dicts with the device's external id (``device``) beside its code. Times are
timezone-aware UTC datetimes here and UTC ms in the processor's arrays.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
from psycopg.rows import dict_row

from storage import processor_state
from storage.db import Database

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_FENCE_SELECT = """
SELECT f.id, f.owner, f.scope, f.device_id AS device_code, d.device_id AS device, f.name, f.kind,
       f.geometry, f.radius_m, f.anti_flap, f.created_at, f.updated_at
FROM fences f LEFT JOIN devices d ON d.id = f.device_id
"""


async def create_fence(db: Database, *, owner: str, scope: str, device_code: int | None, name: str, kind: str,
                       geometry: dict, radius_m: float | None, anti_flap: dict) -> dict:
    async with db.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO fences (owner, scope, device_id, name, kind, geometry, radius_m, anti_flap)"
            " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb) RETURNING id",
            (owner, scope, device_code, name, kind, json.dumps(geometry), radius_m, json.dumps(anti_flap)))
        (fence_id,) = await cur.fetchone()
    return await get_fence(db, fence_id)


async def get_fence(db: Database, fence_id: int) -> dict | None:
    """An active (not deleted) fence, or None."""
    async with db.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_FENCE_SELECT + " WHERE f.id = %s AND f.deleted_at IS NULL", (fence_id,))
        return await cur.fetchone()


async def fence_owner(db: Database, fence_id: int) -> str | None:
    """The customer a fence belongs to, deleted or not (its past events stay), or None if there is none."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT owner FROM fences WHERE id = %s", (fence_id,))
        row = await cur.fetchone()
        return row[0] if row else None


async def list_fences(db: Database, *, owner: str | None, scopes: tuple[str, ...], device_code: int | None = None,
                      limit: int, offset: int) -> list[dict]:
    """Active fences of ``owner`` (None: everyone's) with a scope in ``scopes``, optionally of one device."""
    async with db.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            _FENCE_SELECT + " WHERE f.deleted_at IS NULL AND f.scope = ANY(%s)"
            " AND (%s::text IS NULL OR f.owner = %s) AND (%s::bigint IS NULL OR f.device_id = %s)"
            " ORDER BY f.id LIMIT %s OFFSET %s",
            (list(scopes), owner, owner, device_code, device_code, limit, offset))
        return await cur.fetchall()


async def update_fence(db: Database, fence_id: int, *, device_code: int | None, scope: str, name: str, kind: str,
                       geometry: dict, radius_m: float | None, anti_flap: dict) -> dict | None:
    async with db.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE fences SET scope = %s, device_id = %s, name = %s, kind = %s, geometry = %s::jsonb,"
            " radius_m = %s, anti_flap = %s::jsonb, updated_at = now() WHERE id = %s AND deleted_at IS NULL",
            (scope, device_code, name, kind, json.dumps(geometry), radius_m, json.dumps(anti_flap), fence_id))
        if cur.rowcount == 0:
            return None
    return await get_fence(db, fence_id)


async def delete_fence(db: Database, fence_id: int) -> bool:
    """Soft-delete; False when there was no such active fence."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "UPDATE fences SET deleted_at = now(), updated_at = now() WHERE id = %s AND deleted_at IS NULL",
            (fence_id,))
        return cur.rowcount == 1


async def add_pet_fence(db: Database, *, pet_code: int, check, **fields) -> dict:
    """Insert a pet's fence after ``check(existing_rows)`` accepted it, with the pet's row locked so two
    concurrent requests cannot both add a fifth fence."""
    async with db.connection() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM devices WHERE id = %s FOR UPDATE", (pet_code,))
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_FENCE_SELECT + " WHERE f.device_id = %s AND f.scope = 'pet' AND f.deleted_at IS NULL"
                          " ORDER BY f.id", (pet_code,))
        check(await cur.fetchall())
        cur = await conn.execute(
            "INSERT INTO fences (owner, scope, device_id, name, kind, geometry, radius_m, anti_flap)"
            " VALUES (%s, 'pet', %s, %s, 'circle', %s::jsonb, %s, %s::jsonb) RETURNING id",
            (fields["owner"], pet_code, fields["name"], json.dumps(fields["geometry"]), fields["radius_m"],
             json.dumps(fields["anti_flap"])))
        (fence_id,) = await cur.fetchone()
    return await get_fence(db, fence_id)


async def fence_set_version(db: Database) -> int:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT version FROM fence_set_version")
        return (await cur.fetchone())[0]


async def active_fences(db: Database) -> tuple[int, list[dict]]:
    """(version, every active fence) read in one snapshot, so the version matches the rows."""
    async with db.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur = await conn.execute("SELECT version FROM fence_set_version")
        (version,) = await cur.fetchone()
        rows = conn.cursor(row_factory=dict_row)
        await rows.execute(_FENCE_SELECT + " WHERE f.deleted_at IS NULL ORDER BY f.id")
        return version, await rows.fetchall()


async def device_owners(db: Database) -> tuple[np.ndarray, np.ndarray, list[str | None], list[str]]:
    """(device codes int64 sorted, is-car bool, owner, external id), for matching fences to devices."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id, kind = 'car', owner, device_id FROM devices ORDER BY id")
        rows = await cur.fetchall()
    return (np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], bool),
            [r[2] for r in rows], [r[3] for r in rows])


_INSERT_EVENTS = """
INSERT INTO geofence_events (device_id, fence_id, kind, ts, since, lat, lon, notified)
SELECT d, f, k, %(epoch)s + t * interval '1 millisecond', %(epoch)s + s * interval '1 millisecond', la, lo, n
FROM unnest(%(device)s::bigint[], %(fence)s::bigint[], %(kind)s::text[], %(ts)s::bigint[], %(since)s::bigint[],
            %(lat)s::float8[], %(lon)s::float8[], %(notified)s::bool[]) AS u(d, f, k, t, s, la, lo, n)
WHERE EXISTS (SELECT 1 FROM fences WHERE id = u.f)
ON CONFLICT (device_id, fence_id, ts, kind) DO NOTHING
"""


async def write(db: Database, events: dict | None, state: tuple[str, bytes, int] | None) -> int:
    """Store events (columns device, fence, kind names, ts, since (UTC ms), lat, lon, notified; replays
    are no-ops) and, optionally, the processor state ``(name, bytes, covers_received_before_ms)`` in one
    transaction. Returns events inserted."""
    inserted = 0
    async with db.connection() as conn, conn.transaction(), conn.cursor() as cur:
        if events and len(events["device"]):
            await cur.execute(_INSERT_EVENTS, dict(epoch=_EPOCH, **events))
            inserted = cur.rowcount
        if state is not None:
            await processor_state.save_on(cur, *state)
    return inserted


async def list_events(db: Database, *, owner: str | None, device: str | None, fence_id: int | None,
                      start: dt.datetime | None, end: dt.datetime | None, limit: int, offset: int) -> list[dict]:
    """Events in [start, end), oldest first, of fences owned by ``owner`` (None: all)."""
    async with db.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT e.id, d.device_id AS device, e.fence_id, f.name AS fence_name, e.kind, e.ts, e.since,"
            " e.lat, e.lon, e.notified FROM geofence_events e JOIN devices d ON d.id = e.device_id"
            " JOIN fences f ON f.id = e.fence_id"
            " WHERE (%(owner)s::text IS NULL OR f.owner = %(owner)s)"
            " AND (%(device)s::text IS NULL OR d.device_id = %(device)s)"
            " AND (%(fence)s::bigint IS NULL OR e.fence_id = %(fence)s)"
            " AND (%(start)s::timestamptz IS NULL OR e.ts >= %(start)s)"
            " AND (%(end)s::timestamptz IS NULL OR e.ts < %(end)s)"
            " ORDER BY e.ts, e.id LIMIT %(limit)s OFFSET %(offset)s",
            dict(owner=owner, device=device, fence=fence_id, start=start, end=end, limit=limit, offset=offset))
        return await cur.fetchall()


async def fixes_after(db: Database, device_code: int, after: dt.datetime, limit: int = 500) -> list[tuple]:
    """A device's fixes newer than ``after``: (ts, lat, lon, accuracy_m, speed_kmh), oldest first."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT ts, lat, lon, accuracy_m, speed_kmh FROM fixes WHERE device_id = %s AND ts > %s"
            " ORDER BY ts LIMIT %s", (device_code, after, limit))
        return await cur.fetchall()


async def last_fix_ts(db: Database, device_code: int) -> dt.datetime | None:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT ts FROM device_last_fix WHERE device_id = %s", (device_code,))
        row = await cur.fetchone()
    return row[0] if row else None
