"""Decoder of home-kit payloads (``vigil/v1/home/{kit_id}/event`` and ``…/heartbeat``), see
docs/protocol.md. The central unit reports for all its sensors; each event names its sensor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from ingest.jsonmsg import Int64, decode_whole
from vigil.errors import RejectedInput
from vigil.events import EVENT_TYPES

Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
HomeEventType = Literal[
    "water_leak", "water_restored", "smoke", "smoke_cleared", "motion", "power_loss", "power_restored",
    "tamper", "low_battery", "armed", "disarmed",
]
assert set(HomeEventType.__args__) <= set(EVENT_TYPES)


class HomeEvent(msgspec.Struct, frozen=True, gc=False):
    ts: Int64
    type: HomeEventType
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    sensor: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    battery_pct: Percent | None = None


class _EventMessage(msgspec.Struct, frozen=True):
    seq: Int64
    events: list[HomeEvent]
    v: int = 1
    device: str | None = None


class _Heartbeat(msgspec.Struct, frozen=True):
    seq: Int64
    ts: Int64
    v: int = 1
    device: str | None = None
    battery_pct: Percent | None = None
    mains: bool | None = None


_decode_events = msgspec.json.Decoder(_EventMessage).decode
_decode_heartbeat = msgspec.json.Decoder(_Heartbeat).decode


@dataclass(frozen=True, slots=True)
class DecodedEvents:
    """Events of one message, in message order; a heartbeat is one ``heartbeat`` event."""

    seq: int
    device: str | None
    events: list[HomeEvent]


def decode_events(payload: bytes) -> DecodedEvents:
    msg = decode_whole(_decode_events, payload)
    if not msg.events:
        raise RejectedInput("no_events", "the events list is empty")
    return DecodedEvents(msg.seq, msg.device, msg.events)


def decode_heartbeat(payload: bytes) -> DecodedEvents:
    hb = decode_whole(_decode_heartbeat, payload)
    # Structs are not validated on construction, so the heartbeat can use the full event vocabulary.
    event = HomeEvent(ts=hb.ts, type="heartbeat", event_id=f"hb-{hb.seq}", battery_pct=hb.battery_pct)
    return DecodedEvents(hb.seq, hb.device, [event])
