"""Versioned, idempotent migrations applied at start under an advisory lock.

A migration is a SQL file (``migrations/NNNN_name.sql``) or a Python step for the one schema choice that
depends on the server: how the fixes table is partitioned.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Awaitable, Callable

import psycopg

from storage import partitions

log = logging.getLogger(__name__)

#: Arbitrary but fixed key: only one process migrates a database at a time.
_LOCK_KEY = 0x56_49_47_49_4C  # "VIGIL"

Step = Callable[[psycopg.AsyncConnection, str], Awaitable[None]]


def _sql(name: str) -> Step:
    async def run(conn: psycopg.AsyncConnection, partitioning: str) -> None:
        text = resources.files("storage").joinpath("migrations", name).read_text()
        await conn.execute(text)

    return run


async def _fixes(conn: psycopg.AsyncConnection, partitioning: str) -> None:
    await partitions.create_fixes_table(conn, partitioning)


MIGRATIONS: tuple[tuple[int, str, Step], ...] = (
    (1, "devices, dead letters, last fix", _sql("0001_devices_deadletters.sql")),
    (2, "fixes table, time-partitioned", _fixes),
    (3, "MQTT credentials", _sql("0003_mqtt_credentials.sql")),
    (4, "device events", _sql("0004_device_events.sql")),
    (5, "trips, trip events, processor state", _sql("0005_trips.sql")),
    (6, "device time zone", _sql("0006_device_timezone.sql")),
    (7, "notification outbox", _sql("0007_notifications.sql")),
    (8, "geofences, geofence events", _sql("0008_geofences.sql")),
    (9, "alarms, audit, escalation steps", _sql("0009_alarms.sql")),
    (10, "accounts, refresh tokens, confirmations", _sql("0010_accounts.sql")),
    (11, "certificates", _sql("0011_certificates.sql")),
    (12, "customer profiles", _sql("0012_customers.sql")),
)


async def migrate(conn: psycopg.AsyncConnection, partitioning: str = "auto") -> list[int]:
    """Apply pending migrations, each in its own transaction; return the versions applied now."""
    await conn.set_autocommit(True)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    applied: list[int] = []
    try:
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
        for version, name, step in MIGRATIONS:
            if version in done:
                continue
            async with conn.transaction():
                await step(conn, partitioning)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                )
            log.info("applied migration %04d %s", version, name)
            applied.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
