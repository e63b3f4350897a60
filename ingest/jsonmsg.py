"""What the Vigil JSON payloads share: msgspec error → reason, the ``v`` check, and the fix-list
envelope decoded in one typed pass or, when that fails, fix by fix so one bad fix costs only itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from vigil.errors import RejectedInput

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: What msgspec raises on bad bytes: DecodeError (and its ValidationError), UnicodeDecodeError for
#: invalid UTF-8 inside a string, RecursionError for absurdly deep nesting.
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
F = TypeVar("F")


class _Version(msgspec.Struct, frozen=True):
    v: int = 1


class _Loose(msgspec.Struct, frozen=True):
    seq: Int64
    fixes: list[msgspec.Raw]
    v: int = 1
    device: str | None = None


_decode_version = msgspec.json.Decoder(_Version).decode
_decode_loose = msgspec.json.Decoder(_Loose).decode


def reason(exc: Exception) -> tuple[str, str]:
    """(reason, detail) of a msgspec failure."""
    if isinstance(exc, msgspec.ValidationError):
        return "invalid_schema", str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "malformed_json", "a string is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "malformed_json", "JSON nested too deeply"
    return "malformed_json", str(exc)


def check_version(v: int) -> None:
    if v != 1:
        raise RejectedInput("unsupported_version", f"payload version {v}, this gateway speaks 1")


def refusal(payload: bytes, exc: Exception) -> RejectedInput:
    """Why a payload failed its schema: bad JSON first, then an unsupported ``v``, then the schema."""
    if not isinstance(exc, msgspec.ValidationError):
        return RejectedInput(*reason(exc))
    try:
        version = _decode_version(payload).v
    except DECODE_ERRORS as version_exc:
        return RejectedInput(*reason(version_exc))
    if version != 1:
        return RejectedInput("unsupported_version", f"payload version {version}, this gateway speaks 1")
    return RejectedInput("invalid_schema", str(exc))


def decode_whole(decoder, payload: bytes) -> Any:
    """A single-object payload (an SOS, a heartbeat): decoded, version-checked, or refused."""
    try:
        msg = decoder(payload)
    except DECODE_ERRORS as exc:
        raise refusal(payload, exc) from exc
    check_version(msg.v)
    return msg


@dataclass(frozen=True, slots=True)
class FixMessage(Generic[F]):
    seq: int
    device: str | None
    fixes: list[F]
    #: Index in the message of each decoded fix (differs from 0..n-1 only after a salvage).
    positions: list[int]
    #: (index in the message, reason, detail) of refused fixes, sorted by index.
    bad: list[tuple[int, str, str]]


class FixMessageDecoder(Generic[F]):
    """``{"v": 1, "device": …, "seq": …, "fixes": [fix, …]}`` with fixes of the struct ``fix_type``."""

    def __init__(self, fix_type: type[F]) -> None:
        envelope = msgspec.defstruct(
            f"{fix_type.__name__}Message",
            [("seq", Int64), ("fixes", list[fix_type]), ("v", int, 1), ("device", str | None, None)],
            frozen=True,
        )
        self._decode_message = msgspec.json.Decoder(envelope).decode
        self._decode_fix = msgspec.json.Decoder(fix_type).decode

    def decode(self, payload: bytes) -> FixMessage[F]:
        """Raises :class:`RejectedInput` when nothing in the message is usable."""
        try:
            msg = self._decode_message(payload)
            fixes, positions, bad = msg.fixes, list(range(len(msg.fixes))), []
        except DECODE_ERRORS as exc:
            msg, fixes, positions, bad = self._salvage(payload, exc)
        check_version(msg.v)
        if not fixes and not bad:
            raise RejectedInput("no_fixes", "the fixes list is empty")
        return FixMessage(msg.seq, msg.device, fixes, positions, bad)

    def _salvage(self, payload: bytes, exc: Exception):
        whole = refusal(payload, exc)
        if whole.reason != "invalid_schema":
            raise whole from exc
        try:
            loose = _decode_loose(payload)
        except DECODE_ERRORS as loose_exc:
            raise RejectedInput(*reason(loose_exc)) from loose_exc
        fixes, positions, bad = [], [], []
        for i, raw in enumerate(loose.fixes):
            try:
                fixes.append(self._decode_fix(raw))
                positions.append(i)
            except DECODE_ERRORS as fix_exc:
                bad.append((i, *reason(fix_exc)))
        return loose, fixes, positions, bad
