"""Enter / exit / cross events from consecutive memberships, with anti-flap, as a pure ``step``.

State (:class:`geofence.state.GeofenceState`) is two small columnar tables:

- per device: the last processed fix (ts, lat, lon, accuracy), so the next batch's first fix has a predecessor
  for ``cross`` and fixes at or before it are ignored (a replay after a restart does not re-fire);
- per (device, fence_id): confirmed side (-1 unknown, 0 out, 1 in), pending side (-1 none), when the pending
  run started (UTC ms) and how many evidence fixes it holds. A missing row of a known device means "out, nothing
  pending" (rows in that state are pruned); a device seen for the first time adopts its first evidence side
  silently (no event: its history is unknown).

Evidence per (fix, fence), with anti-flap on (see :class:`geofence.shapes.AntiFlap`), margin =
max(accuracy, hysteresis): ``in`` when the fix is deeper inside than the margin (capped at the fence's
``inner_cap_m`` so small fences can be entered); ``out`` when beyond boundary + margin; ``band`` in between
(no evidence, and it breaks a pending run: confirmation needs consecutive fixes on the new side); none at all
when the accuracy is too poor (skipped). With anti-flap off: in/out by the boundary alone, one fix confirms.

A ``cross`` is emitted at a fix when the straight segment from the same device's previous fix (at most
``cross_max_gap_ms`` earlier) meets a fence while both fixes are beyond its margin outside (just outside
with anti-flap off), the device is not confirmed inside it, and neither fix has too poor an accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geofence.confirm import BAND, HOLD, IN, OUT, UNKNOWN, confirm
from geofence.frames import ecef
from geofence.membership import candidates, in_grown_box, pair_distance, segment_crosses, segment_hits, sides
from geofence.shapes import FenceSet, wrap_lon
from geofence.state import CROSS, ENTER, EXIT, KIND_NAMES, Events, GeofenceState, _events
from vigil.errors import RejectedInput

__all__ = ["CROSS", "ENTER", "EXIT", "KIND_NAMES", "Events", "GeofenceState", "StepConfig", "step"]

_NONE = np.zeros(0, np.int64)


@dataclass(frozen=True, slots=True)
class StepConfig:
    cross_max_gap_ms: int = 600_000   # 10 min: beyond that a straight line between two fixes is a guess


def _col(fixes, name, dtype):
    return np.asarray(fixes[name] if isinstance(fixes, dict) else getattr(fixes, name), dtype)


def _member(sorted_values: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found mask, position) of each ``x`` in the sorted unique ``sorted_values``."""
    if len(sorted_values) == 0:
        return np.zeros(len(x), bool), np.zeros(len(x), np.int64)
    lo, hi = int(sorted_values[0]), int(sorted_values[-1])
    if 0 <= lo and hi < 4 * len(sorted_values) + 4096:      # dense device codes: a direct table
        table = np.full(hi + 1, -1, np.int64)
        table[sorted_values] = np.arange(len(sorted_values))
        pos = table[np.clip(x, 0, hi)]
        found = (x >= 0) & (x <= hi) & (pos >= 0)
        return found, np.maximum(pos, 0)
    pos = np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)
    return sorted_values[pos] == x, pos


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
    known, sd = _member(state.device, dev)
    if known.any():
        fresh = ~known | (ts > state.last_ts[sd])
        if not fresh.all():
            dev, ts, lat, lon, acc = dev[fresh], ts[fresh], lat[fresh], lon[fresh], acc[fresh]
    n = len(dev)
    if n == 0:
        return state, _events(*([],) * 7)

    # Extended stream: each known device's last fix (context, no evidence) just before its new fixes.
    ub = dev[np.concatenate([[True], dev[1:] != dev[:-1]])]
    has, ci = _member(state.device, ub)
    ci, ctx_dev = ci[has], ub[has]
    new_pos = np.arange(n) + np.searchsorted(ctx_dev, dev, "right")
    ctx_pos = np.searchsorted(dev, ctx_dev, "left") + np.arange(len(ci))
    m = n + len(ci)

    def stream(new, old):
        out = np.empty(m, new.dtype)
        out[new_pos] = new
        out[ctx_pos] = old
        return out

    e_dev = stream(dev, ctx_dev)
    e_ts = stream(ts, state.last_ts[ci])
    e_lat, e_lon = stream(lat, state.last_lat[ci]), stream(lon, state.last_lon[ci])
    e_acc = stream(acc, state.last_acc[ci])
    e_ctx = np.ones(m, bool)
    e_ctx[new_pos] = False
    nf = max(len(fs), 1)

    # Evidence: new fixes against the fences whose box grown by the usual margin holds them (the grid);
    # fixes with a larger margin (poor accuracy) ask the STRtree with their own.
    g_fix, g_fence = fs.grid.query(lat, lon) if len(fs) else (_NONE, _NONE)
    acc0 = np.nan_to_num(acc, nan=0.0)
    af_pad = fs.pad_m[fs.af_on]
    wide = acc0 > (float(af_pad.min()) if len(af_pad) else np.inf)
    sel = in_grown_box(fs, g_fence, lat[g_fix], lon[g_fix]) & ~wide[g_fix]
    g_fix, g_fence = g_fix[sel], g_fence[sel]
    if wide.any():
        w = np.flatnonzero(wide)
        w_fix, w_fence = candidates(fs, lat[w], lon[w], np.maximum(acc0[w], float(af_pad.max())))
        g_fix, g_fence = np.concatenate([g_fix, w[w_fix]]), np.concatenate([g_fence, w_fence])
    g_row = new_pos[g_fix]
    af = fs.af_on[g_fence]
    g_margin = _margin(fs, g_fence, e_acc[g_row])
    g_inner = np.minimum(g_margin, fs.inner_cap_m[g_fence])
    g_d, g_in, _, _ = pair_distance(fs, g_fence, _xyz(e_lat, e_lon, g_row), g_margin, g_inner)
    g_poor = af & (e_acc[g_row] > fs.max_accuracy_m[g_fence])
    near = g_in | (g_d <= g_margin)
    p_fix, p_fence = g_row[near], g_fence[near]
    deep = g_in[near] & (g_d[near] <= -g_inner[near])
    p_obs = np.where(g_poor[near], HOLD, np.where(deep, IN, BAND)).astype(np.int8)
    c_row, c_fence = _crosses(fs, config, e_dev, e_ts, e_lat, e_lon, e_acc)

    # Keys: state rows of these devices (fences still defined), near pairs, cross pairs.
    sk = np.flatnonzero(_member(ub, state.key_device)[0])
    sk_f = fs.index_of(state.key_fence[sk])
    sk_live = sk[sk_f >= 0]
    k_dev = np.concatenate([state.key_device[sk_live], e_dev[p_fix], e_dev[c_row]])
    k_fidx = np.concatenate([sk_f[sk_f >= 0], p_fence, c_fence])
    comp, first = np.unique(np.searchsorted(ub, k_dev) * nf + k_fidx, return_index=True)
    k_dev, k_fidx = k_dev[first], k_fidx[first]
    K = len(comp)
    side = np.where(_member(ctx_dev, k_dev)[0], OUT, UNKNOWN).astype(np.int8)
    pend = np.full(K, UNKNOWN, np.int8)
    since = np.zeros(K, np.int64)
    cnt = np.zeros(K, np.int64)
    if len(sk_live):
        at = np.searchsorted(comp, np.searchsorted(ub, state.key_device[sk_live]) * nf + sk_f[sk_f >= 0])
        side[at], pend[at] = state.side[sk_live], state.pending[sk_live]
        since[at], cnt[at] = state.pending_since_ms[sk_live], state.pending_count[sk_live]

    # Flattened (key, fix of its device) evidence: out by default, then the near pairs and crosses.
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
    events = _events(np.concatenate([k_dev[xk], k_dev[ck]]), np.concatenate([fid[k_fidx[xk]], fid[k_fidx[ck]]]),
                     np.concatenate([np.where(res.event_side == IN, ENTER, EXIT), np.full(len(cr), CROSS)]),
                     np.concatenate([e_ts[xr], e_ts[cr]]), np.concatenate([res.event_since, e_ts[cr - 1]]),
                     np.concatenate([e_lat[xr], e_lat[cr]]), np.concatenate([e_lon[xr], e_lon[cr]]))

    # New state: untouched rows plus the processed keys worth keeping.
    keep_k = (side != OUT) | (pend != UNKNOWN)
    rest = np.ones(len(state.key_device), bool)
    rest[sk_live] = False
    kd = np.concatenate([state.key_device[rest], k_dev[keep_k]])
    kf = np.concatenate([state.key_fence[rest], fid[k_fidx[keep_k]]])
    korder = np.lexsort((kf, kd))
    last = np.searchsorted(e_dev, ub, "right") - 1
    drest = np.ones(len(state.device), bool)
    drest[ci] = False
    kept = state.device[drest]
    d_pos = np.arange(len(kept)) + np.searchsorted(ub, kept)     # merge two sorted, disjoint device lists
    u_pos = np.arange(len(ub)) + np.searchsorted(kept, ub)

    def merged(old, new):
        out = np.empty(len(kept) + len(ub), new.dtype)
        out[d_pos] = old[drest]
        out[u_pos] = new
        return out

    new = GeofenceState(
        device=merged(state.device, ub), last_ts=merged(state.last_ts, e_ts[last]),
        last_lat=merged(state.last_lat, e_lat[last]), last_lon=merged(state.last_lon, e_lon[last]),
        last_acc=merged(state.last_acc, e_acc[last]),
        key_device=kd[korder], key_fence=kf[korder],
        side=np.concatenate([state.side[rest], side[keep_k]])[korder],
        pending=np.concatenate([state.pending[rest], pend[keep_k]])[korder],
        pending_since_ms=np.concatenate([state.pending_since_ms[rest], since[keep_k]])[korder],
        pending_count=np.concatenate([state.pending_count[rest], cnt[keep_k]])[korder],
    )
    return new, events


