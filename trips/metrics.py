"""Road class per fix and the per-trip accumulators, reduced over runs of trip hops.

A trip is a run of consecutive *trip hops* of one device: hops that do not cross a long gap and leave or
reach a non-stopped fix. Row j holds the hop from fix j-1 to fix j, so a trip starts at the fix before its
first hop row (the last stopped fix) and ends at the
right fix of its last hop (the first stopped fix). A run may continue a trip left open by the previous batch:
then its first row is the device's last committed fix (the *pseudo row*) and the carried sums stand in
for that row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trips.config import TripConfig
from trips.features import Signals
from trips.geo import hop_distance, metres_per_degree
from trips.runs import spans
from trips.state import MAXES, S, SUMS


def road_class(ts_ms: np.ndarray, kmh: np.ndarray, wcut: np.ndarray, block_start: np.ndarray, cfg: TripConfig
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Road class from speed bands, per road-class window: (first row of each window int64 (w,),
    class int8 (w,), speed limit km/h float32 (w,)).

    Fixes are grouped in epoch-aligned windows of road_class_window_s (``wcut``; per block, so batching
    does not matter); a window's own class comes from its mean speed, and its fixes take the highest
    class of the window and of the adjacent windows (the epoch windows just before and after, same
    block), so braking off a motorway or accelerating onto one is not judged against the urban limit.
    Without a road graph this errs towards missing speeding rather than inventing it.
    """
    starts = np.flatnonzero(wcut)
    if len(starts) == 0:
        return starts, np.zeros(0, np.int8), np.zeros(0, np.float32)
    lengths = np.diff(np.append(starts, len(kmh)))
    mean = np.add.reduceat(kmh, starts) / lengths
    own = (mean >= cfg.urban_max_kmh).astype(np.int8) + (mean >= cfg.highway_min_kmh).astype(np.int8)
    cls = own.copy()
    bucket = ts_ms[starts] // int(round(cfg.road_class_window_s * 1000))
    joined = ~block_start[starts[1:]] & (bucket[1:] == bucket[:-1] + 1)  # window k+1 is the next one
    np.maximum(cls[1:], np.where(joined, own[:-1], 0), out=cls[1:])
    np.maximum(cls[:-1], np.where(joined, own[1:], 0), out=cls[:-1])
    return starts, cls, np.asarray(cfg.speed_limits_kmh, np.float32)[cls]


def speeding(kmh: np.ndarray, hop_mask: np.ndarray, window: np.ndarray, limit: np.ndarray, cfg: TripConfig
             ) -> tuple[np.ndarray, np.ndarray]:
    """Trip hops faster than their window's limit plus the tolerance: (rows int64, km/h over the limit).
    ``window``: road-class window of each row (int, shape (n,)); ``limit``: km/h per window. Only hops
    over the lowest limit plus the tolerance are looked up."""
    if len(limit) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    tol = np.float32(cfg.speeding_tolerance_kmh)
    rows = np.flatnonzero(hop_mask & (kmh > limit.min() + tol))
    lim = limit[window[rows]]
    v = kmh[rows]
    fast = v > lim + tol
    return rows[fast], (v - lim)[fast].astype(np.float64)


@dataclass(slots=True)
class TripRuns:
    """Runs of trip hops of one pass, shape (k,) (sums (k, len(SUMS)), maxes (k, 2))."""
    start_row: np.ndarray   # first row of the run (its hop's left fix is the trip start)
    end_row: np.ndarray     # last row: the trip's end fix so far
    carry_row: np.ndarray   # carry row continued by this run, -1 when it starts here
    start_ts: np.ndarray
    start_lat: np.ndarray
    start_lon: np.ndarray
    sums: np.ndarray
    maxes: np.ndarray       # max km/h; distance from the start (exact when below min_distance_m)


