"""The thin handler: load alarms, call the pure transitions, save, audit and run escalation steps, each
device batch or operator action in one transaction (notices go to the outbox in that same transaction).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable

import psycopg

from alarms import store
from alarms.model import RELEVANT, RESTORES, TRIGGERS, Alarm, AlarmConfig, Change, DeviceEvent
from alarms.notices import stage_notices
from alarms.transition import apply_events, due_stages, escalate
from notify import enqueue_on
from storage.db import Database
from vigil.errors import StorageError

Action = Callable[[Alarm], tuple[Alarm, list[Change]]]
#: The alarm core already judged staleness (at receipt) and a stale alarm runs no stage, so the outbox's
#: own late-notice filter must not drop the notices of an alarm applied late after an outage.
_DECIDED = dt.timedelta(days=365)


async def run_chain(conn: psycopg.AsyncConnection, alarm: Alarm, config: AlarmConfig,
                    now: dt.datetime, device=None) -> tuple[Alarm, list[Change]]:
    """Run every stage of the alarm's chain that is due at ``now`` (several after a long outage)."""
    changes: list[Change] = []
    chain = config.chain(alarm.type)
    while True:
        alarm, stage, step = escalate(alarm, chain, now)
        if stage is None:
            return alarm, changes
        if not await store.claim_step(conn, alarm.id, step, now):
            continue  # ran already: its notices went out with it
        if device is None:
            device = (await store.devices_of(conn, [alarm.device]))[alarm.device]
        notices = stage_notices(alarm, stage, step, device, config)
        await enqueue_on(conn, notices, now=now, max_age=_DECIDED)
        changes.append(Change("notified" if step == 0 else "escalated", "system", {
            "step": step, "severity": alarm.severity, "channels": sorted({n.channel for n in notices})}))


async def apply_device_events(db: Database, events: list[DeviceEvent], config: AlarmConfig,
                              now: dt.datetime) -> list[int]:
    """Apply device events in one transaction; events already applied (same device and event id) are
    skipped. Returns the ids of the alarms changed."""
    events = [e for e in events if e.type in RELEVANT]
    if not events:
        return []
    inputs = list({(e.device, e.event_id) for e in events if e.event_id})
    keys = [(e.device, TRIGGERS.get(e.type) or RESTORES.get(e.type)) for e in events]
    keys = [k for k in keys if k[1] is not None]
    raisable = [(e.device, TRIGGERS[e.type]) for e in events if e.type in TRIGGERS]
    try:
        # Pipeline mode, two round trips for a new alarm: every read at once (begin_apply), then every
        # write (alarm with its pre-drawn id, steps, outbox, audit, NOTIFY) goes out with the commit.
        async with db.connection() as conn, conn.pipeline(), conn.transaction():
            fresh, opened, arming, devices, new_ids = await store.begin_apply(
                conn, inputs, keys, raisable, [e.device for e in events])
            # One copy of each event: a burst may hold both the lane's and the main gateway's copy.
            events = [e for e in events if e.event_id is None or (e.device, e.event_id) in fresh]
            events = list({(e.device, e.event_id) if e.event_id else id(e): e for e in events}.values())
            if not events:
                return []
            result = apply_events(opened, arming, events, config, now)
            await store.save_arming(conn, {d: s for d, s in result.arming.items() if arming.get(d) != s})
            changed = []
            for key, alarm in result.alarms.items():
                changes = list(result.changes.get(key, []))
                if alarm.id is None:
                    alarm = await _insert_and_notify(conn, alarm, new_ids.get(key), changes, devices[alarm.device],
                                                     config, now)
                else:
                    await store.save(conn, alarm)
                    alarm, more = await run_chain(conn, alarm, config, now, devices.get(alarm.device))
                    if more:
                        await store.save(conn, alarm)
                    await store.audit(conn, alarm.id, [*changes, *more], now)
                changed.append(alarm.id)
            return changed
    except psycopg.Error as exc:
        raise StorageError(f"applying device events to alarms: {exc}") from exc


async def _insert_and_notify(conn: psycopg.AsyncConnection, alarm: Alarm, alarm_id: int | None,
                             changes: list[Change], device, config: AlarmConfig, now: dt.datetime) -> Alarm:
    """A new alarm with the stages due now (the raise), its notices and audit rows. With its id drawn
    beforehand (``alarm_id``) nothing is read back: it all rides the pipeline to the commit. Alarms are
    latency-critical."""
    alarm, stages = due_stages(alarm, config.chain(alarm.type), now)
    if alarm_id is None:  # not foreseen by begin_apply (cannot happen today): the insert returns the id
        alarm = await store.save(conn, alarm)
    else:
        alarm = dataclasses.replace(alarm, id=alarm_id)
        await store.insert(conn, alarm)
    await store.record_steps(conn, alarm.id, [step for step, _ in stages], now)
    for step, stage in stages:
        notices = stage_notices(alarm, stage, step, device, config)
        await enqueue_on(conn, notices, now=now, max_age=_DECIDED)
        changes.append(Change("notified" if step == 0 else "escalated", "system", {
            "step": step, "severity": alarm.severity, "channels": sorted({n.channel for n in notices})}))
    await store.audit(conn, alarm.id, changes, now)
    return alarm


async def due_alarms(db: Database, now: dt.datetime, limit: int = 10) -> list[int]:
    """Ids of alarms with an escalation stage due at ``now``, longest due first."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id FROM alarms WHERE next_step_at <= %s ORDER BY next_step_at LIMIT %s",
                                 (now, limit))
        return [r[0] for r in await cur.fetchall()]


async def escalate_alarm(db: Database, alarm_id: int, config: AlarmConfig, now: dt.datetime) -> bool:
    """Run one alarm's stages due at ``now`` (judged again under the lock: an acknowledgement in between
    stops it) in one transaction; True if a stage ran. One alarm per transaction: the alarm lock is
    released after each, so a new alarm never waits behind a wave of escalations."""
    async with db.connection() as conn, conn.pipeline(), conn.transaction():
        await store.lock(conn)
        before = await store.load(conn, alarm_id)
        alarm, changes = await run_chain(conn, before, config, now)
        if alarm != before:
            await store.save(conn, alarm)
            await store.audit(conn, alarm.id, changes, now)
        return bool(changes)


async def act(db: Database, alarm_id: int, action: Action, now: dt.datetime, *, owner: str | None = None) -> dict:
    """Apply an operator's or customer's action to one alarm; returns the alarm as the API shows it."""
    async with db.connection() as conn, conn.transaction():
        await store.lock(conn)
        alarm = await store.load(conn, alarm_id, owner=owner)
        updated, changes = action(alarm)
        if updated != alarm:
            await store.save(conn, updated)
        await store.audit(conn, alarm_id, changes, now)
        return await snapshot(conn, alarm_id)


async def snapshot(conn: psycopg.AsyncConnection, alarm_id: int) -> dict:
    cur = await conn.execute(f"SELECT {store.SNAPSHOT} FROM alarms a JOIN devices d ON d.id = a.device_id"
                             " WHERE a.id = %s", (alarm_id,))
    return (await cur.fetchone())[0]
