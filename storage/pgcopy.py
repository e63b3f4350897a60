"""Vectorised encoder for PostgreSQL's binary COPY format.

Each row is ``int16 field count`` then, per field, ``int32 length`` and the big-endian value, or a
length of -1 for NULL. Rows sharing a pattern of NULLs have a fixed layout, so each pattern becomes one
NumPy structured array filled column by column: no per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
#: PostgreSQL's timestamp epoch (2000-01-01 UTC) in Unix milliseconds.
PG_EPOCH_MS = 946_684_800_000


@dataclass(frozen=True, slots=True)
class Column:
    """One COPY field: values in a wire-ready dtype and, optionally, where they are NULL."""

    values: np.ndarray
    null: np.ndarray | None = None


def timestamptz(ts_ms: np.ndarray) -> np.ndarray:
    """UTC ms since the Unix epoch → PostgreSQL's int64 µs since 2000-01-01."""
    return (np.asarray(ts_ms, dtype=np.int64) - PG_EPOCH_MS) * 1000


def boolean(values: np.ndarray) -> np.ndarray:
    return (np.asarray(values) > 0).astype(np.uint8)


def encode(columns: list[Column]) -> bytes:
    """The whole COPY stream (header, rows, trailer) for equally long columns."""
    n = len(columns[0].values) if columns else 0
    if n == 0:
        return HEADER + TRAILER
    nullable = [i for i, c in enumerate(columns) if c.null is not None and c.null.any()]
    pattern = np.zeros(n, dtype=np.int64)
    for bit, i in enumerate(nullable):
        pattern |= columns[i].null.astype(np.int64) << bit
    parts = [HEADER]
    for key in np.unique(pattern):
        rows = np.flatnonzero(pattern == key)
        null_cols = {i for bit, i in enumerate(nullable) if (int(key) >> bit) & 1}
        parts.append(_encode_group(columns, rows, null_cols))
    parts.append(TRAILER)
    return b"".join(parts)


def _encode_group(columns: list[Column], rows: np.ndarray, null_cols: set[int]) -> bytes:
    spec: list[tuple[str, str | np.dtype]] = [("nfields", ">i2")]
    for i, col in enumerate(columns):
        spec.append((f"len{i}", ">i4"))
        if i not in null_cols:
            spec.append((f"val{i}", col.values.dtype.newbyteorder(">")))
    out = np.empty(len(rows), dtype=np.dtype(spec))
    out["nfields"] = len(columns)
    for i, col in enumerate(columns):
        if i in null_cols:
            out[f"len{i}"] = -1
        else:
            out[f"len{i}"] = col.values.dtype.itemsize
            out[f"val{i}"] = col.values[rows]
    return out.tobytes()
