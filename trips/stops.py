"""Which fixes are stopped: by ignition where the device reports it, else by a stay window.

Ignition off (0): stopped, whatever the motion (ignition off ends a trip). Ignition on (1): never stopped
(a car idling with its engine running is still on its trip; that time counts as idle). Unknown (-1): a
*stay window* ends at a fix ``i`` and reaches back to ``s_i``, the last fix of the same block (no hop longer
than max_gap_s) at or before ``ts_i - min_stop_duration_s``; it holds when every fix in it lies within
``min_distance_m`` of fix ``i`` (Traccar's NewMotionProcessor criterion, tested against the window's
bounding box, which can only be stricter). Such a fix is stopped when it is slow (reported speed below
stop_speed_kmh, or none reported) and lies in a window that holds, so a trip ends at the first fix of the
stay rather than min_stop_duration_s later, and a GNSS drift of a parked car never starts one.
"""

from __future__ import annotations

import numpy as np

from trips.config import TripConfig
from trips.geo import cos_lat, hop_distance, scales_from_cos


def window_starts(keys: np.ndarray, block_start: np.ndarray, rows: np.ndarray, window_ms: int) -> np.ndarray:
    """For fixes ``rows``: index of the last fix of the same block at or before ts - window (-1: none).
    ``block_start``: bool per row, set at each device's first row and after each hop longer than
    max_gap_s; ``window_ms`` must not exceed max_gap_s, and devices' keys are further apart than it."""
    s = _last_at_or_before(keys, rows, window_ms)
    # The fixes after s up to the row lie within window_ms, so no long gap or device change is among
    # them but possibly the one right after s: the window leaves the block iff s + 1 starts a block.
    s[block_start[s + 1]] = -1
    return s


_RATE_SPAN = 16


def _last_at_or_before(keys: np.ndarray, rows: np.ndarray, window_ms: int) -> np.ndarray:
    """searchsorted(keys, keys[rows] - window_ms, side="right") - 1 for sorted ``keys``.

    Devices mostly report at a steady rate, so the mean interval of the _RATE_SPAN fixes up to the row
    (a span evens out jitter) predicts the answer. Guess, move one step if the guess is off by one, and
    binary-search only the rows still off: a few gathers instead of ~18 dependent probes per row."""
    n = len(keys)
    kr = keys[rows]
    q = kr - window_ms
    if n < 3:
        return np.searchsorted(keys, q, side="right") - 1
    back = np.maximum(rows - _RATE_SPAN, 0)
    step = (kr - keys[back]) / np.maximum(rows - back, 1)       # mean interval (ms) of the last fixes
    g = np.clip(rows - np.rint(window_ms / np.maximum(step, 1.0)).astype(np.int64), 0, n - 2)
    g += (keys[g + 1] <= q).view(np.int8)
    g -= (keys[g] > q).view(np.int8)
    np.clip(g, 0, n - 2, out=g)
    off = np.flatnonzero((keys[g] > q) | (keys[g + 1] <= q))
    if len(off):
        g[off] = np.searchsorted(keys, q[off], side="right") - 1
    return g


def stopped_fixes(track: dict[str, np.ndarray], slow: np.ndarray, cos: np.ndarray, keys: np.ndarray,
                  block_start: np.ndarray, bstarts: np.ndarray, cfg: TripConfig) -> np.ndarray:
    """bool (n,): the fix is stopped. Rows marked ``done`` keep their stored ``stopped`` value.
    ``cos``: trips.geo.cos_lat of each fix's latitude; ``bstarts``: flatnonzero(block_start)."""
    ign = track["ignition"]
    done = track["done"]
    n = len(ign)
    rows = np.flatnonzero(slow & (ign == -1) & ~done)
    covered = np.zeros(n, bool)
    if len(rows):
        _mark_union(covered, *_held_windows(track["lat"], track["lon"], cos, keys, block_start, bstarts, rows,
                                            int(round(cfg.min_stop_duration_s * 1000)), cfg.min_distance_m))
    stopped = (ign == 0) | ((ign == -1) & covered & slow)
    return (done & track["stopped"]) | (~done & stopped)


#: Slack of the sufficient test in _held_windows: metres off the radius, and a relative margin on the
#: scales above the float32 rounding of cos and of the scale formulas.
_SLACK_M = 1e-3
_SLACK_SCALE = 1.0 + 1e-5
#: Stay windows per batch of _held_windows' sufficient test.
_BATCH = 16