def _margin(fs: FenceSet, fence, acc) -> np.ndarray:
    """Anti-flap margin (m) per (fence, fix accuracy) pair; 0 for fences without anti-flap."""
    return np.where(fs.af_on[fence], np.maximum(np.nan_to_num(acc, nan=0.0), fs.hysteresis_m[fence]), 0.0)


def _clear_outside(fs: FenceSet, fence, xyz, acc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beyond the margin?, east, north) per pair."""
    margin = _margin(fs, fence, acc)
    d, _, east, north = pair_distance(fs, fence, xyz, margin, np.full(len(fence), np.inf))
    return d > margin, east, north


def _xyz(lat, lon, rows) -> np.ndarray:
    """ECEF (k, 3) of the given rows: computed for the rows that meet a fence, not for every fix."""
    return ecef(lat[rows], lon[rows]).reshape(-1, 3)


def _length_at_least(lat, lon, metres: float) -> np.ndarray:
    """Per consecutive pair of rows: may the step be ``metres`` or longer? Never says no wrongly (an
    equirectangular over-estimate, 1 % generous), so it only spares the exact work."""
    if metres <= 0:
        return np.ones(max(len(lat) - 1, 0), bool)
    dy = np.abs(np.diff(lat))
    dx = np.abs(wrap_lon(np.diff(lon))) * np.cos(np.radians(np.minimum(np.abs(lat[1:]), np.abs(lat[:-1]))))
    return (dx * dx + dy * dy) * (111_700.0 * 1.01) ** 2 >= metres * metres


def _crosses(fs, config, e_dev, e_ts, e_lat, e_lon, e_acc):
    """(row, fence index) of ``cross`` events-to-be: the segment from the device's previous fix meets a fence
    while both fixes are clearly outside it (beyond the anti-flap margin, so jitter around a parked car
    never crosses). Candidates come from the grid by segment box (the STRtree for very long segments)."""
    if len(fs) == 0:
        return _NONE, _NONE
    # Both ends beyond the margin and a path through the fence: at least twice the smallest margin long.
    shortest = 2.0 * float(fs.outer0_m.min())
    seg = np.flatnonzero((e_dev[1:] == e_dev[:-1]) & (e_ts[1:] - e_ts[:-1] <= config.cross_max_gap_ms)
                         & _length_at_least(e_lat, e_lon, shortest)) + 1
    if len(seg) == 0:
        return _NONE, _NONE
    la, lb, oa, ob = e_lat[seg - 1], e_lat[seg], e_lon[seg - 1], e_lon[seg]
    dlon = wrap_lon(ob - oa)
    lat_lo, lat_hi = np.minimum(la, lb), np.maximum(la, lb)
    lon_c, half = oa + dlon / 2, np.abs(dlon) / 2
    q, f, big = fs.grid.query_boxes(lat_lo, lat_hi, lon_c, half)
    box = fs.box_lat[f]
    near = (box[:, 0] <= lat_hi[q]) & (box[:, 1] >= lat_lo[q])
    gap = np.abs(wrap_lon(lon_c[q] - fs.box_lon[f, 0]))
    near &= gap <= half[q] + fs.box_lon[f, 1]
    key = np.unique(q[near] * len(fs) + f[near])
    q, f = key // len(fs), key % len(fs)
    if big.any():
        b = np.flatnonzero(big)
        s_idx, f2 = segment_crosses(fs, la[b], oa[b], lb[b], ob[b])
        q, f = np.concatenate([q, b[s_idx]]), np.concatenate([f, f2])
    r = seg[q]
    xyz_a, xyz_b = _xyz(e_lat, e_lon, r - 1), _xyz(e_lat, e_lon, r)
    in_a, ea, na = sides(fs, f, xyz_a)
    in_b, eb, nb = sides(fs, f, xyz_b)
    hit = ~in_a & ~in_b
    hit[hit] = segment_hits(fs, f[hit], ea[hit], na[hit], eb[hit], nb[hit])
    r, f = r[hit], f[hit]
    ok = (_clear_outside(fs, f, xyz_a[hit], e_acc[r - 1])[0] & _clear_outside(fs, f, xyz_b[hit], e_acc[r])[0])
    row, fence = r[ok], f[ok]
    poor = fs.af_on[fence] & ((e_acc[row - 1] > fs.max_accuracy_m[fence]) | (e_acc[row] > fs.max_accuracy_m[fence]))
    return row[~poor], fence[~poor]
