"""Canonical JSON: the one byte string a certificate is signed as (rules: docs/certificates.md).

Objects with keys sorted by code point, no whitespace, UTF-8 without escaping non-ASCII, no NaN or
infinities, floats in Python's shortest round-trip form. ``parse_canonical`` accepts only bytes that are
already canonical, so two byte strings never carry the same certificate.
"""

from __future__ import annotations

import json
import math

from vigil.errors import RejectedInput


def _check(value: object) -> object:
    """Reject what would make the encoding ambiguous; -0.0 becomes 0.0 (they print differently)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("canonical JSON has no NaN or infinity")
        return 0.0 if value == 0.0 else value
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("canonical JSON object keys must be strings")
        return {k: _check(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_check(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise ValueError(f"canonical JSON cannot hold {type(value).__name__}")


def canonical_json(value: object) -> bytes:
    """The canonical UTF-8 bytes of a JSON value (dicts, lists, str, int, finite float, bool, None)."""
    return encode_parsed(_check(value))


def encode_parsed(value: object) -> bytes:
    """Canonical bytes of a value that came out of :func:`parse_canonical` (already checked)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def parse_canonical(data: bytes) -> object:
    """Parse ``data``; RejectedInput("not-json" | "not-canonical") unless it is exactly canonical JSON."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_float=_float)
    except _NegativeZero as exc:
        raise RejectedInput("not-canonical", "negative zero") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RejectedInput("not-json", str(exc)) from exc
    # json.loads yields string keys and (with the hooks) only finite floats other than -0.0, which is
    # all _check guards against; comparing the re-encoding settles key order, spacing and spelling.
    if encode_parsed(value) != data:
        raise RejectedInput("not-canonical", "the bytes differ from the canonical encoding of their content")
    return value


class _NegativeZero(Exception):
    pass


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if value == 0.0 and text.startswith("-"):
        raise _NegativeZero(text)
    return value
