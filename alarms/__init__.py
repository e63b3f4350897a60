"""Alarms and the assistance centre: home-kit, pet-SOS, crash and supervision alarms.

Pure core: :mod:`alarms.model` (types, severities, Contact ID / SIA codes, escalation policy),
:mod:`alarms.transition` (lifecycle transitions), :mod:`alarms.supervision` (silence and battery verdicts),
:mod:`alarms.notices`. Adapters: :mod:`alarms.store`, :mod:`alarms.handler` (transactions),
:mod:`alarms.service` (bus consumer, sweep, timers, supervision scan), :mod:`alarms.operations` (API
services), :mod:`alarms.feed` (stream wake-ups).
"""

from alarms.model import ALARM_TYPES, OUTCOMES, SEVERITIES, Alarm, AlarmConfig, AlarmType, DeviceEvent, Stage

__all__ = ["ALARM_TYPES", "OUTCOMES", "SEVERITIES", "Alarm", "AlarmConfig", "AlarmType", "DeviceEvent", "Stage"]
