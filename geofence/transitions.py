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
from geofence.frames import east_north, ecef
from geofence.membership import (beyond, candidates, candidates_box, evidence, in_grown_box, segment_hits,
                                 segment_reaches)
from geofence.shapes import FenceSet, segment_half_fits, wrap_lon
from geofence.state import CROSS, ENTER, EXIT, KIND_NAMES, Events, GeofenceState, _events
from vigil.errors import RejectedInput

__all__ = ["CROSS", "ENTER", "EXIT", "KIND_NAMES", "Events", "GeofenceState", "StepConfig", "step"]

_NONE = np.zeros(0, np.int64)


@dataclass(frozen=True, slots=True)
class StepConfig:
    cross_max_gap_ms: int = 600_000   # 10 min: beyond that a straight line between two fixes is a guess
    #: Skip the candidate search of fixes and segments the fence set's clearance map shows to be clear of every
    #: fence (:mod:`geofence.clear`); the results are the same either way (False: for tests and benchmarks).
    shortcut: bool = True


def _col(fixes, name, dtype):
    return np.asarray(fixes[name] if isinstance(fixes, dict) else getattr(fixes, name), dtype)


def _finder(sorted_values: np.ndarray):
    """A function giving (found mask, position) of each ``x`` in the sorted unique ``sorted_values``."""
    if len(sorted_values) == 0:
        return lambda x: (np.zeros(len(x), bool), np.zeros(len(x), np.int64))
    lo, hi = int(sorted_values[0]), int(sorted_values[-1])
    if 0 <= lo and hi < 4 * len(sorted_values) + 4096:      # dense device codes: a direct table
        table = np.full(hi + 1, -1, np.int64)
        table[sorted_values] = np.arange(len(sorted_values))

        def find(x):
            pos = table[np.clip(x, 0, hi)]
            return (x >= 0) & (x <= hi) & (pos >= 0), np.maximum(pos, 0)
        return find

    def search(x):
        pos = np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)
        return sorted_values[pos] == x, pos
    return search


