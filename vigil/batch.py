"""The columnar fix batch: one batch holds fixes of many devices, one NumPy array per field.

Units at this boundary: time UTC ms since the epoch, degrees WGS84, km/h, degrees, metres, g.
Missing optional values are NaN (floats) or -1 (``ignition``, ``seq``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vigil.errors import BusError

# (field, dtype): the wire order of :meth:`FixBatch.to_bytes` as well.
COLUMNS: tuple[tuple[str, np.dtype], ...] = (
    ("device", np.dtype("<i8")),       # registry id of the device (dense integer code)
    ("ts_ms", np.dtype("<i8")),        # fix time, UTC ms
    ("lat", np.dtype("<f8")),
    ("lon", np.dtype("<f8")),
    ("speed_kmh", np.dtype("<f4")),
    ("heading_deg", np.dtype("<f4")),
    ("accuracy_m", np.dtype("<f4")),
    ("ignition", np.dtype("<i1")),     # 1 on, 0 off, -1 unknown
    ("accel_x", np.dtype("<f4")),      # g, NaN when the device sends no accelerometer
    ("accel_y", np.dtype("<f4")),
    ("accel_z", np.dtype("<f4")),
    ("battery_pct", np.dtype("<f4")),  # device battery, %, NaN when not reported
    ("odometer_m", np.dtype("<f8")),   # device odometer, m, NaN when not reported
    ("seq", np.dtype("<i8")),          # sequence number of the carrying message, -1 unknown
    ("received_ms", np.dtype("<i8")),  # when the gateway received it, UTC ms
    ("late", np.dtype("<i1")),         # 1: arrived out of order or long after its time (see ingest.late)
)
_MAGIC = b"VFB1"
_HEADER = struct.Struct("<4sI")


@dataclass(slots=True)
class FixBatch:
    device: np.ndarray
    ts_ms: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    speed_kmh: np.ndarray
    heading_deg: np.ndarray
    accuracy_m: np.ndarray
    ignition: np.ndarray
    accel_x: np.ndarray
    accel_y: np.ndarray
    accel_z: np.ndarray
    seq: np.ndarray
    received_ms: np.ndarray
    battery_pct: np.ndarray | None = None
    odometer_m: np.ndarray | None = None
    late: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.device)
        if self.battery_pct is None:
            self.battery_pct = np.full(n, np.nan, dtype=np.float32)
        if self.odometer_m is None:
            self.odometer_m = np.full(n, np.nan)
        if self.late is None:
            self.late = np.zeros(n, dtype=np.int8)
        n = None
        for name, dtype in COLUMNS:
            arr = np.asarray(getattr(self, name), dtype=dtype)
            if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
                raise ValueError(f"column {name} must be 1-d of length {n}, got shape {arr.shape}")
            n = arr.shape[0]
            setattr(self, name, arr)

    def __len__(self) -> int:
        return int(self.device.shape[0])

    @classmethod
    def empty(cls) -> "FixBatch":
        return cls(**{name: np.empty(0, dtype) for name, dtype in COLUMNS})

    @classmethod
    def concat(cls, batches: Sequence["FixBatch"]) -> "FixBatch":
        if not batches:
            return cls.empty()
        return cls(**{name: np.concatenate([getattr(b, name) for b in batches]) for name, _ in COLUMNS})

    def take(self, index: np.ndarray) -> "FixBatch":
        """Rows at ``index`` (integer indices or a boolean mask), in that order."""
        return FixBatch(**{name: getattr(self, name)[index] for name, _ in COLUMNS})

    def sorted(self) -> "FixBatch":
        """Rows sorted by (device, ts_ms); stable, so equal keys keep arrival order."""
        return self.take(np.lexsort((self.ts_ms, self.device)))

    def devices(self) -> np.ndarray:
        return np.unique(self.device)

    def split(self, part: np.ndarray, parts: int) -> list["FixBatch"]:
        """Split into ``parts`` batches by the per-row partition number ``part``; order within each holds."""
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(parts + 1))
        return [self.take(order[bounds[i]:bounds[i + 1]]) for i in range(parts)]

    def to_bytes(self) -> bytes:
        """Compact wire form: a header then each column's raw little-endian bytes, in COLUMNS order."""
        chunks = [_HEADER.pack(_MAGIC, len(self))]
        chunks.extend(getattr(self, name).tobytes() for name, _ in COLUMNS)
        return b"".join(chunks)

    @classmethod
    def from_bytes(cls, data: bytes) -> "FixBatch":
        try:
            magic, n = _HEADER.unpack_from(data, 0)
        except struct.error as exc:
            raise BusError("fix batch frame too short") from exc
        if magic != _MAGIC:
            raise BusError(f"not a fix batch frame (magic {magic!r})")
        expected = _HEADER.size + n * sum(dtype.itemsize for _, dtype in COLUMNS)
        if len(data) != expected:
            raise BusError(f"fix batch frame of {len(data)} bytes, expected {expected}")
        offset = _HEADER.size
        cols = {}
        for name, dtype in COLUMNS:
            cols[name] = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
            offset += n * dtype.itemsize
        return cls(**cols)

