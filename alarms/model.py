"""Alarm types, severities, alarm-receiving-centre codes and the escalation policy (pure data).

Times in this package are timezone-aware UTC datetimes; durations are seconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Mapping

#: Severity names, least to most severe; the queue sorts by this rank, highest first.
SEVERITIES = ("warning", "minor", "major", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

#: Resolution outcomes an operator chooses from.
OUTCOMES = ("real_emergency", "false_alarm", "test", "no_answer")
#: What a customer may say about their own alarm.
FEEDBACK = ("it_was_me", "false_alarm")


@dataclass(frozen=True, slots=True)
class AlarmType:
    """One kind of alarm. ``contact_id`` is the Ademco Contact ID event code, ``sia`` / ``sia_restore``
    the SIA DC-03 event codes of the alarm and its restoral (see docs/alarms.md)."""

    name: str
    severity: str
    kinds: tuple[str, ...]
    contact_id: int
    sia: str
    sia_restore: str | None
    triggers: tuple[str, ...] = ()   # device event types that raise it
    restores: tuple[str, ...] = ()   # device event types that clear it
    armed_only: bool = False         # counts only while intrusion mode is armed


_ALL = ("car", "home", "pet")
ALARM_TYPES: dict[str, AlarmType] = {t.name: t for t in (
    AlarmType("water_leak", "major", ("home",), 154, "WA", "WH", ("water_leak",), ("water_restored",)),
    AlarmType("smoke", "critical", ("home",), 111, "FA", "FH", ("smoke",), ("smoke_cleared",)),
    AlarmType("intrusion", "critical", ("home",), 130, "BA", "BH", ("motion",), (), armed_only=True),
    AlarmType("power_loss", "minor", ("home",), 301, "AT", "AR", ("power_loss",), ("power_restored",)),
    AlarmType("sos", "major", ("pet",), 120, "PA", "PH", ("sos",)),
    AlarmType("crash", "critical", ("car",), 100, "MA", "MH", ("crash",)),
    # offline/online and battery_low/battery_ok are the supervision scan's own events, never a device's.
    AlarmType("offline", "minor", _ALL, 350, "YC", "YK", ("offline",), ("online",)),
    AlarmType("low_battery", "warning", _ALL, 302, "YT", "YR", ("low_battery", "battery_low"), ("battery_ok",)),
    AlarmType("tamper", "minor", _ALL, 137, "TA", "TR", ("tamper",)),
)}
#: Device event type → the alarm type it raises / clears.
TRIGGERS = {ev: t.name for t in ALARM_TYPES.values() for ev in t.triggers}
RESTORES = {ev: t.name for t in ALARM_TYPES.values() for ev in t.restores}
ARMING = ("armed", "disarmed")
#: Device event types the alarm service reads (heartbeats only feed supervision).
RELEVANT = frozenset(TRIGGERS) | frozenset(RESTORES) | frozenset(ARMING)


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of an escalation chain, ``after_s`` seconds after the alarm was raised."""

    after_s: float
    customer: tuple[str, ...] = ()   # customer channels notified (push, sms, email)
    supervisor: bool = False         # alert the centre's supervisor line
    raise_severity: bool = False     # one severity level up (capped at critical)


def emergency_chain(t1_s: float = 30.0, t2_s: float = 120.0, t3_s: float = 300.0) -> tuple[Stage, ...]:
    """Raise: customer on every channel and the centre's queue. T1 (30 s: a verification call should have
    started), T2, T3 without acknowledgement: up one severity, re-notify, alert the supervisor."""
    return (
        Stage(0.0, ("push", "sms", "email")),
        Stage(t1_s, ("push", "sms"), supervisor=True, raise_severity=True),
        Stage(t2_s, ("sms",), supervisor=True, raise_severity=True),
        Stage(t3_s, (), supervisor=True),
    )


def supervision_chain(after_s: float = 1800.0) -> tuple[Stage, ...]:
    """Device health: the customer by app and e-mail; the supervisor only if nobody looked within 30 min."""
    return (Stage(0.0, ("push", "email")), Stage(after_s, (), supervisor=True))


@dataclass(frozen=True, slots=True)
class AlarmConfig:
    """Alarm behaviour. Defaults are documented in docs/alarms.md."""

    chains: Mapping[str, tuple[Stage, ...]] = field(default_factory=lambda: {
        "water_leak": emergency_chain(), "smoke": emergency_chain(), "intrusion": emergency_chain(),
        "power_loss": emergency_chain(), "sos": emergency_chain(), "crash": emergency_chain(),
        "offline": supervision_chain(), "low_battery": (Stage(0.0, ("push", "email")),),
        "tamper": supervision_chain(),
    })
    # Device events older than this (event time vs. now) are recorded but never escalate: a device
    # flushing a long buffer must not page the centre for yesterday's leak. 10 min.
    old_event_s: float = 600.0
    # Silence before a device is offline, per kind: home kits heartbeat every 5 min (3 missed = 15 min),
    # pet trackers every 15 min (4 missed = 1 h), car boxes only report while driving (2 days).
    offline_after_s: Mapping[str, float] = field(default_factory=lambda: {
        "home": 900.0, "pet": 3600.0, "car": 172_800.0})
    # Battery below this raises low_battery from heartbeats/fixes; it clears 5 points above (hysteresis).
    low_battery_pct: float = 15.0
    supervisor: str = "assistance-centre"

    def chain(self, alarm_type: str) -> tuple[Stage, ...]:
        return self.chains.get(alarm_type, emergency_chain())

    def with_timers(self, t1_s: float, t2_s: float, t3_s: float) -> "AlarmConfig":
        chains = {name: emergency_chain(t1_s, t2_s, t3_s) if len(chain) == 4 else chain
                  for name, chain in self.chains.items()}
        return replace(self, chains=chains)


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A device event as the alarm core sees it. ``device`` is the dense device code; ``received`` when
    the platform got it (None: now), so an event received in time but applied late (after an outage of
    the alarm service) is not mistaken for an old one."""

    device: int
    type: str
    ts: dt.datetime
    event_id: str | None = None
    received: dt.datetime | None = None
    sensor: str | None = None
    value: float | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm: two independent axes (active/cleared, unacknowledged/acknowledged) plus resolution."""

    device: int
    type: str
    severity: str
    raised_at: dt.datetime
    first_ts: dt.datetime
    last_ts: dt.datetime
    id: int | None = None
    active: bool = True
    acknowledged: bool = False
    count: int = 1
    last_seen_at: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    assignee: str | None = None
    assigned_at: dt.datetime | None = None
    cleared_at: dt.datetime | None = None
    cleared_by: str | None = None
    resolved_at: dt.datetime | None = None
    resolved_by: str | None = None
    outcome: str | None = None
    customer_feedback: str | None = None
    customer_feedback_at: dt.datetime | None = None
    escalation_level: int = 0
    next_step: int = 0
    next_step_at: dt.datetime | None = None
    stale: bool = False
    event_id: str | None = None
    sensor: str | None = None
    lat: float | None = None
    lon: float | None = None

    @property
    def state(self) -> str:
        if self.resolved_at is not None:
            return "resolved"
        return f"{'active' if self.active else 'cleared'}_{'ack' if self.acknowledged else 'unack'}"


@dataclass(frozen=True, slots=True)
class Change:
    """An audit event: ``kind`` (raised, repeated, cleared, reactivated, escalated, acknowledged,
    assigned, note, resolved, customer_feedback), who did it and what changed."""

    kind: str
    actor: str
    detail: Mapping[str, object] = field(default_factory=dict)
