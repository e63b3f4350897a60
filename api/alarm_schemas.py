"""Request and response models of the alarm routes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from api.profile_schemas import Address, ProfileOut


class AlarmOut(BaseModel):
    id: int
    device_id: str = Field(examples=["home-0001"])
    kind: str = Field(description="device kind: car, home or pet")
    owner: str | None = Field(description="customer id")
    type: str = Field(examples=["water_leak"])
    severity: Literal["warning", "minor", "major", "critical"]
    state: str = Field(description="active_unack, active_ack, cleared_unack, cleared_ack or resolved")
    active: bool
    acknowledged: bool
    count: int = Field(description="device reports of this condition while the alarm is open")
    first_ts: dt.datetime = Field(description="device time of the first report, UTC")
    last_ts: dt.datetime
    raised_at: dt.datetime
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
    escalation_level: int = Field(description="last escalation stage run (0: the raise)")
    next_step_at: dt.datetime | None = Field(None, description="when the next stage runs if not acknowledged")
    stale: bool = Field(description="raised from an old or replayed event: recorded, not escalated")
    event_id: str | None = None
    sensor: str | None = None
    lat: float | None = None
    lon: float | None = None
    customer_name: str | None = Field(None, description="the owner's display name (null: no profile)")
    address: Address | None = Field(None, description="where to send help: the owner's address (null: no profile)")


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    kind: str
    actor: str
    detail: dict


class AlarmDetail(AlarmOut):
    audit: list[AuditOut]


class DeviceAlarms(BaseModel):
    device_id: str = Field(examples=["home-0001"])
    kind: str
    owner: str | None
    status: str
    armed: bool | None = Field(description="intrusion mode (home kits); null: never reported")
    armed_changed_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    battery_pct: float | None
    alarms: list[AlarmOut]


class CustomerDevice(BaseModel):
    device_id: str
    kind: str
    status: str


class CustomerAlarms(BaseModel):
    customer: str = Field(examples=["cust-1"])
    profile: ProfileOut | None = Field(description="address, phone and contacts in calling order (null: never set)")
    devices: list[CustomerDevice]
    alarms: list[AlarmOut]


# The operator doing it is the logged-in caller (api/alarms.py), not a field of the request.
class AssignRequest(BaseModel):
    assignee: str = Field(min_length=1, max_length=128, examples=["op-2"])


class NoteRequest(BaseModel):
    text: str = Field(min_length=1, max_length=4000, examples=["called the customer, leak confirmed"])


class ResolveRequest(BaseModel):
    outcome: Literal["real_emergency", "false_alarm", "test", "no_answer"] = Field(examples=["real_emergency"])
    note: str | None = Field(None, max_length=4000)


class FeedbackRequest(BaseModel):
    feedback: Literal["it_was_me", "false_alarm"]
    text: str | None = Field(None, max_length=4000)
