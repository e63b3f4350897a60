"""Enter / exit / cross events from consecutive memberships, with anti-flap, as a pure ``step``.

State (:class:`GeofenceState`) is two small columnar tables:

- per device: the last processed fix (ts, lat, lon, accuracy), so the next batch's first fix has a predecessor
  for ``cross`` and fixes at or before it are ignored (a replay after a restart does not re-fire);
- per (device, fence_id): confirmed side (-1 unknown, 0 out, 1 in), pending side (-1 none), when the pending
  run started (UTC ms) and how many evidence fixes it holds. A missing row of a known device means "out, nothing
  pending" (rows in that state are pruned); a device seen for the first time adopts its first evidence side
  silently (no event: its history is unknown).

Evidence per (fix, fence), with anti-flap on (see :class:`geofence.shapes.AntiFlap`): ``in`` when the fix is
inside the boundary; ``out`` when beyond boundary + max(accuracy, hysteresis); none in between or when the
accuracy is too poor. With anti-flap off: in/out by the boundary alone, and one fix confirms.

A ``cross`` is emitted at a fix when the straight segment from the same device's previous fix (at most
``cross_max_gap_ms`` earlier) meets a fence that neither fix is inside, the device is not confirmed inside it,
and neither fix has too poor an accuracy.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, fields

import numpy as np

from geofence.confirm import HOLD, IN, OUT, UNKNOWN, confirm
from geofence.frames import ecef
from geofence.membership import in_box, pair_distance, segment_crosses, segment_hits
from geofence.shapes import SEGMENT_PAD_M, FenceSet
from vigil.errors import RejectedInput

ENTER, EXIT, CROSS = 1, 2, 3
KIND_NAMES = {ENTER: "enter", EXIT: "exit", CROSS: "cross"}
_MAGIC = b"VGS1"


@dataclass(frozen=True, slots=True)
class StepConfig:
    cross_max_gap_ms: int = 600_000   # 10 min: beyond that a straight line between two fixes is a guess


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


def _col(fixes, name, dtype):
    return np.asarray(fixes[name] if isinstance(fixes, dict) else getattr(fixes, name), dtype)


def step(state: GeofenceState, fixes, fs: FenceSet, config: StepConfig = StepConfig()
         ) -> tuple[GeofenceState, Events]:
    """Advance ``state`` over ``fixes`` and return (new state, events).

    ``fixes``: a :class:`vigil.batch.FixBatch` or a mapping with columns device (int), ts_ms (UTC ms),
    lat, lon (deg), accuracy_m (m, NaN = unknown), sorted by (device, ts_ms). Fixes at or before a device's
    last processed fix are ignored.
    """
    dev = _col(fixes, "device", np.int64)
    ts = _col(fixes, "ts_ms", np.int64)
    lat, lon = _col(fixes, "lat", float), _col(fixes, "lon", float)
    acc = _col(fixes, "accuracy_m", float)
    if len(dev) > 1 and ((np.diff(dev) < 0) | ((np.diff(dev) == 0) & (np.diff(ts) < 0))).any():
        raise RejectedInput("unsorted_fixes", "fixes must be sorted by (device, ts_ms)")
    sd = np.searchsorted(state.device, dev)
    known = (sd < len(state.device)) & (state.device[np.minimum(sd, len(state.device) - 1)] == dev) \
        if len(state.device) else np.zeros(len(dev), bool)
    prev_ts = np.where(known, state.last_ts[np.minimum(sd, max(len(state.device) - 1, 0))]
                       if len(state.device) else 0, np.iinfo(np.int64).min)
    fresh = ts > prev_ts
    dev, ts, lat, lon, acc = dev[fresh], ts[fresh], lat[fresh], lon[fresh], acc[fresh]
    if len(dev) == 0:
        return state, _events([], [], [], [], [], [], [])

    # Extended stream: each known device's last fix (context, no evidence) before its new fixes.
    ub = np.unique(dev)
    ci = np.searchsorted(state.device, ub)
    has = (ci < len(state.device))
    has[has] = state.device[ci[has]] == ub[has]
    ci = ci[has]
    e_dev = np.concatenate([state.device[ci], dev])
    e_ts = np.concatenate([state.last_ts[ci], ts])
    e_lat = np.concatenate([state.last_lat[ci], lat])
    e_lon = np.concatenate([state.last_lon[ci], lon])
    e_acc = np.concatenate([state.last_acc[ci], acc])
    e_ctx = np.concatenate([np.ones(len(ci), bool), np.zeros(len(dev), bool)])
    order = np.lexsort((~e_ctx, e_ts, e_dev))
    e_dev, e_ts, e_lat, e_lon, e_acc, e_ctx = (a[order] for a in (e_dev, e_ts, e_lat, e_lon, e_acc, e_ctx))
    acc0 = np.nan_to_num(e_acc, nan=0.0)
    nf = max(len(fs), 1)

    xyz = ecef(e_lat, e_lon).reshape(-1, 3)

    # Pairs of fixes and fences within the fence's pad; evidence from their distances.
    g_fix, g_fence = fs.grid.query(e_lat, e_lon) if len(fs) else (np.zeros(0, np.int64),) * 2
    sel = in_box(fs, g_fix, g_fence, e_lat, e_lon, fs.pad_m[g_fence]) if len(g_fix) else np.zeros(0, bool)
    g_fix, g_fence = g_fix[sel], g_fence[sel]
    af = fs.af_on[g_fence]
    g_margin = np.where(af, np.maximum(acc0[g_fix], fs.hysteresis_m[g_fence]), 0.0)
    g_d, g_in, g_e, g_n = pair_distance(fs, g_fence, xyz[g_fix], g_margin, depth=False)
    g_poor = af & (e_acc[g_fix] > fs.max_accuracy_m[g_fence])
    g_obs = np.where(g_poor, HOLD, np.where(g_in, IN, np.where(g_d <= g_margin, HOLD, OUT))).astype(np.int8)
    keep = (g_in | (g_d <= g_margin)) & ~e_ctx[g_fix]
    p_fix, p_fence, p_obs = g_fix[keep], g_fence[keep], g_obs[keep]

    c_row, c_fence = _crosses(fs, config, e_dev, e_ts, e_lat, e_lon, e_acc, e_ctx, xyz,
                              g_fix, g_fence, g_d, g_in, g_e, g_n)

    # Keys: state rows of these devices (fences still defined), near pairs, cross pairs.
    sk = np.flatnonzero(np.isin(state.key_device, ub))
    sk_f = fs.index_of(state.key_fence[sk])
    sk_live = sk[sk_f >= 0]
    k_dev = np.concatenate([state.key_device[sk_live], e_dev[p_fix], e_dev[c_row]])
    k_fidx = np.concatenate([sk_f[sk_f >= 0], p_fence, c_fence])
    comp, first = np.unique(np.searchsorted(ub, k_dev) * nf + k_fidx, return_index=True)
    k_dev, k_fidx = k_dev[first], k_fidx[first]
    K = len(comp)
    side = np.full(K, OUT, np.int8)
    side[~np.isin(k_dev, state.device)] = UNKNOWN
    pend = np.full(K, UNKNOWN, np.int8)
    since = np.zeros(K, np.int64)
    cnt = np.zeros(K, np.int64)
    if len(sk_live):
        at = np.searchsorted(comp, np.searchsorted(ub, state.key_device[sk_live]) * nf + sk_f[sk_f >= 0])
        side[at], pend[at] = state.side[sk_live], state.pending[sk_live]
        since[at], cnt[at] = state.pending_since_ms[sk_live], state.pending_count[sk_live]

    # Flattened (key, fix of its device) evidence.
    lo = np.searchsorted(e_dev, k_dev, "left")
    L = np.searchsorted(e_dev, k_dev, "right") - lo
    off = np.concatenate([[0], np.cumsum(L)])
    flat_key = np.repeat(np.arange(K), L)
    flat_row = np.repeat(lo - off[:-1], L) + np.arange(off[-1])
    fk = k_fidx[flat_key]
    obs = np.where(fs.af_on[fk] & (e_acc[flat_row] > fs.max_accuracy_m[fk]), HOLD, OUT).astype(np.int8)
    obs[e_ctx[flat_row]] = HOLD

    def pos_of(rows, fences):
        k = np.searchsorted(comp, np.searchsorted(ub, e_dev[rows]) * nf + fences)
        return off[k] + rows - lo[k]

    obs[pos_of(p_fix, p_fence)] = p_obs
    cross = np.zeros(off[-1], bool)
    cross[pos_of(c_row, c_fence)] = True

    need = np.where(fs.af_on[k_fidx], fs.min_fixes[k_fidx], 1) if len(fs) else np.ones(K, np.int64)
    dwell = np.where(fs.af_on[k_fidx], fs.min_dwell_ms[k_fidx], 0) if len(fs) else np.zeros(K, np.int64)
    res = confirm(flat_key, e_ts[flat_row], obs, side, pend, since, cnt, need, dwell)
    side, pend, since, cnt = res.side, res.pending, res.since, res.count
    fid = fs.fence_id if len(fs) else np.zeros(1, np.int64)
    xr, xk = flat_row[res.event_pos], flat_key[res.event_pos]
    cpos = np.flatnonzero(cross & (res.side_before != IN))
    cr, ck = flat_row[cpos], flat_key[cpos]
    ev = (np.concatenate([k_dev[xk], k_dev[ck]]), np.concatenate([fid[k_fidx[xk]], fid[k_fidx[ck]]]),
          np.concatenate([np.where(res.event_side == IN, ENTER, EXIT), np.full(len(cr), CROSS)]),
          np.concatenate([e_ts[xr], e_ts[cr]]), np.concatenate([res.event_since, e_ts[cr - 1]]),
          np.concatenate([e_lat[xr], e_lat[cr]]), np.concatenate([e_lon[xr], e_lon[cr]]))

    # New state: untouched rows plus the processed keys worth keeping.
    keep_k = (side != OUT) | (pend != UNKNOWN)
    rest = np.ones(len(state.key_device), bool)
    rest[sk_live] = False
    kd = np.concatenate([state.key_device[rest], k_dev[keep_k]])
    kf = np.concatenate([state.key_fence[rest], fs.fence_id[k_fidx[keep_k]] if len(fs) else k_fidx[keep_k]])
    korder = np.lexsort((kf, kd))
    last = np.searchsorted(e_dev, ub, "right") - 1
    drest = ~np.isin(state.device, ub)
    dd = np.concatenate([state.device[drest], ub])
    dorder = np.argsort(dd, kind="stable")

    def cat(a, b):
        return np.concatenate([a, b])

    new = GeofenceState(
        device=dd[dorder],
        last_ts=cat(state.last_ts[drest], e_ts[last])[dorder],
        last_lat=cat(state.last_lat[drest], e_lat[last])[dorder],
        last_lon=cat(state.last_lon[drest], e_lon[last])[dorder],
        last_acc=cat(state.last_acc[drest], e_acc[last])[dorder],
        key_device=kd[korder], key_fence=kf[korder],
        side=cat(state.side[rest], side[keep_k])[korder],
        pending=cat(state.pending[rest], pend[keep_k])[korder],
        pending_since_ms=cat(state.pending_since_ms[rest], since[keep_k])[korder],
        pending_count=cat(state.pending_count[rest], cnt[keep_k])[korder],
    )
    return new, _events(*ev)


def _crosses(fs, config, e_dev, e_ts, e_lat, e_lon, e_acc, e_ctx, xyz, g_fix, g_fence, g_d, g_in, g_e, g_n):
    """(row, fence index) of ``cross`` candidates: the segment from the previous fix meets a fence that
    neither fix is inside. Short segments reuse the grid pairs of both ends; long ones query the STRtree."""
    nf = max(len(fs), 1)
    seg = np.zeros(len(e_dev), bool)
    seg[1:] = (e_dev[1:] == e_dev[:-1]) & (e_ts[1:] - e_ts[:-1] <= config.cross_max_gap_ms) & ~e_ctx[1:]
    step_m = np.zeros(len(e_dev))
    step_m[1:] = np.sqrt(((xyz[1:] - xyz[:-1]) ** 2).sum(axis=1))
    short = seg & (step_m <= SEGMENT_PAD_M)
    rows, fences = [], []
    cand = short[g_fix] & ~g_in & (g_d < step_m[g_fix])
    if cand.any():
        key = g_fix * nf + g_fence
        order = np.argsort(key)
        ci = np.flatnonzero(cand)
        want = (g_fix[ci] - 1) * nf + g_fence[ci]
        at = order[np.minimum(np.searchsorted(key[order], want), len(order) - 1)]
        ok = (key[at] == want) & ~g_in[at] & (g_d[at] < step_m[g_fix[ci]])
        ci, at = ci[ok], at[ok]
        hit = segment_hits(fs, g_fence[ci], g_e[at], g_n[at], g_e[ci], g_n[ci])
        rows.append(g_fix[ci[hit]])
        fences.append(g_fence[ci[hit]])
    long_rows = np.flatnonzero(seg & ~short)
    if len(long_rows):
        s_idx, f = segment_crosses(fs, e_lat[long_rows - 1], e_lon[long_rows - 1], e_lat[long_rows], e_lon[long_rows])
        r = long_rows[s_idx]
        _, in_a, _, _ = pair_distance(fs, f, xyz[r - 1], depth=False)
        _, in_b, _, _ = pair_distance(fs, f, xyz[r], depth=False)
        rows.append(r[~in_a & ~in_b])
        fences.append(f[~in_a & ~in_b])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    row, fence = np.concatenate(rows), np.concatenate(fences)
    poor = fs.af_on[fence] & ((e_acc[row - 1] > fs.max_accuracy_m[fence]) | (e_acc[row] > fs.max_accuracy_m[fence]))
    return row[~poor], fence[~poor]


def _events(device, fence, kind, ts, since, lat, lon) -> Events:
    e = Events(np.asarray(device, np.int64), np.asarray(fence, np.int64), np.asarray(kind, np.int8),
               np.asarray(ts, np.int64), np.asarray(since, np.int64), np.asarray(lat, float),
               np.asarray(lon, float))
    o = np.lexsort((e.kind, e.fence, e.ts_ms, e.device))
    return Events(*(getattr(e, f.name)[o] for f in fields(e)))
