"""The device registry: provisioning and the look-ups the gateway and API need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storage.db import Database

KINDS = ("car", "home", "pet")
STATUSES = ("provisioned", "active", "suspended", "returned")


@dataclass(frozen=True, slots=True)
class Device:
    id: int
    device_id: str
    kind: str
    owner: str | None
    status: str


async def provision(
    db: Database, device_ids: Iterable[str], *, kind: str, owner: str | None = None, status: str = "active",
    timezone: str = "UTC",
) -> list[Device]:
    """Register devices (idempotent: an existing device keeps its code, kind and owner). ``timezone``:
    IANA name of where the device lives (night driving is judged in its local time)."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    ids = list(device_ids)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, owner, status, timezone)"
            " SELECT d, %s, %s, %s, %s FROM unnest(%s::text[]) AS d"
            " ON CONFLICT (device_id) DO NOTHING",
            (kind, owner, status, timezone, ids),
        )
    found = await lookup(db, ids)
    return [found[i] for i in ids]


async def lookup(db: Database, device_ids: Iterable[str]) -> dict[str, Device]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT id, device_id, kind, owner, status FROM devices WHERE device_id = ANY(%s)",
            (list(device_ids),),
        )
        return {row[1]: Device(*row) for row in await cur.fetchall()}


async def of_kinds(db: Database, kinds: Iterable[str]) -> dict[str, Device]:
    """Every device of ``kinds`` (the alarm lane keeps home kits and pet trackers cached)."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id, device_id, kind, owner, status FROM devices WHERE kind = ANY(%s)",
                                 (list(kinds),))
        return {row[1]: Device(*row) for row in await cur.fetchall()}


async def timezones(db: Database) -> dict[int, str]:
    """Device code → time zone, for the devices not in UTC."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id, timezone FROM devices WHERE timezone <> 'UTC'")
        return dict(await cur.fetchall())


async def set_status(db: Database, device_id: str, status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    async with db.connection() as conn:
        await conn.execute("UPDATE devices SET status = %s WHERE device_id = %s", (status, device_id))
