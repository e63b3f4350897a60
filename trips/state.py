"""Per-device memory of the streaming trip core, and its serialisation.

Two columnar tables make up a state. ``tail``: each device's recent fixes that later fixes still need
(stay windows, derivatives, the open road-class window), about ``min_stop_duration_s`` plus the fixes not
yet committed; sorted by (device, ts). ``carry``: one row per device: last accepted fix time, the open
trip's accumulators, each event kind's open run, and where the last trip ended (for stops).

So that a step costs what its batch touches and not the whole fleet's state, the rows live in
append-only column stores shared between successive states, behind a per-device index; a step appends
the touched devices' new rows and copies only the index. Stores are compacted once half their rows are
dead, and copied before a second state would append to the same store (states stay immutable). A state
persists as bytes (:meth:`TripState.to_bytes`) or JSON (:meth:`TripState.to_dict`), whole or per device
(:meth:`TripState.select`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from trips.runs import spans

# The fix columns the core keeps (a subset of vigil.batch.COLUMNS, plus the local-time offset and flags).
TRACK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("device", "<i8"), ("ts_ms", "<i8"), ("lat", "<f8"), ("lon", "<f8"), ("speed_kmh", "<f4"),
    ("heading_deg", "<f4"), ("ignition", "i1"), ("accel_x", "<f4"), ("accel_y", "<f4"), ("accel_z", "<f4"),
    ("utc_offset_min", "<i2"),
    ("done", "?"),     # already committed: its hop was counted and its stop flag is final
    ("stopped", "?"),  # the final stop flag (meaningful where done)
)

# Trip accumulators summed over hops: SUMS columns of the carry's (n, len(SUMS)) "trip_sums".
SUMS = ("distance_m", "moving_s", "night_m", "urban_m", "extra_urban_m", "highway_m", "hops",
        "speeding_s", "excess_kmh_s") + tuple(f"n{k}" for k in range(5)) + tuple(f"sev{k}" for k in range(5))
S = {name: i for i, name in enumerate(SUMS)}
MAXES = ("max_speed_kmh", "anchor_max_m")

NONE_MS = -(2**63)
CARRY_COLUMNS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("device", "<i8", ()), ("last_ts", "<i8", ()),
    ("trip_open", "?", ()), ("trip_start_ts", "<i8", ()), ("trip_start_lat", "<f8", ()),
    ("trip_start_lon", "<f8", ()), ("trip_sums", "<f8", (len(SUMS),)), ("trip_maxes", "<f8", (len(MAXES),)),
    ("ev_open", "?", (5,)), ("ev_ts", "<i8", (5,)), ("ev_lat", "<f8", (5,)), ("ev_lon", "<f8", (5,)),
    ("ev_peak", "<f8", (5,)), ("ev_dur", "<f8", (5,)),
    ("stop_ts", "<i8", ()), ("stop_lat", "<f8", ()), ("stop_lon", "<f8", ()),
)
_MAGIC = b"VTS1"


def empty_track(n: int = 0) -> dict[str, np.ndarray]:
    return {name: np.zeros(n, dtype) for name, dtype in TRACK_COLUMNS}


def new_carry(devices: np.ndarray) -> dict[str, np.ndarray]:
    """Fresh carry rows for ``devices`` (nothing open, no fix seen)."""
    n = len(devices)
    out = {name: np.zeros((n,) + shape, dtype) for name, dtype, shape in CARRY_COLUMNS}
    out["device"][:] = devices
    out["last_ts"][:] = NONE_MS
    out["stop_ts"][:] = -1
    return out


def take(table: dict[str, np.ndarray], index) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in table.items()}


def merge_by_device(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Merge two tables sorted by device; rows of ``b`` follow rows of ``a`` of the same device."""
    na, nb = len(a["device"]), len(b["device"])
    if na == 0:
        return b
    if nb == 0:
        return a
    bd = b["device"]
    run = np.flatnonzero(np.append(True, bd[1:] != bd[:-1]))      # one lookup per device run of b
    before = np.searchsorted(a["device"], bd[run], side="right")
    pos_b = np.arange(nb) + np.repeat(before, np.diff(np.append(run, nb)))
    from_b = np.zeros(na + nb, bool)
    from_b[pos_b] = True
    pos_a = np.flatnonzero(~from_b)
    out = {}
    for k, va in a.items():
        col = np.empty((na + nb,) + va.shape[1:], va.dtype)
        col[pos_b] = b[k]
        col[pos_a] = va
        out[k] = col
    return out


