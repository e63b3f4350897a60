"""Geofence state and event records: small columnar tables, serialisable, no behaviour beyond that."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, fields

import numpy as np

from vigil.errors import RejectedInput

ENTER, EXIT, CROSS = 1, 2, 3
KIND_NAMES = {ENTER: "enter", EXIT: "exit", CROSS: "cross"}
_MAGIC = b"VGS1"


@dataclass(frozen=True, slots=True, eq=False)
class Events:
    """Columnar events, sorted by (device, ts_ms, fence, kind). ``fence`` is the fence_id (not an index).

    ``lat``/``lon``/``ts_ms`` are of the fix that confirmed the event; ``since_ms`` is when the new side was
    first seen (enter/exit) or the previous fix's time (cross).
    """
    device: np.ndarray    # int64
    fence: np.ndarray     # int64 fence_id
    kind: np.ndarray      # int8: ENTER, EXIT, CROSS
    ts_ms: np.ndarray     # int64 UTC ms
    since_ms: np.ndarray  # int64 UTC ms
    lat: np.ndarray       # float64 deg
    lon: np.ndarray       # float64 deg

    def __len__(self) -> int:
        return len(self.device)

    def rows(self) -> list[tuple]:
        """(device, fence, kind name, ts_ms) tuples: for tests and logs, not hot paths."""
        return [(int(d), int(f), KIND_NAMES[int(k)], int(t))
                for d, f, k, t in zip(self.device, self.fence, self.kind, self.ts_ms)]


_DEV_COLS = (("device", "<i8"), ("last_ts", "<i8"), ("last_lat", "<f8"), ("last_lon", "<f8"), ("last_acc", "<f8"))
_KEY_COLS = (("key_device", "<i8"), ("key_fence", "<i8"), ("side", "i1"), ("pending", "i1"),
             ("pending_since_ms", "<i8"), ("pending_count", "<i8"))


@dataclass(frozen=True, slots=True, eq=False)
class GeofenceState:
    """Immutable; per-device table sorted by device, per-key table sorted by (device, fence_id)."""
    device: np.ndarray
    last_ts: np.ndarray
    last_lat: np.ndarray
    last_lon: np.ndarray
    last_acc: np.ndarray
    key_device: np.ndarray
    key_fence: np.ndarray
    side: np.ndarray
    pending: np.ndarray
    pending_since_ms: np.ndarray
    pending_count: np.ndarray

    @classmethod
    def empty(cls) -> "GeofenceState":
        return cls(**{name: np.zeros(0, dt) for name, dt in _DEV_COLS + _KEY_COLS})

    def to_bytes(self) -> bytes:
        """Magic, JSON header (names, dtypes, lengths), raw little-endian columns."""
        cols = [(name, np.ascontiguousarray(getattr(self, name), dt)) for name, dt in _DEV_COLS + _KEY_COLS]
        header = json.dumps([[k, v.dtype.str, len(v)] for k, v in cols]).encode()
        return b"".join([_MAGIC, struct.pack("<I", len(header)), header] + [v.tobytes() for _, v in cols])

    @classmethod
    def from_bytes(cls, data: bytes) -> "GeofenceState":
        if data[:4] != _MAGIC:
            raise RejectedInput("invalid_state", "not a serialised GeofenceState")
        (hlen,) = struct.unpack_from("<I", data, 4)
        offset = 8 + hlen
        cols = {}
        for name, dtype, n in json.loads(data[8:offset]):
            dt = np.dtype(dtype)
            cols[name] = np.frombuffer(data, dt, n, offset).copy()
            offset += n * dt.itemsize
        return cls(**cols)

    def equals(self, other: "GeofenceState") -> bool:
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name), equal_nan=True)
                   for f in fields(self))


def _events(device, fence, kind, ts, since, lat, lon) -> Events:
    e = Events(np.asarray(device, np.int64), np.asarray(fence, np.int64), np.asarray(kind, np.int8),
               np.asarray(ts, np.int64), np.asarray(since, np.int64), np.asarray(lat, float),
               np.asarray(lon, float))
    o = np.lexsort((e.kind, e.fence, e.ts_ms, e.device))
    return Events(*(getattr(e, f.name)[o] for f in fields(e)))
