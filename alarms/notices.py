"""The notices one escalation stage sends (pure): customer channels and the centre's supervisor line."""

from __future__ import annotations

from alarms.model import ALARM_TYPES, Alarm, AlarmConfig, Stage
from notify import Notice

_TITLES = {
    "water_leak": "Water leak detected", "smoke": "Smoke detected", "intrusion": "Intrusion detected",
    "power_loss": "Power cut", "sos": "Your pet's SOS button was pressed", "crash": "Possible car crash",
    "offline": "Device offline", "low_battery": "Low battery", "tamper": "Device tampered with",
}


def stage_notices(alarm: Alarm, stage: Stage, step: int, device: tuple[str, str, str | None],
                  config: AlarmConfig) -> list[Notice]:
    """Notices of ``stage`` (index ``step``) for ``alarm``; ``device`` is (external id, kind, owner).
    Each dedup key names the alarm, the step and the channel, so a step can never notify twice."""
    device_id, _, owner = device
    kind = ALARM_TYPES[alarm.type]
    title = _TITLES.get(alarm.type, alarm.type)
    where = f" at {alarm.lat:.5f}, {alarm.lon:.5f}" if alarm.lat is not None and alarm.lon is not None else ""
    sensor = f" (sensor {alarm.sensor})" if alarm.sensor else ""
    body = (f"{title} on {device_id}{sensor}{where} at {alarm.first_ts.isoformat()}. "
            f"Alarm {alarm.id}, Contact ID {kind.contact_id}, SIA {kind.sia}.")
    if step:
        body += f" Not yet acknowledged by the centre (escalation {step})."
    out = []
    if owner is not None:
        out += [Notice(f"alarm:{alarm.id}:step:{step}:{channel}", owner, channel, title, body, alarm.first_ts)
                for channel in stage.customer]
    if stage.supervisor:
        out.append(Notice(f"alarm:{alarm.id}:step:{step}:supervisor", config.supervisor, "supervisor",
                          f"Unacknowledged {alarm.severity} alarm: {title}", body, alarm.first_ts))
    return out