class _Store:
    """Append-only columns; rows [0, fill) are written. Shared by the states built on it."""

    __slots__ = ("cols", "fill")

    def __init__(self, cols: dict[str, np.ndarray], fill: int) -> None:
        self.cols, self.fill = cols, fill

    @classmethod
    def of(cls, table: dict[str, np.ndarray], capacity: int | None = None) -> "_Store":
        n = len(table["device"])
        cap = max(n, capacity or 0, 16)
        cols = {}
        for k, v in table.items():
            col = np.empty((cap,) + v.shape[1:], v.dtype)
            col[:n] = v
            cols[k] = col
        return cls(cols, n)

    def append(self, upto: int, table: dict[str, np.ndarray]) -> tuple["_Store", int]:
        """Store holding rows [0, upto) of this one, then ``table``; returns (store, first new row)."""
        n = len(table["device"])
        cap = len(self.cols["device"])
        store = self
        if self.fill != upto or upto + n > cap:   # another state appended past upto, or full: copy
            store = _Store.of({k: v[:upto] for k, v in self.cols.items()}, max(2 * cap, upto + n))
        for k, v in table.items():
            store.cols[k][upto:upto + n] = v
        store.fill = upto + n
        return store, upto


@dataclass(frozen=True, slots=True, eq=False)
class TripState:
    """Immutable; build with :meth:`empty`, :meth:`from_tables`, :meth:`from_bytes` or :meth:`from_dict`."""
    device: np.ndarray       # int64 (d,), sorted: the devices with a carry row
    tail_start: np.ndarray   # int64 (d,): first tail row in the tail store
    tail_len: np.ndarray     # int64 (d,)
    carry_row: np.ndarray    # int64 (d,): row in the carry store
    _tail: _Store
    _tail_upto: int
    _carry: _Store
    _carry_upto: int
    _dead: int               # rows of either store no longer referenced

    @classmethod
    def empty(cls) -> "TripState":
        return cls.from_tables(empty_track(), new_carry(np.zeros(0, np.int64)))

    @classmethod
    def from_tables(cls, tail: dict[str, np.ndarray], carry: dict[str, np.ndarray]) -> "TripState":
        """From a tail table (sorted by device, ts) and a carry table (sorted by device, covering them)."""
        dev = np.asarray(carry["device"], np.int64)
        lo = np.searchsorted(tail["device"], dev, side="left")
        hi = np.searchsorted(tail["device"], dev, side="right")
        return cls(dev, lo, hi - lo, np.arange(len(dev), dtype=np.int64),
                   _Store.of(tail), len(tail["device"]), _Store.of(carry), len(dev), 0)

    def __len__(self) -> int:
        """Number of devices with a carry row."""
        return int(len(self.device))

    def devices(self) -> np.ndarray:
        return self.device

    def gather(self, devices: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(tail, carry) tables of ``devices`` (sorted, unique); unknown devices get fresh carry rows."""
        devices = np.asarray(devices, np.int64)
        pos = np.minimum(np.searchsorted(self.device, devices), max(len(self.device) - 1, 0))
        known = (self.device[pos] == devices) if len(self.device) else np.zeros(len(devices), bool)
        p = pos[known]
        rows = spans(self.tail_start[p], self.tail_len[p])
        tail = {k: v[rows] for k, v in self._tail.cols.items()}
        carry = {k: v[self.carry_row[p]] for k, v in self._carry.cols.items()}
        if not known.all():
            carry = merge_by_device(carry, new_carry(devices[~known]))
        return tail, carry

    def replace(self, tail: dict[str, np.ndarray], carry: dict[str, np.ndarray]) -> "TripState":
        """A state where the devices of ``carry`` (sorted) have these tail rows and carry rows."""
        dev = carry["device"]
        pos = np.minimum(np.searchsorted(self.device, dev), max(len(self.device) - 1, 0))
        known = (self.device[pos] == dev) if len(self.device) else np.zeros(len(dev), bool)
        dead = self._dead + int(self.tail_len[pos[known]].sum()) + int(known.sum())
        tail_store, t0 = self._tail.append(self._tail_upto, tail)
        carry_store, c0 = self._carry.append(self._carry_upto, carry)
        lo = np.searchsorted(tail["device"], dev, side="left")
        hi = np.searchsorted(tail["device"], dev, side="right")
        if known.all():
            device, start, length, row = (self.device, self.tail_start.copy(), self.tail_len.copy(),
                                          self.carry_row.copy())
            at = pos
        else:
            device = np.union1d(self.device, dev)
            old = np.searchsorted(device, self.device)
            start, length, row = (np.zeros(len(device), np.int64) for _ in range(3))
            start[old], length[old], row[old] = self.tail_start, self.tail_len, self.carry_row
            at = np.searchsorted(device, dev)
        start[at], length[at], row[at] = t0 + lo, hi - lo, c0 + np.arange(len(dev))
        out = TripState(device, start, length, row, tail_store, t0 + len(tail["device"]), carry_store,
                        c0 + len(dev), dead)
        live = int(length.sum()) + len(device)
        if dead > max(live, 1 << 16):
            return TripState.from_tables(out.tail, out.carry)
        return out

    @property
    def tail(self) -> dict[str, np.ndarray]:
        return self.gather(self.device)[0]

    @property
    def carry(self) -> dict[str, np.ndarray]:
        return self.gather(self.device)[1]

    def last_ts(self) -> np.ndarray:
        """int64 (d,): last accepted fix time per device (NONE_MS: none)."""
        return self._carry.cols["last_ts"][self.carry_row]

    def select(self, devices: Iterable[int]) -> "TripState":
        """The state of ``devices`` only (e.g. one device, to persist it as its own row)."""
        devices = np.unique(np.asarray(list(devices) if not isinstance(devices, np.ndarray) else devices,
                                       np.int64))
        return TripState.from_tables(*self.gather(devices[np.isin(devices, self.device)]))

    @classmethod
    def combine(cls, states: Sequence["TripState"]) -> "TripState":
        """Union of states of disjoint device sets (e.g. loaded per device from storage)."""
        tail, carry = empty_track(), new_carry(np.zeros(0, np.int64))
        for s in states:
            tail, carry = merge_by_device(tail, s.tail), merge_by_device(carry, s.carry)
        return cls.from_tables(tail, carry)

    def to_bytes(self) -> bytes:
        """Self-describing binary form: magic, JSON header (names, dtypes, shapes), raw little-endian columns."""
        tail, carry = self.gather(self.device)
        cols = [("t:" + k, v) for k, v in tail.items()] + [("c:" + k, v) for k, v in carry.items()]
        header = json.dumps([[k, v.dtype.str, list(v.shape)] for k, v in cols]).encode()
        return b"".join([_MAGIC, struct.pack("<I", len(header)), header]
                        + [np.ascontiguousarray(v).tobytes() for _, v in cols])

    @classmethod
    def from_bytes(cls, data: bytes) -> "TripState":
        if data[:4] != _MAGIC:
            raise ValueError("not a serialised TripState")
        (hlen,) = struct.unpack_from("<I", data, 4)
        offset = 8 + hlen
        tail, carry = {}, {}
        for key, dtype, shape in json.loads(data[8:offset]):
            dt = np.dtype(dtype)
            count = int(np.prod(shape))
            arr = np.frombuffer(data, dt, count, offset).reshape(shape)
            offset += count * dt.itemsize
            (tail if key.startswith("t:") else carry)[key[2:]] = arr
        return cls.from_tables(tail, carry)

    def to_dict(self) -> dict:
        """JSON-ready nested lists (NaN stays float NaN)."""
        tail, carry = self.gather(self.device)
        return {"tail": {k: v.tolist() for k, v in tail.items()},
                "carry": {k: v.tolist() for k, v in carry.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "TripState":
        tail = {name: np.asarray(d["tail"][name], dtype).reshape(-1) for name, dtype in TRACK_COLUMNS}
        carry = {name: np.asarray(d["carry"][name], dtype).reshape((-1,) + shape)
                 for name, dtype, shape in CARRY_COLUMNS}
        return cls.from_tables(tail, carry)
