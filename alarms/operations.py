"""Service functions behind the operator and customer routes. Keyword arguments only; ``owner`` None is
the assistance centre's scope, a customer id restricts to that customer's devices (NotFound otherwise).
"""

from __future__ import annotations

import datetime as dt

from alarms import transition
from alarms.handler import act
from alarms.model import SEVERITIES
from alarms.store import SNAPSHOT
from customers.model import as_json
from customers.store import find_profile
from storage.db import Database
from vigil.errors import NotFound

_RANK = "array_position(ARRAY[" + ", ".join(f"'{s}'" for s in SEVERITIES) + "], a.severity)"
_FROM = " FROM alarms a JOIN devices d ON d.id = a.device_id"


async def acknowledge(*, db: Database, alarm_id: int, operator: str, now: dt.datetime) -> dict:
    return await act(db, alarm_id, lambda a: transition.acknowledge(a, operator, now), now)


async def claim(*, db: Database, alarm_id: int, operator: str, now: dt.datetime) -> dict:
    return await act(db, alarm_id, lambda a: transition.assign(a, operator, operator, now, force=False), now)


async def assign(*, db: Database, alarm_id: int, operator: str, assignee: str, now: dt.datetime) -> dict:
    return await act(db, alarm_id, lambda a: transition.assign(a, operator, assignee, now, force=True), now)


async def clear(*, db: Database, alarm_id: int, operator: str, now: dt.datetime) -> dict:
    return await act(db, alarm_id, lambda a: transition.clear(a, operator, now), now)


async def add_note(*, db: Database, alarm_id: int, operator: str, text: str, now: dt.datetime) -> dict:
    return await act(db, alarm_id, lambda a: (a, transition.note(a, operator, text)), now)


async def resolve(*, db: Database, alarm_id: int, operator: str, outcome: str, note: str | None,
                  now: dt.datetime) -> dict:
    return await act(db, alarm_id, lambda a: transition.resolve(a, operator, outcome, note, now), now)


async def feedback(*, db: Database, alarm_id: int, owner: str, kind: str, text: str | None, now: dt.datetime) -> dict:
    return await act(db, alarm_id, lambda a: transition.customer_feedback(a, owner, kind, text, now), now,
                     owner=owner)


async def queue(*, db: Database, include_resolved: bool = False, limit: int = 100, offset: int = 0) -> list[dict]:
    """The centre's queue: open alarms, most severe first, then oldest first."""
    where = "" if include_resolved else " WHERE a.resolved_at IS NULL"
    async with db.connection() as conn:
        cur = await conn.execute(f"SELECT {SNAPSHOT}{_FROM}{where} ORDER BY {_RANK} DESC, a.raised_at, a.id"
                                 " LIMIT %s OFFSET %s", (limit, offset))
        return [r[0] for r in await cur.fetchall()]


async def get(*, db: Database, alarm_id: int, owner: str | None = None) -> dict:
    """One alarm with its audit trail (oldest first)."""
    async with db.connection() as conn:
        cur = await conn.execute(f"SELECT {SNAPSHOT}{_FROM} WHERE a.id = %s AND (%s::text IS NULL OR d.owner = %s)",
                                 (alarm_id, owner, owner))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("alarm", str(alarm_id))
        cur = await conn.execute("SELECT id, at, kind, actor, detail FROM alarm_audit WHERE alarm_id = %s ORDER BY id",
                                 (alarm_id,))
        trail = [{"id": r[0], "at": r[1], "kind": r[2], "actor": r[3], "detail": r[4]} for r in await cur.fetchall()]
    if owner is not None:  # the centre's notes are internal
        trail = [t for t in trail if t["kind"] != "note"]
    return {**row[0], "audit": trail}


