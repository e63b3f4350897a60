"""Decoder of the Vigil v1 JSON car payload (``vigil/v1/car/{device_id}/fix``), see docs/protocol.md.

A message is decoded with a typed msgspec schema in one pass. If the schema fails, each fix is
decoded on its own so one bad fix does not cost the good ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec

from vigil.errors import RejectedInput

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


# gc=False: a fix holds only scalars, so the cycle collector need not track the millions decoded per
# minute (it doubled decode time in the ingest benchmark).
class Fix(msgspec.Struct, frozen=True, gc=False):
    ts: Int64
    lat: float
    lon: float
    speed_kmh: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None
    ignition: bool | None = None
    accel_g: tuple[float, float, float] | None = None


class Message(msgspec.Struct, frozen=True):
    seq: Int64
    fixes: list[Fix]
    v: int = 1
    device: str | None = None


class _LooseMessage(msgspec.Struct, frozen=True):
    seq: Int64
    fixes: list[msgspec.Raw]
    v: int = 1
    device: str | None = None


#: msgspec raises DecodeError (and ValidationError), UnicodeDecodeError for invalid UTF-8 inside a
#: string, RecursionError for absurdly deep nesting; all mean malformed input.
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_decode_message = msgspec.json.Decoder(Message).decode
_decode_loose = msgspec.json.Decoder(_LooseMessage).decode
_decode_fix = msgspec.json.Decoder(Fix).decode


@dataclass(frozen=True, slots=True)
class Decoded:
    seq: int
    device: str | None
    fixes: list[Fix]
    #: Index in the message of each decoded fix (differs from 0..n-1 only after a salvage).
    positions: list[int]
    #: (index in the message, reason, detail) of fixes that failed their schema.
    bad: list[tuple[int, str, str]]


def decode(payload: bytes) -> Decoded:
    """Decode one message; raises :class:`RejectedInput` when nothing in it is usable."""
    try:
        msg = _decode_message(payload)
        bad: list[tuple[int, str, str]] = []
        fixes = msg.fixes
        positions = list(range(len(fixes)))
    except _DECODE_ERRORS:
        msg, fixes, positions, bad = _salvage(payload)
    if msg.v != 1:
        raise RejectedInput("unsupported_version", f"payload version {msg.v}, this gateway speaks 1")
    if not fixes and not bad:
        raise RejectedInput("no_fixes", "the fixes list is empty")
    return Decoded(seq=msg.seq, device=msg.device, fixes=fixes, positions=positions, bad=bad)


def _salvage(payload: bytes):
    try:
        loose = _decode_loose(payload)
    except msgspec.ValidationError as exc:
        raise RejectedInput("invalid_schema", str(exc)) from exc
    except _DECODE_ERRORS as exc:
        raise RejectedInput("malformed_json", str(exc)) from exc
    fixes: list[Fix] = []
    positions: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for i, raw in enumerate(loose.fixes):
        try:
            fixes.append(_decode_fix(raw))
            positions.append(i)
        except _DECODE_ERRORS as exc:
            bad.append((i, "invalid_schema", str(exc)))
    return loose, fixes, positions, bad
