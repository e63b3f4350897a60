"""The first, loop-based geofence ``step``, kept as a test oracle for the vectorised one.

Same rules as :mod:`geofence.transitions` (see its docstring), written as a plain loop per busy
(device, fence) key: easy to read and check by eye, too slow for the hot path. Its evidence rule follows the
current one (inside only deeper than the margin, a band fix breaks a pending run).
"""

from __future__ import annotations

import numpy as np

from geofence.membership import near, segment_crosses, signed_distance
from geofence.shapes import FenceSet
from geofence.state import CROSS, ENTER, EXIT, GeofenceState, _events
from geofence.transitions import StepConfig
from vigil.errors import RejectedInput

UNKNOWN, OUT, IN, HOLD, BAND = -1, 0, 1, 2, 3


def _col(fixes, name, dtype):
    return np.asarray(fixes[name] if isinstance(fixes, dict) else getattr(fixes, name), dtype)


def reference_step(state: GeofenceState, fixes, fs: FenceSet, config: StepConfig = StepConfig()
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

    # Evidence from membership, with per-fence margin.
    hmax = float(fs.hysteresis_m[fs.af_on].max()) if fs.af_on.any() else 0.0
    qmargin = np.where(fs.af_on.any(), np.maximum(acc0, hmax), 0.0)
    p_fix, p_fence, p_d = near(fs, e_lat, e_lon, qmargin)
    af = fs.af_on[p_fence]
    p_margin = np.where(af, np.maximum(acc0[p_fix], fs.hysteresis_m[p_fence]), 0.0)
    poor_p = af & (e_acc[p_fix] > fs.max_accuracy_m[p_fence])
    keep = (p_d <= p_margin) & ~e_ctx[p_fix]
    p_inner = np.minimum(p_margin, fs.inner_cap_m[p_fence])[keep]
    p_fix, p_fence, p_d, poor_p, af = p_fix[keep], p_fence[keep], p_d[keep], poor_p[keep], af[keep]
    p_obs = np.where(poor_p, HOLD, np.where(p_d <= -p_inner, IN, np.where(af, BAND, OUT)))

    # Cross candidates: consecutive fixes of one device, both outside the fence, accuracy fine.
    seg_b = np.flatnonzero((e_dev[1:] == e_dev[:-1]) & (e_ts[1:] - e_ts[:-1] <= config.cross_max_gap_ms)) + 1
    s_idx, c_fence = segment_crosses(fs, e_lat[seg_b - 1], e_lon[seg_b - 1], e_lat[seg_b], e_lon[seg_b])
    c_row = seg_b[s_idx]
    if len(c_row):
        both = np.concatenate([c_row - 1, c_row])
        d_both = signed_distance(fs, both, np.concatenate([c_fence, c_fence]), e_lat, e_lon)
        f2 = np.concatenate([c_fence, c_fence])
        m_both = np.where(fs.af_on[f2], np.maximum(acc0[both], fs.hysteresis_m[f2]), 0.0)
        ok = (d_both[:len(c_row)] > m_both[:len(c_row)]) & (d_both[len(c_row):] > m_both[len(c_row):])
        poor_c = fs.af_on[c_fence] & ((e_acc[c_row - 1] > fs.max_accuracy_m[c_fence])
                                      | (e_acc[c_row] > fs.max_accuracy_m[c_fence]))
        c_row, c_fence = c_row[ok & ~poor_c], c_fence[ok & ~poor_c]

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

    evid = obs != HOLD
    busy = np.bincount(flat_key, cross | (evid & (obs != side[flat_key])) | (evid & (pend[flat_key] != UNKNOWN)),
                       minlength=K) > 0
    ev = ([], [], [], [], [], [], [])
    for k in np.flatnonzero(busy):
        f = int(k_fidx[k])
        need = int(fs.min_fixes[f]) if fs.af_on[f] else 1
        dwell = int(fs.min_dwell_ms[f]) if fs.af_on[f] else 0
        s, p, t0, c = int(side[k]), int(pend[k]), int(since[k]), int(cnt[k])
        for pos in range(off[k], off[k + 1]):
            row, o = flat_row[pos], int(obs[pos])
            if cross[pos] and s != IN:
                _emit(ev, k_dev[k], fs.fence_id[f], CROSS, e_ts[row], e_ts[row - 1], e_lat[row], e_lon[row])
            if o == HOLD:
                continue
            if o == BAND:
                p, c = UNKNOWN, 0
                continue
            if s == UNKNOWN or o == s:
                s, p, c = o, UNKNOWN, 0
                continue
            if p != o:
                p, t0, c = o, int(e_ts[row]), 0
            c += 1
            if c >= need and e_ts[row] - t0 >= dwell:
                _emit(ev, k_dev[k], fs.fence_id[f], ENTER if o == IN else EXIT, e_ts[row], t0,
                      e_lat[row], e_lon[row])
                s, p, c = o, UNKNOWN, 0
        side[k], pend[k], since[k], cnt[k] = s, p, t0, c

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


def _emit(ev, *values) -> None:
    for col, v in zip(ev, values):
        col.append(v)