async def device_history(*, db: Database, device_id: str, owner: str | None = None, limit: int = 200) -> dict:
    """A device, its arming state and its alarms, newest first."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT d.id, d.device_id, d.kind, d.owner, d.status, m.armed, m.changed_ts, l.last_seen_at, l.battery_pct"
            " FROM devices d LEFT JOIN alarm_arming m ON m.device_id = d.id"
            " LEFT JOIN alarm_liveness l ON l.device_id = d.id"
            " WHERE d.device_id = %s AND (%s::text IS NULL OR d.owner = %s)", (device_id, owner, owner))
        dev = await cur.fetchone()
        if dev is None:
            raise NotFound("device", device_id)
        cur = await conn.execute(f"SELECT {SNAPSHOT}{_FROM} WHERE a.device_id = %s ORDER BY a.raised_at DESC, a.id DESC"
                                 " LIMIT %s", (dev[0], limit))
        alarms = [r[0] for r in await cur.fetchall()]
    return {"device_id": dev[1], "kind": dev[2], "owner": dev[3], "status": dev[4], "armed": dev[5],
            "armed_changed_at": dev[6], "last_seen_at": dev[7], "battery_pct": dev[8], "alarms": alarms}


async def customer_history(*, db: Database, owner: str, limit: int = 200) -> dict:
    """A customer's profile (None if never set), devices and alarms, newest first. NotFound if the customer
    has neither a device nor a profile."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT device_id, kind, status FROM devices WHERE owner = %s ORDER BY device_id",
                                 (owner,))
        devices = [{"device_id": r[0], "kind": r[1], "status": r[2]} for r in await cur.fetchall()]
        profile = await find_profile(conn, owner)
        if not devices and profile is None:
            raise NotFound("customer", owner)
        cur = await conn.execute(f"SELECT {SNAPSHOT}{_FROM} WHERE d.owner = %s ORDER BY a.raised_at DESC, a.id DESC"
                                 " LIMIT %s", (owner, limit))
        alarms = [r[0] for r in await cur.fetchall()]
    return {"customer": owner, "profile": None if profile is None else as_json(profile), "devices": devices,
            "alarms": alarms}


async def audit_after(*, db: Database, cursor: int, limit: int = 500) -> list[tuple[int, dict]]:
    """Audit events after ``cursor`` (an audit id), oldest first: the operator stream's source."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id, at, kind, actor, detail, alarm FROM alarm_audit WHERE id > %s"
                                 " ORDER BY id LIMIT %s", (cursor, limit))
        return [(r[0], {"id": r[0], "at": r[1].isoformat(), "kind": r[2], "actor": r[3], "detail": r[4],
                        "alarm": r[5]}) for r in await cur.fetchall()]


async def last_audit_id(*, db: Database) -> int:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT coalesce(max(id), 0) FROM alarm_audit")
        return (await cur.fetchone())[0]


async def metrics_text(*, db: Database) -> str:
    """Prometheus text: alarms per state and time to acknowledge (p50/p95/p99, s) over all acknowledged."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT CASE WHEN resolved_at IS NOT NULL THEN 'resolved' ELSE"
            " (CASE WHEN active THEN 'active' ELSE 'cleared' END) || '_' ||"
            " (CASE WHEN acknowledged THEN 'ack' ELSE 'unack' END) END, count(*) FROM alarms GROUP BY 1")
        states = dict(await cur.fetchall())
        cur = await conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP"
            " (ORDER BY extract(epoch FROM acknowledged_at - raised_at)), count(*)"
            " FROM alarms WHERE acknowledged_at IS NOT NULL")
        quantiles, acked = await cur.fetchone()
    lines = ["# HELP vigil_alarms alarms by state", "# TYPE vigil_alarms gauge"]
    for state in ("active_unack", "active_ack", "cleared_unack", "cleared_ack", "resolved"):
        lines.append(f'vigil_alarms{{state="{state}"}} {states.get(state, 0)}')
    lines += ["# HELP vigil_alarm_time_to_ack_seconds time from raise to acknowledgement",
              "# TYPE vigil_alarm_time_to_ack_seconds summary"]
    for q, value in zip(("0.5", "0.95", "0.99"), quantiles or (None, None, None)):
        lines.append(f'vigil_alarm_time_to_ack_seconds{{quantile="{q}"}} {"NaN" if value is None else f"{value:g}"}')
    lines.append(f"vigil_alarm_time_to_ack_seconds_count {acked}")
    return "\n".join(lines) + "\n"
