"""Writing fix batches with binary COPY, and reading positions back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import psycopg

from storage import partitions, pgcopy
from storage.db import Database
from vigil.batch import FixBatch

_STAGE_COLUMNS = (
    "device_id, ts, lat, lon, speed_kmh, heading_deg, accuracy_m, ignition,"
    " accel_x, accel_y, accel_z, battery_pct, odometer_m, seq, received_at"
)
# Per-session staging table: COPY cannot skip duplicates, INSERT … ON CONFLICT can.
_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS fixes_stage"
    " (LIKE fixes INCLUDING DEFAULTS EXCLUDING CONSTRAINTS) ON COMMIT DELETE ROWS"
)
_MERGE = f"INSERT INTO fixes ({_STAGE_COLUMNS}) SELECT {_STAGE_COLUMNS} FROM fixes_stage ON CONFLICT DO NOTHING"
_LAST_FIX = """
INSERT INTO device_last_fix AS l
    (device_id, ts, lat, lon, speed_kmh, heading_deg, accuracy_m, ignition, received_at)
SELECT d, %s::timestamptz + t * interval '1 millisecond', la, lo, sp, hd, acc, ig,
       %s::timestamptz + r * interval '1 millisecond'
FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::float8[], %s::real[], %s::real[], %s::real[],
            %s::bool[], %s::bigint[]) AS u(d, t, la, lo, sp, hd, acc, ig, r)
ON CONFLICT (device_id) DO UPDATE SET
    ts = excluded.ts, lat = excluded.lat, lon = excluded.lon, speed_kmh = excluded.speed_kmh,
    heading_deg = excluded.heading_deg, accuracy_m = excluded.accuracy_m,
    ignition = excluded.ignition, received_at = excluded.received_at
WHERE l.ts < excluded.ts
"""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _nullable(values: np.ndarray) -> list:
    return [None if x != x else x for x in values.tolist()]


def last_fix_params(batch: FixBatch) -> tuple:
    """Parameters of ``_LAST_FIX``: the newest fix of each device in the batch (vectorised pick)."""
    order = np.lexsort((batch.ts_ms, batch.device))
    dev = batch.device[order]
    last = order[np.append(dev[1:] != dev[:-1], True)]
    newest = batch.take(last)
    ignition = [None if i < 0 else bool(i) for i in newest.ignition.tolist()]
    return (
        _EPOCH, _EPOCH, newest.device.tolist(), newest.ts_ms.tolist(), newest.lat.tolist(), newest.lon.tolist(),
        _nullable(newest.speed_kmh), _nullable(newest.heading_deg), _nullable(newest.accuracy_m), ignition,
        newest.received_ms.tolist(),
    )


def copy_payload(batch: FixBatch) -> bytes:
    """The binary COPY stream of a batch, in ``_STAGE_COLUMNS`` order; NaN and -1 become NULL."""
    accel_null = np.isnan(batch.accel_x) | np.isnan(batch.accel_y) | np.isnan(batch.accel_z)
    C = pgcopy.Column
    return pgcopy.encode([
        C(batch.device),
        C(pgcopy.timestamptz(batch.ts_ms)),
        C(batch.lat),
        C(batch.lon),
        C(batch.speed_kmh, np.isnan(batch.speed_kmh)),
        C(batch.heading_deg, np.isnan(batch.heading_deg)),
        C(batch.accuracy_m, np.isnan(batch.accuracy_m)),
        C(pgcopy.boolean(batch.ignition), batch.ignition < 0),
        C(batch.accel_x, accel_null),
        C(batch.accel_y, accel_null),
        C(batch.accel_z, accel_null),
        C(batch.battery_pct, np.isnan(batch.battery_pct)),
        C(batch.odometer_m, np.isnan(batch.odometer_m)),
        C(batch.seq, batch.seq < 0),
        C(pgcopy.timestamptz(batch.received_ms)),
    ])


class FixWriter:
    """Stores batches: ensures their day partitions, then COPYs straight into ``fixes``.

    COPY cannot skip rows that are already there, so a batch that hits the (device_id, ts) key — a
    redelivery, nearly always — is rolled back to a savepoint and goes through a staging table and
    ``INSERT … ON CONFLICT DO NOTHING`` instead: about half the speed, paid only when it is needed.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known_days: set[int] = set()

    async def write(self, batch: FixBatch) -> int:
        """Store ``batch`` in one transaction; returns rows inserted (duplicates are not counted)."""
        if len(batch) == 0:
            return 0
        payload = copy_payload(batch)
        async with self.db.connection() as conn:
            if self.db.fixes_mode == "native":
                missing = [int(d) for d in partitions.days_of(batch.ts_ms) if int(d) not in self._known_days]
                if missing:
                    await partitions.ensure_day_partitions(conn, missing)
                    self._known_days.update(missing)
            async with conn.transaction(), conn.cursor() as cur:
                try:
                    async with conn.transaction():
                        async with cur.copy(f"COPY fixes ({_STAGE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as cp:
                            await cp.write(payload)
                    inserted = len(batch)
                except psycopg.errors.UniqueViolation:
                    await cur.execute(_CREATE_STAGE)
                    async with cur.copy(f"COPY fixes_stage ({_STAGE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as cp:
                        await cp.write(payload)
                    await cur.execute(_MERGE)
                    inserted = cur.rowcount
                await cur.execute(_LAST_FIX, last_fix_params(batch))
        return inserted


@dataclass(frozen=True, slots=True)
class Position:
    device_id: str
    ts: dt.datetime
    lat: float
    lon: float
    speed_kmh: float | None
    heading_deg: float | None
    accuracy_m: float | None
    ignition: bool | None


async def last_position(db: Database, device_id: str, *, kind: str | None = None,
                        owner: str | None = None) -> Position | None:
    """The newest fix of a device (optionally only if it is of ``kind`` and belongs to customer ``owner``;
    ``owner=None``: any owner, operator scope), or None."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT d.device_id, l.ts, l.lat, l.lon, l.speed_kmh, l.heading_deg, l.accuracy_m, l.ignition"
            " FROM devices d JOIN device_last_fix l ON l.device_id = d.id"
            " WHERE d.device_id = %s AND (%s::text IS NULL OR d.kind = %s) AND (%s::text IS NULL OR d.owner = %s)",
            (device_id, kind, kind, owner, owner),
        )
        row = await cur.fetchone()
    return Position(*row) if row else None


async def last_positions(db: Database, *, kind: str, limit: int, offset: int,
                         owner: str | None = None) -> list[Position]:
    """A page of devices of ``kind`` with their newest fix; only customer ``owner``'s unless None."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT d.device_id, l.ts, l.lat, l.lon, l.speed_kmh, l.heading_deg, l.accuracy_m, l.ignition"
            " FROM devices d JOIN device_last_fix l ON l.device_id = d.id"
            " WHERE d.kind = %s AND (%s::text IS NULL OR d.owner = %s) ORDER BY d.device_id LIMIT %s OFFSET %s",
            (kind, owner, owner, limit, offset),
        )
        return [Position(*row) for row in await cur.fetchall()]
