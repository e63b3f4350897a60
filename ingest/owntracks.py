"""Decoder of the OwnTracks phone app's JSON on ``owntracks/{user}/{device}``, see docs/protocol.md.

Format: the OwnTracks booklet, "JSON" page (owntracks.org/booklet/tech/json). Every message carries a
``_type``; only ``location`` carries a position. Fields the app adds over versions (``bs``, ``m``,
``inregions``, ``SSID``, ``created_at``…) are skipped without being checked.

Outcomes of :func:`decode`, all :class:`RejectedInput` except the first:

* an :class:`OwnTracksFix` for ``_type: "location"``;
* ``owntracks_unsupported_type``: a well-formed message of another ``_type`` (``lwt``, ``transition``,
  ``waypoint``, ``card``…). Not an error of the app: it publishes these on the same topics, so the
  gateway should count them apart from garbage rather than alert on them;
* ``owntracks_encrypted``: ``_type: "encrypted"`` (the app's optional payload encryption); Vigil holds no
  key, so the message cannot be read;
* ``malformed_json``: not UTF-8 JSON (or nested deeper than the decoder's recursion limit);
* ``invalid_schema``: not an object, ``_type`` missing or not a string, or a location whose documented
  fields are missing or of the wrong type.

The location is decoded in one typed msgspec pass; only when that fails is the message decoded again,
for its ``_type``, to tell the outcomes apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from ingest.topics import MAX_DEVICE_ID_LEN
from ingest.jsonmsg import DECODE_ERRORS, reason
from vigil.errors import RejectedInput

#: Largest ``tst`` (s) whose value in ms still fits an int64 ``ts_ms`` column.
_MAX_TST = (2**63 - 1) // 1000
Tst = Annotated[int, msgspec.Meta(ge=-_MAX_TST, le=_MAX_TST)]

#: ``_type`` values the apps document besides ``location`` and ``encrypted`` (booklet, 2024). Any other
#: string ``_type`` is refused the same way, as ``owntracks_unsupported_type``: the app adds types.
IGNORED_TYPES = frozenset(
    {"beacon", "card", "cmd", "configuration", "lwt", "request", "status", "steps", "transition",
     "waypoint", "waypoints"}
)


class _Location(msgspec.Struct, frozen=True):
    type: Literal["location"] = msgspec.field(name="_type")
    lat: float
    lon: float
    tst: Tst
    acc: float | None = None
    vel: float | None = None
    cog: float | None = None
    batt: float | None = None
    alt: float | None = None
    vac: float | None = None
    tid: str | None = None
    t: str | None = None
    conn: str | None = None


class _Envelope(msgspec.Struct, frozen=True):
    type: str = msgspec.field(name="_type")


_decode_location = msgspec.json.Decoder(_Location).decode
_decode_envelope = msgspec.json.Decoder(_Envelope).decode


@dataclass(frozen=True, slots=True)
class OwnTracksFix:
    """One OwnTracks location. Optional values are None when the app left them out.

    The app omits ``acc``, ``alt``, ``cog``, ``vac`` and ``vel`` when they are zero, and also when the
    phone does not measure them, so None means "0 or unknown", never "known to be non-zero".
    """

    #: Fix time, UTC milliseconds since the epoch (``tst`` is in seconds).
    ts_ms: int
    #: WGS84 degrees; ranges are checked by :mod:`ingest.validate`, not here.
    lat: float
    lon: float
    #: Horizontal accuracy, metres (``acc``).
    accuracy_m: float | None = None
    #: Ground speed, km/h (``vel``).
    speed_kmh: float | None = None
    #: Course over ground, degrees clockwise from north (``cog``).
    heading_deg: float | None = None
    #: Phone battery, percent (``batt``).
    battery_pct: float | None = None
    #: Altitude above sea level, metres (``alt``).
    altitude_m: float | None = None
    #: Vertical accuracy of the altitude, metres (``vac``).
    vertical_accuracy_m: float | None = None
    #: Tracker id, the two-letter label the app shows (``tid``).
    tid: str | None = None
    #: What triggered the report (``t``): p ping, c region, b beacon, r requested, u user, t timer…
    trigger: str | None = None
    #: Connectivity when the message was built (``conn``): w Wi-Fi, m mobile, o offline.
    conn: str | None = None


def parse_topic(topic: str) -> tuple[str, str]:
    """``owntracks/{user}/{device}`` → ``(user, device)``; any other shape is ``unknown_topic``.

    The app's sub-topics (``…/event``, ``…/cmd``, ``…/waypoint``, ``…/step``…) are other shapes too.
    """
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "owntracks":
        raise RejectedInput("unknown_topic", f"expected owntracks/{{user}}/{{device}}, got {topic[:200]!r}")
    _, user, device = parts
    for what, value in (("user", user), ("device", device)):
        if not value or len(value) > MAX_DEVICE_ID_LEN or "+" in value or "#" in value:
            raise RejectedInput("unknown_topic", f"OwnTracks {what} must be 1-64 characters, no + or #")
    return user, device


def decode(payload: bytes) -> OwnTracksFix:
    """Decode one OwnTracks message; raises :class:`RejectedInput` (and nothing else) for any bytes."""
    try:
        loc = _decode_location(payload)
    except DECODE_ERRORS as exc:
        raise _refusal(payload, exc) from exc
    return OwnTracksFix(
        ts_ms=loc.tst * 1000,
        lat=loc.lat,
        lon=loc.lon,
        accuracy_m=loc.acc,
        speed_kmh=loc.vel,
        heading_deg=loc.cog,
        battery_pct=loc.batt,
        altitude_m=loc.alt,
        vertical_accuracy_m=loc.vac,
        tid=loc.tid,
        trigger=loc.t,
        conn=loc.conn,
    )


def _refusal(payload: bytes, exc: Exception) -> RejectedInput:
    if not isinstance(exc, msgspec.ValidationError):
        return RejectedInput(*reason(exc))
    try:
        kind = _decode_envelope(payload).type
    except DECODE_ERRORS as envelope_exc:
        return RejectedInput(*reason(envelope_exc))
    if kind == "encrypted":
        return RejectedInput("owntracks_encrypted", "encrypted OwnTracks payload; Vigil holds no key")
    if kind != "location":
        known = "documented" if kind in IGNORED_TYPES else "undocumented"
        return RejectedInput("owntracks_unsupported_type", f"{known} _type {kind[:64]!r} carries no location")
    return RejectedInput("invalid_schema", str(exc))
