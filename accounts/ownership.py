"""Devices belong to customers (devices.owner = the customer id) and move through an activation life cycle.

    provisioned ──activate──▶ active ◀──▶ suspended
         ▲                      │            │
         └──── re-provision ◀── returned ◀───┘   (any state may be returned)

Only an ``active`` device may publish (the gateway refuses the others). Returning a device ends its link
to the customer: the owner is cleared, so it disappears from that customer's routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database
from storage.devices import KINDS, STATUSES
from vigil.errors import Conflict, NotFound, RejectedInput

#: (from, to) pairs allowed; anything else is refused with reason ``invalid_transition`` (:class:`Conflict`).
TRANSITIONS = frozenset({
    ("provisioned", "active"), ("active", "suspended"), ("suspended", "active"),
    ("provisioned", "returned"), ("active", "returned"), ("suspended", "returned"),
    ("returned", "provisioned"),
})


@dataclass(frozen=True, slots=True)
class OwnedDevice:
    device_id: str
    kind: str
    owner: str | None
    status: str
    timezone: str


def check_transition(current: str, target: str) -> None:
    if target not in STATUSES:
        raise RejectedInput("invalid_status", f"status must be one of {STATUSES}")
    if (current, target) not in TRANSITIONS:
        raise Conflict("invalid_transition", f"a {current} device cannot become {target}")


_SELECT = "SELECT device_id, kind, owner, status, timezone FROM devices"


async def get_device(db: Database, device_id: str, *, owner: str | None) -> OwnedDevice:
    """A device of customer ``owner`` (None: anyone's, operator scope); otherwise :class:`NotFound`."""
    async with db.connection() as conn:
        cur = await conn.execute(_SELECT + " WHERE device_id = %s AND (%s::text IS NULL OR owner = %s)",
                                 (device_id, owner, owner))
        row = await cur.fetchone()
    if row is None:
        raise NotFound("device", device_id)
    return OwnedDevice(*row)


async def list_devices(db: Database, *, owner: str | None, kind: str | None, limit: int,
                       offset: int) -> list[OwnedDevice]:
    if kind is not None and kind not in KINDS:
        raise RejectedInput("invalid_kind", f"kind must be one of {KINDS}")
    async with db.connection() as conn:
        cur = await conn.execute(
            _SELECT + " WHERE (%s::text IS NULL OR owner = %s) AND (%s::text IS NULL OR kind = %s)"
            " ORDER BY device_id LIMIT %s OFFSET %s", (owner, owner, kind, kind, limit, offset))
        return [OwnedDevice(*row) for row in await cur.fetchall()]


async def change_status(db: Database, device_id: str, *, status: str, owner: str | None) -> OwnedDevice:
    """Move a device (of ``owner``, or anyone's when None) to ``status`` along :data:`TRANSITIONS`.
    Activating needs an owner; returning clears it."""
    async with db.connection() as conn, conn.transaction():
        cur = await conn.execute(_SELECT + " WHERE device_id = %s AND (%s::text IS NULL OR owner = %s) FOR UPDATE",
                                 (device_id, owner, owner))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("device", device_id)
        device = OwnedDevice(*row)
        check_transition(device.status, status)
        if status == "active" and device.owner is None:
            raise Conflict("no_owner", "assign the device to a customer before activating it")
        new_owner = None if status == "returned" else device.owner
        await conn.execute("UPDATE devices SET status = %s, owner = %s WHERE device_id = %s",
                           (status, new_owner, device_id))
    return OwnedDevice(device.device_id, device.kind, new_owner, status, device.timezone)


async def assign(db: Database, device_id: str, *, customer_id: str) -> OwnedDevice:
    """Give a device to a customer. Only a ``provisioned`` device changes hands: an active one must be
    returned first, so one customer's data never flows on under another's name unnoticed."""
    if not customer_id:
        raise RejectedInput("invalid_customer", "name the customer")
    async with db.connection() as conn, conn.transaction():
        cur = await conn.execute(_SELECT + " WHERE device_id = %s FOR UPDATE", (device_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("device", device_id)
        device = OwnedDevice(*row)
        if device.owner != customer_id and device.status != "provisioned":
            raise Conflict("invalid_transition",
                           f"a {device.status} device changes owner only once returned and re-provisioned")
        await conn.execute("UPDATE devices SET owner = %s WHERE device_id = %s", (customer_id, device_id))
    return OwnedDevice(device.device_id, device.kind, customer_id, device.status, device.timezone)
