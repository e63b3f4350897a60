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
from trips.geo import hop_distance, metres_per_degree


def window_starts(keys: np.ndarray, bstarts: np.ndarray, rows: np.ndarray, window_ms: int) -> np.ndarray:
    """For fixes ``rows``: index of the last fix of the same block at or before ts - window (-1: none).
    ``bstarts``: first row of each block (device start or fix after a long gap), sorted."""
    s = np.searchsorted(keys, keys[rows] - window_ms, side="right") - 1
    block = bstarts[np.searchsorted(bstarts, rows, side="right") - 1]
    return np.where(s >= block, s, -1)


def stopped_fixes(track: dict[str, np.ndarray], slow: np.ndarray, keys: np.ndarray, bstarts: np.ndarray,
                  cfg: TripConfig) -> np.ndarray:
    """bool (n,): the fix is stopped. Rows marked ``done`` keep their stored ``stopped`` value."""
    ign = track["ignition"]
    done = track["done"]
    lat, lon = track["lat"], track["lon"]
    n = len(ign)
    rows = np.flatnonzero(slow & (ign == -1) & ~done)
    covered = np.zeros(n, bool)
    if len(rows):
        s = window_starts(keys, bstarts, rows, int(round(cfg.min_stop_duration_s * 1000)))
        keep = s >= 0
        rows, s = rows[keep], s[keep]
        # Necessary condition first: the window's oldest fix is within reach of the newest.
        keep = hop_distance(lat[s], lon[s], lat[rows], lon[rows]) <= cfg.min_distance_m
        rows, s = rows[keep], s[keep]
        if len(rows):
            held = _windows_hold(lat, lon, s, rows, cfg.min_distance_m)
            _mark_union(covered, s[held], rows[held])
    stopped = (ign == 0) | ((ign == -1) & covered & slow)
    return np.where(done, track["stopped"], stopped)


def _windows_hold(lat, lon, s: np.ndarray, e: np.ndarray, radius_m: float) -> np.ndarray:
    """bool per window [s, e]: the bounding box of its fixes lies within radius_m of fix e."""
    # Work on the union of the windows only, compacted; windows are sorted by e and s is non-decreasing.
    new = np.ones(len(s), bool)
    new[1:] = s[1:] > e[:-1]
    g_start = s[new]
    g_end = np.maximum.reduceat(e, np.flatnonzero(new))
    g_len = g_end - g_start + 1
    g_off = np.cumsum(g_len) - g_len
    region = np.arange(int(g_len.sum())) + np.repeat(g_start - g_off, g_len)
    gid = np.cumsum(new) - 1
    shift = g_start - g_off
    ls, le = s - shift[gid], e - shift[gid]           # window bounds in the compacted region
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
    m_lat, m_lon = metres_per_degree(la)
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