def trip_runs(track: dict[str, np.ndarray], sig: Signals, hop_mask: np.ndarray, pseudo_rows: np.ndarray,
              pseudo_carry: np.ndarray, carry: dict[str, np.ndarray], window: np.ndarray, cls: np.ndarray,
              fast: tuple[np.ndarray, np.ndarray], cfg: TripConfig) -> TripRuns:
    """Reduce the committed trip hops (``hop_mask``) plus the pseudo rows of continued trips.

    ``pseudo_rows`` (sorted) are the last committed rows of devices whose trip is open in ``carry`` at
    rows ``pseudo_carry``; they contribute the carried accumulators instead of their own hop. Runs are
    contiguous rows, so every sum is one ``reduceat`` over the full column. ``window``/``cls``: each
    row's road-class window and each window's class (:func:`road_class`); ``fast``: speeding hops and their excess (from :func:`speeding`).
    """
    n = len(hop_mask)
    mask = hop_mask.copy()
    mask[pseudo_rows] = True
    begins = mask.copy()
    begins[1:] &= ~mask[:-1] | sig.first[1:]
    ends = mask.copy()
    ends[:-1] &= ~mask[1:] | sig.first[1:]
    start_row, end_row = np.flatnonzero(begins), np.flatnonzero(ends)
    k = len(start_row)
    pos = np.searchsorted(pseudo_rows, start_row)
    is_pseudo = pos < len(pseudo_rows)
    is_pseudo[is_pseudo] = pseudo_rows[pos[is_pseudo]] == start_row[is_pseudo]
    carry_row = np.full(k, -1, np.int64)
    carry_row[is_pseudo] = pseudo_carry[pos[is_pseudo]]
    lo, hi = start_row + is_pseudo, end_row + 1    # hops counted: rows [lo, hi)

    # Pieces: the runs cut wherever class or local minute may change (sig.pcut), each of one class
    # and wholly at night or not.
    # (Cuts outside the runs would only split the gaps between them, which are not summed.)
    cuts = np.sort(np.concatenate([lo, hi, np.flatnonzero(sig.pcut & mask)]))
    cuts = cuts[np.append(True, cuts[1:] != cuts[:-1]) & (cuts < n)]
    # Every run start is a cut and cuts are sorted: counting run starts along the cuts finds each
    # cut's run without a search.
    is_lo = np.zeros(n, bool)
    is_lo[lo] = True
    run = np.cumsum(is_lo[cuts]) - 1
    inside = run >= 0
    inside[inside] = cuts[inside] < hi[run[inside]]
    run, piece = run[inside], np.flatnonzero(inside)
    sums = np.zeros((k, len(SUMS)))
    if len(cuts):
        dist = np.add.reduceat(sig.dist.astype(np.float64), cuts)[piece]
        row0 = cuts[piece]
        sums[:, S["distance_m"]] = np.bincount(run, dist, minlength=k)
        moving = np.add.reduceat(sig.dt_moving.astype(np.float64), cuts)[piece]
        sums[:, S["moving_s"]] = np.bincount(run, moving, minlength=k)
        night = is_night(track["ts_ms"][row0], track["utc_offset_min"][row0], cfg)
        sums[:, S["night_m"]] = np.bincount(run, np.where(night, dist, 0.0), minlength=k)
        piece_cls = cls[window[row0]]
        by_class = np.bincount(run * 3 + piece_cls, dist, minlength=3 * k).reshape(k, 3)
        sums[:, [S["urban_m"], S["extra_urban_m"], S["highway_m"]]] = by_class
    sums[:, S["hops"]] = hi - lo
    fast_rows, excess = fast
    run = np.searchsorted(start_row, fast_rows, side="right") - 1
    sums[:, S["speeding_s"]] = np.bincount(run, sig.dt[fast_rows], minlength=k)
    sums[:, S["excess_kmh_s"]] = np.bincount(run, sig.dt[fast_rows] * excess, minlength=k)

    prev = np.maximum(start_row - 1, 0)
    start_ts = track["ts_ms"][prev]
    start_lat, start_lon = track["lat"][prev], track["lon"][prev]
    cr = carry_row[is_pseudo]
    start_ts[is_pseudo] = carry["trip_start_ts"][cr]
    start_lat[is_pseudo] = carry["trip_start_lat"][cr]
    start_lon[is_pseudo] = carry["trip_start_lon"][cr]

    maxes = np.zeros((k, len(MAXES)))
    maxes[:, 0] = seg_reduce(np.maximum, sig.kmh, lo, hi)
    maxes[:, 1] = _farthest(track, start_row, end_row, start_lat, start_lon, cfg.min_distance_m)
    sums[is_pseudo] += carry["trip_sums"][cr]
    maxes[is_pseudo] = np.maximum(maxes[is_pseudo], carry["trip_maxes"][cr])
    return TripRuns(start_row, end_row, carry_row, start_ts, start_lat, start_lon, sums, maxes)


