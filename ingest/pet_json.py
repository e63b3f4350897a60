"""Decoder of the Vigil v1 JSON pet-tracker payloads, see docs/protocol.md.

Three streams on ``vigil/v1/pet/{device_id}/{stream}``: ``fix`` (a buffer of positions, decoded like
the car payload: one typed msgspec pass, and if it fails each fix on its own so one bad fix does not
cost the good ones), ``sos`` (the tracker's button was pressed) and ``heartbeat`` (alive + battery).

Every decoder raises :class:`RejectedInput` and nothing else, for any bytes. Reasons: ``malformed_json``,
``invalid_schema``, ``unsupported_version`` (``v`` other than 1, reported even when the rest of the
message does not fit the v1 schema), ``no_fixes`` and ``battery_out_of_range`` (outside 0..100 %). In a
``fix`` message a battery out of range costs only its fix, which goes to :attr:`PetDecoded.bad`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec

from vigil.errors import RejectedInput

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: The device's own id for an SOS press, used to recognise a redelivered or repeated press.
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]

STREAMS = ("fix", "sos", "heartbeat")


class PetFix(msgspec.Struct, frozen=True, gc=False):
    """One position. ``ts`` UTC ms; ``lat``/``lon`` WGS84 degrees; ``accuracy_m`` m (1σ radius);
    ``speed_kmh`` km/h; ``heading_deg`` degrees clockwise from north; ``battery_pct`` percent."""

    ts: Int64
    lat: float
    lon: float
    accuracy_m: float
    speed_kmh: float | None = None
    heading_deg: float | None = None
    battery_pct: float | None = None


class PetSos(msgspec.Struct, frozen=True):
    """An SOS press. ``ts`` UTC ms of the press; position (degrees, m) at the press, or None when the
    tracker had no fix; ``battery_pct`` percent, optional."""

    seq: Int64
    ts: Int64
    event_id: EventId
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    battery_pct: float | None = None
    v: int = 1
    device: str | None = None


class PetHeartbeat(msgspec.Struct, frozen=True):
    """A liveness report. ``ts`` UTC ms; ``battery_pct`` percent."""

    seq: Int64
    ts: Int64
    battery_pct: float
    v: int = 1
    device: str | None = None


class _FixMessage(msgspec.Struct, frozen=True):
    seq: Int64
    fixes: list[PetFix]
    v: int = 1
    device: str | None = None


class _LooseFixMessage(msgspec.Struct, frozen=True):
    seq: Int64
    fixes: list[msgspec.Raw]
    v: int = 1
    device: str | None = None


class _Version(msgspec.Struct, frozen=True):
    v: int = 1


_decode_message = msgspec.json.Decoder(_FixMessage).decode
_decode_loose = msgspec.json.Decoder(_LooseFixMessage).decode
_decode_fix = msgspec.json.Decoder(PetFix).decode
_decode_sos = msgspec.json.Decoder(PetSos).decode
_decode_heartbeat = msgspec.json.Decoder(PetHeartbeat).decode
_decode_version = msgspec.json.Decoder(_Version).decode
#: What msgspec raises on bad bytes: DecodeError (and its ValidationError), UnicodeDecodeError for
#: invalid UTF-8 inside a string, RecursionError for very deep nesting.
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


@dataclass(frozen=True, slots=True)
class PetDecoded:
    """A decoded ``fix`` message, shaped like :class:`ingest.vigil_json.Decoded`."""

    seq: int
    device: str | None
    fixes: list[PetFix]
    #: Index in the message of each decoded fix (differs from 0..n-1 only after a salvage).
    positions: list[int]
    #: (index in the message, reason, detail) of refused fixes, sorted by index.
    bad: list[tuple[int, str, str]]


def decode_fix(payload: bytes) -> PetDecoded:
    """Decode one ``fix`` message; raises :class:`RejectedInput` when nothing in it is usable."""
    try:
        msg = _decode_message(payload)
        fixes = msg.fixes
        positions = list(range(len(fixes)))
        bad: list[tuple[int, str, str]] = []
    except _DECODE_ERRORS as exc:
        msg, fixes, positions, bad = _salvage(payload, exc)
    _check_version(msg.v)
    if not fixes and not bad:
        raise RejectedInput("no_fixes", "the fixes list is empty")
    if any(not _battery_ok(f.battery_pct) for f in fixes):
        fixes, positions, bad = _drop_bad_batteries(fixes, positions, bad)
    return PetDecoded(seq=msg.seq, device=msg.device, fixes=fixes, positions=positions, bad=bad)


def decode_sos(payload: bytes) -> PetSos:
    """Decode one ``sos`` message; ``lat`` and ``lon`` must be both numbers or both null."""
    sos = _decode_whole(_decode_sos, payload)
    if (sos.lat is None) != (sos.lon is None):
        raise RejectedInput("invalid_schema", "lat and lon must both be numbers or both be null")
    _check_battery(sos.battery_pct)
    return sos


def decode_heartbeat(payload: bytes) -> PetHeartbeat:
    """Decode one ``heartbeat`` message."""
    beat = _decode_whole(_decode_heartbeat, payload)
    _check_battery(beat.battery_pct)
    return beat


#: Decoder per stream of ``vigil/v1/pet/{device_id}/{stream}``.
DECODERS = {"fix": decode_fix, "sos": decode_sos, "heartbeat": decode_heartbeat}


def _decode_whole(decoder, payload: bytes):
    try:
        msg = decoder(payload)
    except _DECODE_ERRORS as exc:
        raise _refusal(payload, exc) from exc
    _check_version(msg.v)
    return msg


def _salvage(payload: bytes, exc: Exception):
    refusal = _refusal(payload, exc)
    if refusal.reason != "invalid_schema":
        raise refusal from exc
    try:
        loose = _decode_loose(payload)
    except _DECODE_ERRORS as loose_exc:
        raise RejectedInput(*_reason(loose_exc)) from loose_exc
    fixes: list[PetFix] = []
    positions: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for i, raw in enumerate(loose.fixes):
        try:
            fixes.append(_decode_fix(raw))
            positions.append(i)
        except _DECODE_ERRORS as fix_exc:
            bad.append((i, *_reason(fix_exc)))
    return loose, fixes, positions, bad


def _refusal(payload: bytes, exc: Exception) -> RejectedInput:
    """The reason a payload failed its schema: bad JSON first, then an unsupported ``v``."""
    if not isinstance(exc, msgspec.ValidationError):
        return RejectedInput(*_reason(exc))
    try:
        version = _decode_version(payload).v
    except _DECODE_ERRORS as version_exc:
        return RejectedInput(*_reason(version_exc))
    if version != 1:
        return RejectedInput("unsupported_version", f"payload version {version}, this gateway speaks 1")
    return RejectedInput("invalid_schema", str(exc))


def _reason(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, msgspec.ValidationError):
        return "invalid_schema", str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "malformed_json", "a string is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "malformed_json", "JSON nested too deeply"
    return "malformed_json", str(exc)


def _check_version(v: int) -> None:
    if v != 1:
        raise RejectedInput("unsupported_version", f"payload version {v}, this gateway speaks 1")


def _battery_ok(pct: float | None) -> bool:
    return pct is None or 0.0 <= pct <= 100.0


def _check_battery(pct: float | None) -> None:
    if not _battery_ok(pct):
        raise RejectedInput("battery_out_of_range", f"battery_pct {pct} outside 0..100")


def _drop_bad_batteries(fixes: list[PetFix], positions: list[int], bad: list[tuple[int, str, str]]):
    kept: list[PetFix] = []
    kept_positions: list[int] = []
    bad = list(bad)
    for fix, i in zip(fixes, positions):
        if _battery_ok(fix.battery_pct):
            kept.append(fix)
            kept_positions.append(i)
        else:
            bad.append((i, "battery_out_of_range", f"battery_pct {fix.battery_pct} outside 0..100"))
    bad.sort()
    return kept, kept_positions, bad