def _held_windows(lat, lon, cos, keys, block_start, bstarts, rows: np.ndarray, window_ms: int, radius_m: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Row ranges [s, e] (sorted by e; s non-decreasing) that cover every candidate fix ``rows`` (sorted)
    lying in a stay window that holds, and no other candidate.

    Nearly every candidate lies in a parked stop. So first a sufficient test on batches of _BATCH
    consecutive candidates: when the first one's window is valid and the last one is of the same block,
    every window of the batch lies in [s of the first, the last] (window starts only grow within a
    block); when that range's bounding box has a diagonal within the radius, at the largest scales
    over the box, every window of the batch holds, its ends lying in the box too. The batch then
    yields that one range: its windows cover all of it but rows between two of its candidates that no
    window reaches, and those are not candidates. The slack keeps rounding from passing a window the
    exact tests would fail. The candidates of the other batches get their own windows tested.
    """
    m = len(rows)
    first = np.arange(0, m, _BATCH)
    e0, e1 = rows[first], rows[np.minimum(first + _BATCH - 1, m - 1)]
    s0 = window_starts(keys, block_start, e0, window_ms)
    next_block = np.append(bstarts, len(keys))[np.searchsorted(bstarts, e0, side="right")]
    ok = (s0 >= 0) & (next_block > e1)
    q = np.flatnonzero(ok)
    ok[q] = _box_within(lat, lon, s0[q], e1[q], radius_m)
    e = rows[~np.repeat(ok, _BATCH)[:m]]
    s = window_starts(keys, block_start, e, window_ms)
    keep = s >= 0
    s, e = s[keep], e[keep]
    # A cheap necessary condition before the exact test: the window's oldest fix is within reach of the
    # newest.
    keep = hop_distance(lat[s], lon[s], lat[e], lon[e], cos[s], cos[e]) <= radius_m
    s, e = s[keep], e[keep]
    held = _windows_hold_exact(lat, lon, cos, s, e, radius_m) if len(s) else np.zeros(0, bool)
    ends = np.concatenate([e1[ok], e[held]])
    order = np.argsort(ends, kind="stable")
    return np.concatenate([s0[ok], s[held]])[order], ends[order]


def _box_within(lat, lon, lo: np.ndarray, hi: np.ndarray, radius_m: float) -> np.ndarray:
    """bool per row range [lo, hi] (lo non-decreasing): the diagonal of its bounding box is below the
    radius (less the slack), at the largest scales over the box. (reduceat takes the overlapping ranges
    interleaved: each even segment is one range.)"""
    if len(lo) == 0:
        return np.zeros(0, bool)
    idx = np.empty(2 * len(lo), np.int64)
    idx[0::2] = lo
    idx[1::2] = hi + 1
    if idx[-1] >= len(lat):
        idx = idx[:-1]
    hi_lat, lo_lat = np.maximum.reduceat(lat, idx)[0::2], np.minimum.reduceat(lat, idx)[0::2]
    hi_lon, lo_lon = np.maximum.reduceat(lon, idx)[0::2], np.minimum.reduceat(lon, idx)[0::2]
    # Largest scales over the box: m per degree of latitude grows with |lat|, of longitude shrinks.
    far = np.maximum(np.abs(hi_lat), np.abs(lo_lat))
    near = np.where(lo_lat * hi_lat > 0, np.minimum(np.abs(hi_lat), np.abs(lo_lat)), 0.0)
    m_lat = scales_from_cos(cos_lat(far))[0] * _SLACK_SCALE
    m_lon = scales_from_cos(cos_lat(near))[1] * _SLACK_SCALE
    dy, dx = (hi_lat - lo_lat) * m_lat, (hi_lon - lo_lon) * m_lon
    return dx * dx + dy * dy <= (radius_m - _SLACK_M) ** 2


def _windows_hold_exact(lat, lon, cos, s: np.ndarray, e: np.ndarray, radius_m: float) -> np.ndarray:
    """bool per window [s, e] (sorted by e, s non-decreasing): the bounding box of its fixes lies within
    radius_m of fix e; by exact range extrema, a sparse table over the union of the windows."""
    # Work on the union of the windows only, compacted; windows are sorted by e and s is non-decreasing.
    new = np.ones(len(s), bool)
    new[1:] = s[1:] > e[:-1]
    g_start = s[new]
    g_end = np.maximum.reduceat(e, np.flatnonzero(new))
    g_len = g_end - g_start + 1
    g_off = np.cumsum(g_len) - g_len
    region = np.arange(int(g_len.sum())) + np.repeat(g_start - g_off, g_len)
    shift = (g_start - g_off)[np.cumsum(new) - 1]
    ls, le = s - shift, e - shift                     # window bounds in the compacted region
    hi_lat = lo_lat = lat[region]
    hi_lon = lo_lon = lon[region]
    length = le - ls + 1
    level = np.floor(np.log2(length)).astype(np.int64)
    mx_lat = np.empty(len(s)); mn_lat = np.empty(len(s))
    mx_lon = np.empty(len(s)); mn_lon = np.empty(len(s))
    for k in range(int(level.max()) + 1):
        if k:  # sparse table: level k holds extrema of [x, x + 2^k)
            h = 1 << (k - 1)
            hi_lat = np.maximum(hi_lat[:-h], hi_lat[h:]); lo_lat = np.minimum(lo_lat[:-h], lo_lat[h:])
            hi_lon = np.maximum(hi_lon[:-h], hi_lon[h:]); lo_lon = np.minimum(lo_lon[:-h], lo_lon[h:])
        q = np.flatnonzero(level == k)
        if len(q) == 0:
            continue
        a, b = ls[q], le[q] - (1 << k) + 1
        mx_lat[q] = np.maximum(hi_lat[a], hi_lat[b]); mn_lat[q] = np.minimum(lo_lat[a], lo_lat[b])
        mx_lon[q] = np.maximum(hi_lon[a], hi_lon[b]); mn_lon[q] = np.minimum(lo_lon[a], lo_lon[b])
    la, lo = lat[e], lon[e]
    m_lat, m_lon = scales_from_cos(cos[e])
    dy = np.maximum(mx_lat - la, la - mn_lat) * m_lat
    dx = np.maximum(mx_lon - lo, lo - mn_lon) * m_lon
    return dx * dx + dy * dy <= radius_m * radius_m


def _mark_union(mask: np.ndarray, s: np.ndarray, e: np.ndarray) -> None:
    """Set ``mask`` over the union of the sorted windows [s, e] (in place)."""
    if len(s) == 0:
        return
    new = np.ones(len(s), bool)
    new[1:] = s[1:] > e[:-1] + 1
    starts = s[new]
    ends = np.maximum.reduceat(e, np.flatnonzero(new))
    edge = np.zeros(len(mask) + 1, np.int8)
    edge[starts] = 1
    edge[ends + 1] -= 1
    np.cumsum(edge[:-1], dtype=np.int8, out=edge[:-1])
    mask |= edge[:-1].view(bool)
