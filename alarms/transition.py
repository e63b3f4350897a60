"""Pure alarm transitions: ``(alarm, input, config, now) -> (alarm, changes)``. No I/O, no clock reads.

Device-event batches go through :func:`apply_events`, which keeps one open alarm per (device, type),
honours intrusion arming, marks old events stale (recorded, never escalated) and folds the repeats of one
batch into a single ``repeated`` change, so a flooding sensor costs one audit row per batch, not per message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from alarms.model import (ALARM_TYPES, FEEDBACK, OUTCOMES, RESTORES, SEVERITIES, SEVERITY_RANK, TRIGGERS,
                          Alarm, AlarmConfig, Change, DeviceEvent, Stage)
from vigil.errors import Conflict, RejectedInput

Key = tuple[int, str]


def _ago(now: dt.datetime, stamp: dt.datetime) -> float:
    return (now - stamp).total_seconds()


def _stale(event: DeviceEvent, config: AlarmConfig, now: dt.datetime) -> bool:
    """Older than the window when it reached the platform (a replay, a flushed buffer)."""
    return _ago(event.received or now, event.ts) > config.old_event_s


def raise_alarm(event: DeviceEvent, alarm_type: str, config: AlarmConfig, now: dt.datetime) -> tuple[Alarm, Change]:
    """A new alarm for ``event``. A stale one (older than ``config.old_event_s`` when received) has no
    escalation chain."""
    stale = _stale(event, config, now)
    alarm = Alarm(device=event.device, type=alarm_type, severity=ALARM_TYPES[alarm_type].severity,
                  raised_at=now, first_ts=event.ts, last_ts=event.ts, last_seen_at=now, stale=stale,
                  next_step_at=None if stale else now, event_id=event.event_id, sensor=event.sensor,
                  lat=event.lat, lon=event.lon)
    return alarm, Change("raised", "device", {"event_id": event.event_id, "ts": event.ts.isoformat(),
                                              "stale": stale, "sensor": event.sensor})


def repeat(alarm: Alarm, event: DeviceEvent, config: AlarmConfig, now: dt.datetime) -> tuple[Alarm, list[Change]]:
    """The same condition again: count it; a cleared alarm becomes active again (unless the event is stale),
    and an unacknowledged one resumes its chain at its next stage."""
    alarm = replace(alarm, count=alarm.count + 1, last_ts=max(alarm.last_ts, event.ts), last_seen_at=now,
                    lat=event.lat if event.lat is not None else alarm.lat,
                    lon=event.lon if event.lon is not None else alarm.lon)
    if alarm.active or _stale(event, config, now):
        return alarm, [Change("repeated", "device", {"count": alarm.count})]
    chain = config.chain(alarm.type)
    next_at = None
    if not alarm.acknowledged and not alarm.stale and alarm.next_step < len(chain):
        gap = chain[alarm.next_step].after_s - chain[alarm.next_step - 1].after_s if alarm.next_step else 0.0
        next_at = now + dt.timedelta(seconds=gap)
    alarm = replace(alarm, active=True, cleared_at=None, cleared_by=None, next_step_at=next_at)
    return alarm, [Change("reactivated", "device", {"event_id": event.event_id, "count": alarm.count})]


def clear(alarm: Alarm, actor: str, now: dt.datetime) -> tuple[Alarm, list[Change]]:
    """The condition is over (a restore message, or an operator): the chain stops."""
    if not alarm.active or alarm.resolved_at is not None:
        return alarm, []
    return (replace(alarm, active=False, cleared_at=now, cleared_by=actor, next_step_at=None),
            [Change("cleared", actor, {})])


def escalate(alarm: Alarm, chain: tuple[Stage, ...], now: dt.datetime) -> tuple[Alarm, Stage | None, int]:
    """Run the due stage, if any: returns the alarm with its next timer, the stage and its index (-1: none)."""
    if alarm.next_step_at is None or alarm.next_step_at > now or alarm.next_step >= len(chain):
        return alarm, None, -1
    step = alarm.next_step
    stage = chain[step]
    severity = alarm.severity
    if stage.raise_severity:
        severity = SEVERITIES[min(SEVERITY_RANK[severity] + 1, len(SEVERITIES) - 1)]
    nxt = step + 1
    next_at = alarm.raised_at + dt.timedelta(seconds=chain[nxt].after_s) if nxt < len(chain) else None
    return replace(alarm, severity=severity, escalation_level=step, next_step=nxt, next_step_at=next_at), stage, step


def due_stages(alarm: Alarm, chain: tuple[Stage, ...], now: dt.datetime) -> tuple[Alarm, list[tuple[int, Stage]]]:
    """Every stage due at ``now``, in order (several when the service was down past them)."""
    stages = []
    while True:
        alarm, stage, step = escalate(alarm, chain, now)
        if stage is None:
            return alarm, stages
        stages.append((step, stage))


def _open(alarm: Alarm) -> None:
    if alarm.resolved_at is not None:
        raise Conflict("alarm_resolved", f"alarm {alarm.id} is already resolved")


def acknowledge(alarm: Alarm, operator: str, now: dt.datetime) -> tuple[Alarm, list[Change]]:
    """An operator has taken it in charge: the chain stops. Acknowledging twice changes nothing."""
    _open(alarm)
    if alarm.acknowledged:
        return alarm, []
    alarm = replace(alarm, acknowledged=True, acknowledged_at=now, acknowledged_by=operator, next_step_at=None,
                    assignee=alarm.assignee or operator, assigned_at=alarm.assigned_at or now)
    return alarm, [Change("acknowledged", operator, {"after_s": round(_ago(now, alarm.raised_at), 3)})]


def assign(alarm: Alarm, operator: str, assignee: str, now: dt.datetime, *, force: bool) -> tuple[Alarm, list[Change]]:
    """Claim (``force=False``: refused when someone else holds it) or assign to another operator."""
    _open(alarm)
    if alarm.assignee == assignee:
        return alarm, []
    if not force and alarm.assignee is not None:
        raise Conflict("alarm_claimed", f"alarm {alarm.id} is held by {alarm.assignee}")
    previous = alarm.assignee
    alarm = replace(alarm, assignee=assignee, assigned_at=now)
    return alarm, [Change("assigned", operator, {"assignee": assignee, "previous": previous})]


def note(alarm: Alarm, operator: str, text: str) -> list[Change]:
    if not text.strip():
        raise RejectedInput("empty_note", "a note needs text")
    return [Change("note", operator, {"text": text})]


def resolve(alarm: Alarm, operator: str, outcome: str, text: str | None, now: dt.datetime) -> tuple[Alarm, list[Change]]:
    """Close the alarm with an outcome; it is acknowledged and cleared on the way if it was not."""
    _open(alarm)
    if outcome not in OUTCOMES:
        raise RejectedInput("unknown_outcome", f"outcome must be one of {', '.join(OUTCOMES)}")
    changes: list[Change] = []
    alarm, more = acknowledge(alarm, operator, now)
    changes += more
    alarm, more = clear(alarm, operator, now)
    changes += more
    alarm = replace(alarm, resolved_at=now, resolved_by=operator, outcome=outcome, next_step_at=None)
    return alarm, changes + [Change("resolved", operator, {"outcome": outcome, "note": text})]


def customer_feedback(alarm: Alarm, owner: str, kind: str, text: str | None,
                      now: dt.datetime) -> tuple[Alarm, list[Change]]:
    """"It was me" / "false alarm" from the customer: recorded and shown to the centre, which still
    verifies (whoever holds the phone may not be the customer), so the chain is not stopped."""
    if kind not in FEEDBACK:
        raise RejectedInput("unknown_feedback", f"feedback must be one of {', '.join(FEEDBACK)}")
    alarm = replace(alarm, customer_feedback=kind, customer_feedback_at=now)
    return alarm, [Change("customer_feedback", f"customer:{owner}", {"feedback": kind, "text": text})]


@dataclass(slots=True)
class Applied:
    """Result of :func:`apply_events`: every alarm touched (new ones have ``id`` None), the arming state
    after the batch, and the changes per alarm key in order."""

    alarms: dict[Key, Alarm]
    arming: dict[int, tuple[bool, dt.datetime]]
    changes: dict[Key, list[Change]] = field(default_factory=dict)
    ignored: int = 0


def apply_events(open_alarms: dict[Key, Alarm], arming: dict[int, tuple[bool, dt.datetime]],
                 events: list[DeviceEvent], config: AlarmConfig, now: dt.datetime) -> Applied:
    """Apply device events (any order; taken by device then time) to the open alarms and arming state."""
    out = Applied(dict(open_alarms), dict(arming))
    touched: dict[Key, Alarm] = {}
    for ev in sorted(events, key=lambda e: (e.device, e.ts)):
        if ev.type in ("armed", "disarmed"):
            current = out.arming.get(ev.device)
            if current is None or current[1] <= ev.ts:
                out.arming[ev.device] = (ev.type == "armed", ev.ts)
            continue
        if ev.type in RESTORES:
            key = (ev.device, RESTORES[ev.type])
            alarm = out.alarms.get(key)
            if alarm is not None:
                alarm, changes = clear(alarm, "device", now)
                _record(out, touched, key, alarm, changes)
            continue
        alarm_type = TRIGGERS.get(ev.type)
        if alarm_type is None:
            out.ignored += 1
            continue
        if ALARM_TYPES[alarm_type].armed_only and not out.arming.get(ev.device, (False, None))[0]:
            out.ignored += 1  # motion while disarmed: the household is home
            continue
        key = (ev.device, alarm_type)
        alarm = out.alarms.get(key)
        if alarm is None:
            alarm, change = raise_alarm(ev, alarm_type, config, now)
            changes = [change]
        else:
            alarm, changes = repeat(alarm, ev, config, now)
        _record(out, touched, key, alarm, changes)
    out.alarms = {**out.alarms, **touched}
    out.alarms = {k: a for k, a in out.alarms.items() if k in touched}
    return out


def _record(out: Applied, touched: dict[Key, Alarm], key: Key, alarm: Alarm, changes: list[Change]) -> None:
    out.alarms[key] = alarm
    touched[key] = alarm
    log = out.changes.setdefault(key, [])
    for change in changes:
        if change.kind == "repeated" and log and log[-1].kind == "repeated":
            log[-1] = Change("repeated", "device", {"count": change.detail["count"],
                                                   "repeats": log[-1].detail.get("repeats", 1) + 1})
        else:
            log.append(change)