def _farthest(track, start_row, end_row, lat0, lon0, radius_m: float) -> np.ndarray:
    """Per run, the distance (m) of its farthest fix from (lat0, lon0) -- exact whenever the answer to
    "is it >= radius_m" needs it; otherwise a bound on the same side of radius_m (bounding box first)."""
    lat, lon = track["lat"], track["lon"]
    hi = end_row + 1
    la_hi, la_lo = seg_reduce(np.maximum, lat, start_row, hi), seg_reduce(np.minimum, lat, start_row, hi)
    lo_hi, lo_lo = seg_reduce(np.maximum, lon, start_row, hi), seg_reduce(np.minimum, lon, start_row, hi)
    m_lat, m_lon = metres_per_degree(lat0)
    dy = np.maximum(la_hi - lat0, lat0 - la_lo) * m_lat
    dx = np.maximum(lo_hi - lon0, lon0 - lo_lo) * m_lon
    lower = np.maximum(dx, dy)           # some fix reaches this far along one axis
    out = np.sqrt(dx * dx + dy * dy)     # no fix is farther than the box corner
    unsure = np.flatnonzero((lower < radius_m) & (out >= radius_m))
    if len(unsure):
        lengths = hi[unsure] - start_row[unsure]
        rows = spans(start_row[unsure], lengths)
        d = hop_distance(np.repeat(lat0[unsure], lengths), np.repeat(lon0[unsure], lengths), lat[rows], lon[rows])
        out[unsure] = np.maximum.reduceat(d, np.cumsum(lengths) - lengths)
    sure = lower >= radius_m
    out[sure] = lower[sure]
    return out


def is_night(ts_ms: np.ndarray, utc_offset_min: np.ndarray, cfg: TripConfig) -> np.ndarray:
    """bool: the local time (UTC + offset minutes) falls in the night window."""
    minute = (ts_ms // 60000 + utc_offset_min) % 1440
    if cfg.night_start_min > cfg.night_end_min:
        return (minute >= cfg.night_start_min) | (minute < cfg.night_end_min)
    return (minute >= cfg.night_start_min) & (minute < cfg.night_end_min)


def seg_reduce(ufunc, values: np.ndarray, lo: np.ndarray, hi: np.ndarray, dtype=None) -> np.ndarray:
    """ufunc reduction of ``values`` over the disjoint sorted row ranges [lo, hi); empty ranges give 0."""
    k, n = len(lo), len(values)
    if k == 0:
        return np.zeros(0, dtype or values.dtype)
    idx = np.empty(2 * k, np.int64)
    idx[0::2] = lo
    idx[1::2] = hi
    if idx[-1] >= n:
        idx = idx[:-1]
    out = ufunc.reduceat(values, np.minimum(idx, n - 1), dtype=dtype)[0::2]
    out[lo >= hi] = 0
    return out


def is_trip(runs: TripRuns, end_ts: np.ndarray, cfg: TripConfig) -> np.ndarray:
    """bool (k,): the run left min_distance_m of where it started and passes the trip minimums."""
    return ((runs.maxes[:, 1] >= cfg.min_distance_m)
            & (runs.sums[:, S["distance_m"]] >= cfg.min_trip_distance_m)
            & ((end_ts - runs.start_ts) >= cfg.min_trip_duration_s * 1000))
