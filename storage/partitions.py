"""The fixes table: a TimescaleDB hypertable when the extension works, else native daily partitions."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import psycopg
from psycopg import sql

from vigil.errors import StorageError

log = logging.getLogger(__name__)

DAY_MS = 86_400_000

_COLUMNS = """
    device_id    bigint NOT NULL,
    ts           timestamptz NOT NULL,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    speed_kmh    real,
    heading_deg  real,
    accuracy_m   real,
    ignition     boolean,
    accel_x      real,
    accel_y      real,
    accel_z      real,
    battery_pct  real,
    odometer_m   double precision,
    seq          bigint,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, ts)
"""


async def create_fixes_table(conn: psycopg.AsyncConnection, partitioning: str) -> str:
    """Create ``fixes`` and record the chosen mode in ``storage_meta``; returns the mode.

    The primary key (device_id, ts) is the B-tree for per-device time ranges and makes a redelivered
    fix a no-op instead of a second row.
    """
    mode = "native"
    if partitioning in ("auto", "timescaledb"):
        reason = await _try_timescaledb(conn)
        if reason is None:
            mode = "timescaledb"
        elif partitioning == "timescaledb":
            raise StorageError(f"VIGIL_PARTITIONING=timescaledb but the extension is unavailable: {reason}")
        else:
            log.info("timescaledb unavailable (%s): using native daily partitions", reason)
    if mode == "timescaledb":
        await conn.execute(f"CREATE TABLE fixes ({_COLUMNS})")
        await conn.execute(
            "SELECT create_hypertable('fixes', 'ts', chunk_time_interval => INTERVAL '1 day')"
        )
        await conn.execute(
            "ALTER TABLE fixes SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'ts')"
        )
        await conn.execute("SELECT add_compression_policy('fixes', INTERVAL '7 days')")
    else:
        await conn.execute(f"CREATE TABLE fixes ({_COLUMNS}) PARTITION BY RANGE (ts)")
        await conn.execute("CREATE INDEX fixes_ts_brin ON fixes USING brin (ts)")
    await conn.execute(
        "INSERT INTO storage_meta (key, value) VALUES ('fixes_mode', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (mode,),
    )
    return mode


async def _try_timescaledb(conn: psycopg.AsyncConnection) -> str | None:
    """None when the extension is in place, else why not. Runs in a savepoint so failure is harmless."""
    try:
        async with conn.transaction():
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        return str(exc).splitlines()[0]
    return None


async def fixes_mode(conn: psycopg.AsyncConnection) -> str:
    cur = await conn.execute("SELECT value FROM storage_meta WHERE key = 'fixes_mode'")
    row = await cur.fetchone()
    return row[0] if row else "unknown"


def partition_name(day: int) -> str:
    return "fixes_p" + day_start(day).strftime("%Y%m%d")


def day_start(day: int) -> dt.datetime:
    """Start of UTC day number ``day`` (days since the Unix epoch)."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=int(day))


def days_of(ts_ms: np.ndarray) -> np.ndarray:
    """Distinct UTC day numbers touched by fix times in ms."""
    return np.unique(np.asarray(ts_ms, dtype=np.int64) // DAY_MS)


async def ensure_day_partitions(conn: psycopg.AsyncConnection, days: list[int]) -> list[int]:
    """Create the daily partitions of ``days`` that are missing; returns the days created.

    Safe against a concurrent writer creating the same partition.
    """
    created = []
    for day in days:
        stmt = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF fixes FOR VALUES FROM ({}) TO ({})"
        ).format(
            sql.Identifier(partition_name(day)),
            sql.Literal(day_start(day)),
            sql.Literal(day_start(day + 1)),
        )
        try:
            async with conn.transaction():
                await conn.execute(stmt)
            created.append(day)
        except (psycopg.errors.DuplicateTable, psycopg.errors.InvalidObjectDefinition):
            # Another writer won the race (or the partition exists under the same name).
            continue
    return created
