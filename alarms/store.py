"""PostgreSQL adapter of the alarm tables: load/save :class:`Alarm` rows, append audit rows.

Every transaction that changes alarms first takes one transaction-scoped advisory lock. Alarm traffic is
small, and the lock makes audit ids commit in id order, which is what lets the operator stream resume
from an id without ever skipping a row that committed late.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Iterable

import psycopg
from psycopg.types.json import Jsonb

from alarms.model import Alarm, Change
from customers.store import ALARM_CUSTOMER_JSON
from vigil.errors import NotFound

_LOCK_KEY = 0x56_41_4C_41_52_4D  # "VALARM"
NOTIFY_CHANNEL = "vigil_alarms"

_FIELDS = [f.name for f in dataclasses.fields(Alarm) if f.name not in ("id", "device")]
_SELECT = "SELECT a.id, a.device_id, " + ", ".join(f"a.{f}" for f in _FIELDS) + " FROM alarms a"

#: One alarm as JSON, as the API and the stream show it (external device id, owner, kind, state, and the
#: customer's name and address from the profile).
SNAPSHOT = (
    "(to_jsonb(a) - 'device_id' - 'next_step') || jsonb_build_object('device_id', d.device_id,"
    " 'owner', d.owner, 'kind', d.kind, 'state', CASE WHEN a.resolved_at IS NOT NULL THEN 'resolved'"
    " ELSE (CASE WHEN a.active THEN 'active' ELSE 'cleared' END) || '_'"
    " || (CASE WHEN a.acknowledged THEN 'ack' ELSE 'unack' END) END) || " + ALARM_CUSTOMER_JSON
)


async def lock(conn: psycopg.AsyncConnection) -> None:
    """Serialise alarm writers until the end of the current transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def _alarm(row) -> Alarm:
    return Alarm(id=row[0], device=row[1], **dict(zip(_FIELDS, row[2:])))


async def load(conn: psycopg.AsyncConnection, alarm_id: int, *, owner: str | None = None) -> Alarm:
    """One alarm, locked; :class:`NotFound` if absent or (``owner`` given) not that customer's."""
    cur = await conn.execute(
        _SELECT + " JOIN devices d ON d.id = a.device_id WHERE a.id = %s AND (%s::text IS NULL OR d.owner = %s)"
        " FOR UPDATE OF a", (alarm_id, owner, owner))
    row = await cur.fetchone()
    if row is None:
        raise NotFound("alarm", str(alarm_id))
    return _alarm(row)


async def save(conn: psycopg.AsyncConnection, alarm: Alarm) -> Alarm:
    """Insert a new alarm (returns it with its id) or update an existing one."""
    values = [getattr(alarm, f) for f in _FIELDS]
    if alarm.id is None:
        cur = await conn.execute(
            f"INSERT INTO alarms (device_id, {', '.join(_FIELDS)}) VALUES (%s, {', '.join(['%s'] * len(_FIELDS))})"
            " RETURNING id", [alarm.device, *values])
        return dataclasses.replace(alarm, id=(await cur.fetchone())[0])
    await conn.execute(f"UPDATE alarms SET {', '.join(f'{f} = %s' for f in _FIELDS)} WHERE id = %s",
                       [*values, alarm.id])
    return alarm


async def audit(conn: psycopg.AsyncConnection, alarm_id: int, changes: Iterable[Change], now: dt.datetime) -> int:
    """Append audit rows, each with a snapshot of the alarm as saved; returns how many."""
    n = 0
    for change in changes:
        await conn.execute(
            f"INSERT INTO alarm_audit (alarm_id, at, kind, actor, detail, alarm) SELECT a.id, %s, %s, %s, %s, {SNAPSHOT}"
            " FROM alarms a JOIN devices d ON d.id = a.device_id WHERE a.id = %s",
            (now, change.kind, change.actor, Jsonb(dict(change.detail)), alarm_id))
        n += 1
    if n:
        await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(alarm_id)))
    return n


async def record_steps(conn: psycopg.AsyncConnection, alarm_id: int, steps: list[int], now: dt.datetime) -> None:
    """Record the steps of a new alarm's chain run now (its id is new: they cannot have run before)."""
    await conn.execute("INSERT INTO alarm_steps (alarm_id, step, executed_at) SELECT %s, s, %s FROM unnest(%s::int[]) s",
                       (alarm_id, now, steps))


async def claim_step(conn: psycopg.AsyncConnection, alarm_id: int, step: int, now: dt.datetime) -> bool:
    """Record that ``step`` of the alarm's chain runs now; False if it already ran (never run twice)."""
    cur = await conn.execute(
        "INSERT INTO alarm_steps (alarm_id, step, executed_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
        " RETURNING step", (alarm_id, step, now))
    return await cur.fetchone() is not None  # a read, not rowcount: exact in pipeline mode too