def _member(sorted_values: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found mask, position) of each ``x`` in the sorted unique ``sorted_values``."""
    return _finder(sorted_values)(x)


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
    if len(dev) > 1:
        step_dev = np.diff(dev)
        same = np.flatnonzero(step_dev == 0)          # usually none: one fix per device
        if (step_dev < 0).any() or (ts[same + 1] < ts[same]).any():
            raise RejectedInput("unsorted_fixes", "fixes must be sorted by (device, ts_ms)")
    if len(dev) == len(state.device) and np.array_equal(dev, state.device):    # every known device, once
        known, sd = np.ones(len(dev), bool), np.arange(len(dev))
    else:
        known, sd = _member(state.device, dev)
    if known.any():
        fresh = ~known | (ts > state.last_ts[sd])
        if not fresh.all():
            dev, ts, lat, lon, acc = dev[fresh], ts[fresh], lat[fresh], lon[fresh], acc[fresh]
            known, sd = known[fresh], sd[fresh]
    n = len(dev)
    if n == 0:
        return state, _events(*([],) * 7)

    # Extended stream: each known device's last fix (context, no evidence) just before its new fixes.
    # Per device group g (ub[g]): its fixes start at starts[g]; its rows in the stream at e_start[g].
    first_of = np.empty(n, bool)
    first_of[0] = True
    np.not_equal(dev[1:], dev[:-1], out=first_of[1:])
    starts = np.flatnonzero(first_of)
    ub, has = dev[starts], known[starts]
    G = len(ub)
    ci = sd[starts][has]
    ctx_before = np.cumsum(has) - has                  # context rows ahead of each group
    e_start = starts + ctx_before
    e_len = np.diff(np.append(starts, n)) + has
    m = n + len(ci)
    alternating = m == 2 * n and G == n      # the usual batch: one fix per known device, context and fix alternate
    if alternating:
        new_pos, ctx_pos = slice(1, m, 2), slice(0, m, 2)
    else:
        new_pos = np.arange(n) + ctx_before[np.cumsum(first_of) - 1] + has[np.cumsum(first_of) - 1]
        ctx_pos = e_start[has]

    every = alternating and len(ci) == len(state.device)     # ci is then 0, 1, 2, ...: no gathers needed

    def stream(new, old):
        out = np.empty(m, new.dtype)
        out[new_pos] = new
        out[ctx_pos] = old if every else old[ci]
        return out

    # In the alternating stream a row's device group is row // 2, and rows pair up for segments.
    e_dev = None if alternating else stream(dev, state.device)
    e_grp = None if alternating else np.repeat(np.arange(G), e_len)
    e_ts = stream(ts, state.last_ts)
    e_lat, e_lon = stream(lat, state.last_lat), stream(lon, state.last_lon)
    e_acc = stream(acc, state.last_acc)
    rank = _finder(ub)
    nf = max(len(fs), 1)

    # Evidence: new fixes against the fences whose box grown by the usual margin holds them (the grid);
    # fixes with a larger margin (poor accuracy) ask the STRtree with their own.
    acc0 = np.nan_to_num(acc, nan=0.0)
    af_pad = fs.pad_m[fs.af_on]
    wide = acc0 > (float(af_pad.min()) if len(af_pad) else np.inf)
    # Fixes in cells clear of every grown box (and with the usual margin) have no candidate: not looked up.
    clear_d, clear_cells = fs.clear.lookup_cells(lat, lon) if config.shortcut and len(fs) else (None, None)
    if not len(fs):
        g_fix, g_fence = _NONE, _NONE
    elif clear_d is None or not fs.clear.enabled:
        g_fix, g_fence = fs.grid.query(lat, lon)
    else:
        ask = np.flatnonzero((clear_d == 0) | wide)
        g_fix, g_fence = fs.grid.query(lat[ask], lon[ask])
        g_fix = ask[g_fix]
    sel = in_grown_box(fs, g_fence, lat[g_fix], lon[g_fix]) & ~wide[g_fix]
    g_fix, g_fence = g_fix[sel], g_fence[sel]
    if wide.any():
        w = np.flatnonzero(wide)
        w_fix, w_fence = candidates(fs, lat[w], lon[w], np.maximum(acc0[w], float(af_pad.max())))
        g_fix, g_fence = np.concatenate([g_fix, w[w_fix]]), np.concatenate([g_fence, w_fence])
    g_row = 2 * g_fix + 1 if alternating else np.arange(m)[new_pos][g_fix]      # stream rows of the new fixes
    af = fs.af_on[g_fence]
    # Usually no fix's accuracy exceeds the hysteresis: then every margin is the fence's usual one.
    any_wide = bool((e_acc > (float(fs.hysteresis_m[fs.af_on].min()) if fs.af_on.any() else np.inf)).any())
    if any_wide:
        g_margin = _margin(fs, g_fence, e_acc[g_row])
        g_inner = np.minimum(g_margin, fs.inner_cap_m[g_fence])
    else:
        g_margin, g_inner = fs.outer0_m[g_fence], fs.inner0_m[g_fence]
    near, deep = evidence(fs, g_fence, _xyz(e_lat, e_lon, g_row), g_margin, g_inner)
    # A fix too poor for some fence is rare: the per-pair tests are skipped when no fix is worse than the
    # smallest max_accuracy_m of the fences with anti-flap.
    worst_ok = float(fs.max_accuracy_m[fs.af_on].min()) if fs.af_on.any() else np.inf
    any_poor = bool((e_acc > worst_ok).any())
    g_poor = af & (e_acc[g_row] > fs.max_accuracy_m[g_fence]) if any_poor else np.zeros(len(g_row), bool)
    p_fix, p_fence = g_row[near], g_fence[near]
    deep = deep[near]
    p_obs = np.where(g_poor[near], HOLD, np.where(deep, IN, BAND)).astype(np.int8)
    e_clear = None
    if clear_d is not None and fs.clear.enabled:
        e_clear = clear_d if alternating else stream(clear_d, np.zeros(len(state.device), np.uint8))
    c_row, c_fence = _crosses(fs, config, e_dev, e_ts, e_lat, e_lon, e_acc, np.sort(p_fix * nf + p_fence),
                              alternating, any_poor, any_wide, e_clear, clear_cells)

    # Keys: state rows of these devices (fences still defined), near pairs, cross pairs.
    s_found, s_grp = rank(state.key_device)
    sk = np.flatnonzero(s_found)
    sk_f = fs.index_of(state.key_fence[sk])
    live = sk_f >= 0
    sk_live, sk_f, sk_grp = sk[live], sk_f[live], s_grp[sk[live]]
    k_grp = np.concatenate([sk_grp, p_fix >> 1, c_row >> 1] if alternating else [sk_grp, e_grp[p_fix], e_grp[c_row]])
    k_fidx = np.concatenate([sk_f, p_fence, c_fence])
    comp, first, key_of = np.unique(k_grp * nf + k_fidx, return_index=True, return_inverse=True)
    k_grp, k_fidx = k_grp[first], k_fidx[first]
    ns, npf = len(sk_grp), len(p_fix)
    k_dev = ub[k_grp]
    K = len(comp)
    side = np.where(has[k_grp], OUT, UNKNOWN).astype(np.int8)
    pend = np.full(K, UNKNOWN, np.int8)
    since = np.zeros(K, np.int64)
    cnt = np.zeros(K, np.int64)
    if len(sk_live):
        at = key_of[:ns]
        side[at], pend[at] = state.side[sk_live], state.pending[sk_live]
        since[at], cnt[at] = state.pending_since_ms[sk_live], state.pending_count[sk_live]

    # Flattened (key, fix of its device) evidence: out by default, then the near pairs and crosses.
    # Context rows would be HOLD (no evidence): only each device's new fixes are laid out.
    lo, L = e_start[k_grp] + has[k_grp], e_len[k_grp] - has[k_grp]
    off = np.concatenate([[0], np.cumsum(L)])
    flat_key = np.repeat(np.arange(K), L)
    flat_row = np.repeat(lo - off[:-1], L) + np.arange(off[-1])
    fk = k_fidx[flat_key]
    if any_poor:
        obs = np.where(fs.af_on[fk] & (e_acc[flat_row] > fs.max_accuracy_m[fk]), HOLD, OUT).astype(np.int8)
    else:
        obs = np.full(len(fk), OUT, np.int8)

    def pos_of(rows, k):
        return off[k] + rows - lo[k]

    obs[pos_of(p_fix, key_of[ns:ns + npf])] = p_obs
    cross = np.zeros(off[-1], bool)
    cross[pos_of(c_row, key_of[ns + npf:])] = True

    need = np.where(fs.af_on[k_fidx], fs.min_fixes[k_fidx], 1) if len(fs) else np.ones(K, np.int64)
    dwell = np.where(fs.af_on[k_fidx], fs.min_dwell_ms[k_fidx], 0) if len(fs) else np.zeros(K, np.int64)
    cpos = np.flatnonzero(cross)
    res = confirm(flat_key, e_ts[flat_row], obs, side, pend, since, cnt, need, dwell, at=cpos)
    side, pend, since, cnt = res.side, res.pending, res.since, res.count
    fid = fs.fence_id if len(fs) else np.zeros(1, np.int64)
    xr, xk = flat_row[res.event_pos], flat_key[res.event_pos]
    cpos = cpos[res.side_before != IN]
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
    korder = _order_by(kd, kf)
    last = e_start + e_len - 1
    drest = np.ones(len(state.device), bool)
    drest[ci] = False
    kept = state.device[drest]

    def merged(old, new):
        if len(kept) == 0:
            return new
        out = np.empty(len(kept) + len(ub), new.dtype)
        out[d_pos] = old[drest]
        out[u_pos] = new
        return out

    if len(kept):
        d_pos = np.arange(len(kept)) + np.searchsorted(ub, kept)     # merge two sorted, disjoint device lists
        u_pos = np.arange(len(ub)) + np.searchsorted(kept, ub)
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


def _order_by(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """``np.lexsort((minor, major))``; as one stable argsort of a combined key when it fits in int64 (the
    rows arrive mostly sorted, which a stable sort exploits)."""
    if len(major) == 0:
        return np.zeros(0, np.int64)
    lo, span = int(minor.min()), int(minor.max()) - int(minor.min()) + 1
    if int(major.min()) >= 0 and (int(major.max()) + 1) * span < 2 ** 62:
        return np.argsort(major * span + (minor - lo), kind="stable")
    return np.lexsort((minor, major))


def _margin(fs: FenceSet, fence, acc) -> np.ndarray:
    """Anti-flap margin (m) per (fence, fix accuracy) pair; 0 for fences without anti-flap."""
    return np.where(fs.af_on[fence], np.maximum(np.nan_to_num(acc, nan=0.0), fs.hysteresis_m[fence]), 0.0)


def _segment_candidates(fs: FenceSet, lat_lo, lat_hi, lon_c, half, cos_low) -> tuple[np.ndarray, np.ndarray]:
    """(segment, fence index) pairs, unique, whose boxes meet: segment boxes in degrees (lat range, lon centre
    ± half; ``cos_low`` the cosine of the box's latitude nearest the equator). Short segments look up their
    midpoint in ``seg_grid``; longer ones query the grid by box, and the longest the STRtree."""
    short = segment_half_fits((lat_hi - lat_lo) / 2, half, cos_low)
    s = np.flatnonzero(short)
    q, f = fs.seg_grid.query((lat_lo[s] + lat_hi[s]) / 2, lon_c[s])
    q = s[q]
    extra = _NONE, _NONE
    if not short.all():
        l = np.flatnonzero(~short)
        ql, fl, big = fs.grid.query_boxes(lat_lo[l], lat_hi[l], lon_c[l], half[l])
        q, f = np.concatenate([q, l[ql]]), np.concatenate([f, fl])
        if big.any():
            b = l[big]
            extra = candidates_box(fs, lat_lo[b], lat_hi[b], lon_c[b], half[b])
            extra = b[extra[0]], extra[1]
    box = np.take(fs.box_lat, f, axis=0)      # np.take: row gathers far faster than fancy indexing
    near = (box[:, 0] <= lat_hi[q]) & (box[:, 1] >= lat_lo[q])
    box = np.take(fs.box_lon, f, axis=0)
    near &= np.abs(wrap_lon(lon_c[q] - box[:, 0])) <= half[q] + box[:, 1]
    q, f = np.concatenate([q[near], extra[0]]), np.concatenate([f[near], extra[1]])
    if len(q) and not short.all():
        key = np.unique(q * len(fs) + f)       # box queries may repeat a pair
        q, f = key // len(fs), key % len(fs)
    return q, f


def _xyz(lat, lon, rows) -> np.ndarray:
    """ECEF (k, 3) of the given rows: computed for the rows that meet a fence, not for every fix."""
    return ecef(lat[rows], lon[rows]).reshape(-1, 3)


def _crosses(fs, config, e_dev, e_ts, e_lat, e_lon, e_acc, near_keys, alternating=False, any_poor=True,
             any_wide=True, e_clear=None, new_cells=None):
    """(row, fence index) of ``cross`` events-to-be: the segment from the device's previous fix meets a fence
    while both fixes are clearly outside it (beyond the anti-flap margin, so jitter around a parked car
    never crosses). Candidates: short segments' midpoints in ``fs.seg_grid``, longer ones by box (see
    :func:`_segment_candidates`).

    ``near_keys``: sorted ``row * max(len(fs), 1) + fence`` of the evidence pairs that are near (inside or
    within the margin). A segment ends at a new fix, whose evidence covers every fence within its margin,
    so its end is beyond the margin exactly when its pair is not among them. ``alternating``: the stream is
    (previous fix, new fix) per device, one new fix each; ``any_poor``: some fix may exceed a fence's
    ``max_accuracy_m``; ``any_wide``: some fix's accuracy may exceed a fence's hysteresis. ``e_clear``: the
    clearance (cells, :mod:`geofence.clear`) of each stream row's fix (0 for context rows), or of each new fix
    when ``alternating``; segments lying in clear cells are dropped before any search (None: none dropped).
    ``new_cells``: the new fixes' cells (``Clearance.lookup_cells``), used when ``alternating``."""
    if len(fs) == 0:
        return _NONE, _NONE
    gap = config.cross_max_gap_ms
    if alternating:                    # the usual batch: rows 2i (previous fix) and 2i + 1 (new fix), views
        seg = np.arange(1, len(e_ts), 2)
        ok = e_ts[1::2] - e_ts[0::2] <= gap
        la, lb, oa, ob = e_lat[0::2], e_lat[1::2], e_lon[0::2], e_lon[1::2]
    else:
        seg = np.flatnonzero((e_dev[1:] == e_dev[:-1]) & (e_ts[1:] - e_ts[:-1] <= gap)) + 1
        ok = np.ones(len(seg), bool)
        la, lb, oa, ob = e_lat[seg - 1], e_lat[seg], e_lon[seg - 1], e_lon[seg]
    if e_clear is not None:
        keep = np.flatnonzero(~(fs.clear.segments_clear(e_clear, la, oa, lb, ob, new_cells) if alternating
                                else fs.clear.segments_clear(e_clear[seg], la, oa, lb, ob)))
        seg, ok, la, lb, oa, ob = (v[keep] for v in (seg, ok, la, lb, oa, ob))
    dlat, dlon = lb - la, wrap_lon(ob - oa)
    # Cosine at the end nearer the equator, over-estimated (single precision errs by < 3e-7): ample for these
    # prefilters, which only need an upper bound of the segment's length in metres.
    cos_low = np.cos(np.radians(np.minimum(np.abs(la), np.abs(lb)).astype(np.float32))) * np.float32(1 + 1e-5)
    cos_low += np.float32(1e-6)
    # Both ends beyond the margin and a path through the fence: at least twice the smallest margin long.
    # An equirectangular over-estimate of the length (1 % generous) never says no wrongly.
    shortest = 2.0 * float(fs.outer0_m.min())
    if shortest > 0:
        dx = np.abs(dlon) * cos_low
        ok &= (dx * dx + dlat * dlat) * (111_700.0 * 1.01) ** 2 >= shortest * shortest
    if not ok.all():
        keep = np.flatnonzero(ok)
        seg, la, lb, oa, dlon, cos_low = (v[keep] for v in (seg, la, lb, oa, dlon, cos_low))
    cos_low = np.minimum(cos_low.astype(float), 1.0)
    if len(seg) == 0:
        return _NONE, _NONE
    lat_lo, lat_hi = np.minimum(la, lb), np.maximum(la, lb)
    cos_low[(lat_lo <= 0) & (lat_hi >= 0)] = 1.0     # a segment across the equator reaches latitude 0
    lon_c, half = oa + dlon / 2, np.abs(dlon) / 2
    q, f = _segment_candidates(fs, lat_lo, lat_hi, lon_c, half, cos_low)
    r = seg[q]
    # Cheapest tests first: accuracy; the new fix (the segment's end) beyond the margin, from its evidence;
    # the segment's reach (circles exactly, polygons by frame box); the start beyond the margin (which
    # implies outside); then the exact polygon intersection.
    key = r * max(len(fs), 1) + f
    ok = np.ones(len(key), bool)
    if len(near_keys):
        # Only the rows with some near pair need the search (most segments end clear of every fence).
        has_near = np.zeros(len(e_ts), bool)
        has_near[near_keys // max(len(fs), 1)] = True
        s = np.flatnonzero(has_near[r])
        at = np.minimum(np.searchsorted(near_keys, key[s]), len(near_keys) - 1)
        ok[s] = near_keys[at] != key[s]
    if any_poor:
        ok &= ~(fs.af_on[f] & ((e_acc[r - 1] > fs.max_accuracy_m[f]) | (e_acc[r] > fs.max_accuracy_m[f])))
    r, f = r[ok], f[ok]
    par = np.take(fs.frame, f, axis=0)
    xyz_a = _xyz(e_lat, e_lon, r - 1)
    ea, na = east_north(par, xyz_a)
    eb, nb = east_north(par, _xyz(e_lat, e_lon, r))
    ok = segment_reaches(fs, f, ea, na, eb, nb)
    fo = f[ok]
    margin_a = _margin(fs, fo, e_acc[r[ok] - 1]) if any_wide else fs.outer0_m[fo]
    ok[ok] = beyond(fs, fo, np.take(xyz_a, np.flatnonzero(ok), axis=0), margin_a, ea[ok], na[ok])
    r, f, ea, na, eb, nb = (v[ok] for v in (r, f, ea, na, eb, nb))
    hit = segment_hits(fs, f, ea, na, eb, nb, reached=True, ends_outside=True)
    return r[hit], f[hit]
