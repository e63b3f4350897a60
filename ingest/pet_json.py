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

from typing import Annotated

import msgspec

from ingest.jsonmsg import FixMessage, FixMessageDecoder, Int64, decode_whole
from vigil.errors import RejectedInput
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


_fix_decoder = FixMessageDecoder(PetFix)
_decode_sos = msgspec.json.Decoder(PetSos).decode
_decode_heartbeat = msgspec.json.Decoder(PetHeartbeat).decode


#: A decoded ``fix`` message, shaped like the car one (see :class:`ingest.jsonmsg.FixMessage`).
PetDecoded = FixMessage


def decode_fix(payload: bytes) -> PetDecoded:
    """Decode one ``fix`` message; raises :class:`RejectedInput` when nothing in it is usable."""
    msg = _fix_decoder.decode(payload)
    if all(_battery_ok(f.battery_pct) for f in msg.fixes):
        return msg
    fixes, positions, bad = _drop_bad_batteries(msg.fixes, msg.positions, msg.bad)
    return FixMessage(msg.seq, msg.device, fixes, positions, bad)


def decode_sos(payload: bytes) -> PetSos:
    """Decode one ``sos`` message; ``lat`` and ``lon`` must be both numbers or both null."""
    sos = decode_whole(_decode_sos, payload)
    if (sos.lat is None) != (sos.lon is None):
        raise RejectedInput("invalid_schema", "lat and lon must both be numbers or both be null")
    _check_battery(sos.battery_pct)
    return sos


def decode_heartbeat(payload: bytes) -> PetHeartbeat:
    """Decode one ``heartbeat`` message."""
    beat = decode_whole(_decode_heartbeat, payload)
    _check_battery(beat.battery_pct)
    return beat


#: Decoder per stream of ``vigil/v1/pet/{device_id}/{stream}``.
DECODERS = {"fix": decode_fix, "sos": decode_sos, "heartbeat": decode_heartbeat}


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