async def devices_of(conn: psycopg.AsyncConnection, codes: Iterable[int]) -> dict[int, tuple[str, str, str | None]]:
    """Device code → (external id, kind, owner)."""
    cur = await conn.execute("SELECT id, device_id, kind, owner FROM devices WHERE id = ANY(%s)", (list(set(codes)),))
    return {r[0]: (r[1], r[2], r[3]) for r in await cur.fetchall()}


async def save_arming(conn: psycopg.AsyncConnection, arming: dict[int, tuple[bool, dt.datetime]]) -> None:
    if not arming:
        return
    codes = list(arming)
    await conn.execute(
        "INSERT INTO alarm_arming (device_id, armed, changed_ts) SELECT * FROM unnest(%s::bigint[], %s::bool[],"
        " %s::timestamptz[]) ON CONFLICT (device_id) DO UPDATE SET armed = excluded.armed,"
        " changed_ts = excluded.changed_ts WHERE alarm_arming.changed_ts <= excluded.changed_ts",
        (codes, [arming[c][0] for c in codes], [arming[c][1] for c in codes]))


async def begin_apply(conn: psycopg.AsyncConnection, inputs: list[tuple[int, str]], keys: list[tuple[int, str]],
                      raisable: list[tuple[int, str]], codes: list[int]):
    """Everything a device-event transaction reads, in ONE round trip (pipeline mode): the alarm lock,
    the inputs marked applied (those not applied before), the open alarms of ``keys`` (locked), arming
    and device info of ``codes``, and a fresh alarm id for each ``raisable`` key with no open alarm, so
    the inserts need not read their id back (an id not used leaves a gap in the sequence, nothing else).

    Returns (fresh inputs, open alarms by key, arming by code, device info by code, new id by key)."""
    keys, codes, raisable = list(set(keys)), list(set(codes)), list(set(raisable))
    async with conn.pipeline():  # leaving the block syncs: one round trip for all of it
        await lock(conn)
        fresh = None
        if inputs:
            fresh = await conn.execute(
                "INSERT INTO alarm_inputs (device_id, event_id) SELECT * FROM unnest(%s::bigint[], %s::text[])"
                " ON CONFLICT DO NOTHING RETURNING device_id, event_id",
                ([k[0] for k in inputs], [k[1] for k in inputs]))
        opened = await conn.execute(
            _SELECT + " JOIN unnest(%s::bigint[], %s::text[]) AS k(dev, typ) ON a.device_id = k.dev"
            " AND a.type = k.typ WHERE a.resolved_at IS NULL FOR UPDATE OF a",
            ([k[0] for k in keys], [k[1] for k in keys]))
        arming = await conn.execute("SELECT device_id, armed, changed_ts FROM alarm_arming WHERE device_id = ANY(%s)",
                                    (codes,))
        info = await conn.execute("SELECT id, device_id, kind, owner FROM devices WHERE id = ANY(%s)", (codes,))
        # Under the lock no other writer opens an alarm for these keys before this transaction commits.
        ids = await conn.execute(
            "SELECT k.dev, k.typ, nextval(pg_get_serial_sequence('alarms', 'id'))"
            " FROM unnest(%s::bigint[], %s::text[]) AS k(dev, typ) WHERE NOT EXISTS (SELECT 1 FROM alarms a"
            " WHERE a.device_id = k.dev AND a.type = k.typ AND a.resolved_at IS NULL)",
            ([k[0] for k in raisable], [k[1] for k in raisable]))
    return ({(r[0], r[1]) for r in await fresh.fetchall()} if fresh is not None else set(),
            {(a.device, a.type): a for a in map(_alarm, await opened.fetchall())},
            {r[0]: (r[1], r[2]) for r in await arming.fetchall()},
            {r[0]: (r[1], r[2], r[3]) for r in await info.fetchall()},
            {(r[0], r[1]): r[2] for r in await ids.fetchall()})


async def insert(conn: psycopg.AsyncConnection, alarm: Alarm) -> None:
    """Insert a new alarm whose id was drawn already (:func:`begin_apply`): nothing to read back."""
    await conn.execute(
        f"INSERT INTO alarms (id, device_id, {', '.join(_FIELDS)}) VALUES (%s, %s, {', '.join(['%s'] * len(_FIELDS))})",
        [alarm.id, alarm.device, *[getattr(alarm, f) for f in _FIELDS]])
