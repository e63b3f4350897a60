"""The pure transition of the trip core: ``step(state, batch, config) -> (state, trips, events, stops)``.

A fix is *committed* once nothing that can still arrive may change how it is classified: a later fix of
its device is TripConfig.horizon_ms (min_stop_duration_s, or two road-class windows if longer) newer than
its successor, or a gap longer than max_gap_s follows it.
Committed hops are added to the open trip and event runs; a run closes when the next committed fix does
not extend it. What later fixes still need (recent fixes, open runs) stays in the state, so feeding a
device's stream in any split gives the same trips and events as feeding it whole.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from trips.closing import build_trips, stops_before
from trips.config import TripConfig
from trips.events import detect_events, event_samples
from trips.features import compute_signals
from trips.metrics import is_trip, road_class, speeding, trip_runs
from trips.runs import spans
from trips.state import NONE_MS, TRACK_COLUMNS, TripState, empty_track, merge_by_device, new_carry, take
from trips.stops import stopped_fixes
from trips.tables import Events, Stops, Trips

FOREVER_MS = 2**62

_OPTIONAL = {"speed_kmh": np.nan, "heading_deg": np.nan, "ignition": -1, "accel_x": np.nan,
             "accel_y": np.nan, "accel_z": np.nan}


class StepResult(NamedTuple):
    state: TripState
    trips: Trips     # closed trips, sorted by (device, start_ms)
    events: Events   # closed events, sorted by (device, ts_ms)
    stops: Stops     # stops ended by the closed trips


def step(state: TripState, batch: Any, config: TripConfig, *, utc_offset_min=None) -> StepResult:
    """Advance ``state`` by ``batch``: a vigil.batch.FixBatch or a mapping with at least ``device``,
    ``ts_ms``, ``lat``, ``lon`` (other FixBatch columns optional), fixes of many devices sorted by
    (device, ts_ms) (unsorted input is sorted). ``utc_offset_min``: local-time offset of each fix in
    minutes, shape (n,) or a scalar, default 0 (UTC); for a per-device table pass ``table[batch.device]``,
    for time zone names :func:`trips.localtime.utc_offsets`.

    Fixes not newer than their device's last accepted fix, duplicates and fixes without a valid position
    are ignored. Devices absent from the batch are not touched. Cost: the batch plus, per device in it,
    its state tail (about min_stop_duration_s plus the last ~3 minutes of fixes) -- so batch per seconds
    of fleet time, not per fix.
    """
    new = _accept(batch, config, utc_offset_min)
    if len(new["ts_ms"]) == 0:
        return StepResult(state, Trips.empty(), Events.empty(), Stops.empty())
    first = np.ones(len(new["device"]), bool)
    first[1:] = new["device"][1:] != new["device"][:-1]
    devs = new["device"][first]
    tail, carry = state.gather(devs)
    kept = _drop_seen(new, first, carry["last_ts"])
    if len(kept["ts_ms"]) < len(new["ts_ms"]):                 # some fixes were old news
        if len(kept["ts_ms"]) == 0:
            return StepResult(state, Trips.empty(), Events.empty(), Stops.empty())
        new = kept
        first = np.append(True, new["device"][1:] != new["device"][:-1])
        devs = new["device"][first]
        tail, carry = state.gather(devs)
    work = merge_by_device(tail, new)
    done, trips, events, stops = _advance(work, carry, config, np.zeros(len(devs), bool))
    return StepResult(state.replace(*done), trips, events, stops)


def close_idle(state: TripState, now_ms: int, config: TripConfig) -> StepResult:
    """Close everything open for devices whose last fix is older than ``now_ms - idle_close_s``.

    Their pending fixes are committed as if a gap followed them: open trips and events close now, and
    the device's next fix starts afresh. With idle_close_s >= max_gap_s this is exactly what the next
    fix would have done.
    """
    silent = (state.last_ts() < now_ms - int(config.idle_close_s * 1000)) & (state.tail_len > 0)
    if not silent.any():
        return StepResult(state, Trips.empty(), Events.empty(), Stops.empty())
    tail, carry = state.gather(state.device[silent])
    done, trips, events, stops = _advance(tail, carry, config, np.ones(int(silent.sum()), bool))
    return StepResult(state.replace(*done), trips, events, stops)


#: Rows per slice of process_all: devices are independent, and slices that stay in cache run about
#: 1.5x faster than one pass over 10M rows (bench/trips.py).
SLICE_ROWS = 250_000


def process_all(batch: Any, config: TripConfig, *, utc_offset_min=None) -> StepResult:
    """Whole-history convenience: step from an empty state, then close everything still open.

    Works through slices of whole devices (about SLICE_ROWS rows each); the result is the same as one
    pass, since no state crosses devices.
    """
    device = np.asarray(_column(batch, "device"), np.int64)
    if len(device) > SLICE_ROWS and np.all(device[1:] >= device[:-1]):
        marks = np.arange(SLICE_ROWS, len(device), SLICE_ROWS)
        cuts = np.searchsorted(device, device[marks - 1], side="right")  # first device start from each mark
        bounds = np.unique(np.concatenate([[0], cuts[cuts < len(device)], [len(device)]]))
        if len(bounds) > 2:
            parts = [_one_pass(_slice(batch, a, b), config, _slice_offsets(utc_offset_min, a, b))
                     for a, b in zip(bounds[:-1], bounds[1:])]
            # The slices hold disjoint devices in increasing order: their state tables concatenate.
            tail, carry = ({k: np.concatenate([p[0][i][k] for p in parts]) for k in parts[0][0][i]} for i in (0, 1))
            return StepResult(TripState.from_tables(tail, carry), Trips.concat([p[1] for p in parts]),
                              Events.concat([p[2] for p in parts]), Stops.concat([p[3] for p in parts]))
    return _process_slice(batch, config, utc_offset_min)


def _slice(batch: Any, a: int, b: int) -> dict[str, np.ndarray]:
    out = {}
    for name in {n for n, _ in TRACK_COLUMNS} | {"accuracy_m"}:
        col = _column(batch, name)
        if col is not None:
            out[name] = np.asarray(col)[a:b]
    return out


def _slice_offsets(utc_offset_min, a: int, b: int):
    if utc_offset_min is None or np.ndim(utc_offset_min) == 0:
        return utc_offset_min
    return np.asarray(utc_offset_min)[a:b]


def _process_slice(batch: Any, config: TripConfig, utc_offset_min) -> StepResult:
    (tail, carry), trips, events, stops = _one_pass(batch, config, utc_offset_min)
    return StepResult(TripState.from_tables(tail, carry), trips, events, stops)


def _one_pass(batch: Any, config: TripConfig, utc_offset_min):
    """((tail, carry) state tables, trips, events, stops) of the whole history ``batch``.

    step() from an empty state and then close_idle(forever) in one pass: nothing is left pending, so
    every fix is committed and every trip and event closed at its device's last fix. (Two calls
    would classify the same fixes alike but carry the pending tail and open trips from one to the
    other, processing the tail twice; sums then group differently, equal to rounding.)
    """
    new = _accept(batch, config, utc_offset_min)
    if len(new["ts_ms"]) == 0:
        return (empty_track(), new_carry(np.zeros(0, np.int64))), Trips.empty(), Events.empty(), Stops.empty()
    dev = new["device"]
    devs = dev[np.append(True, dev[1:] != dev[:-1])]
    done, trips, events, stops = _advance(new, new_carry(devs), config, np.ones(len(devs), bool))
    return (done, trips.take(np.lexsort((trips.start_ms, trips.device))),
            events.take(np.lexsort((events.kind, events.ts_ms, events.device))),
            stops.take(np.lexsort((stops.start_ms, stops.device))))


def _column(batch: Any, name: str):
    if isinstance(batch, dict):
        return batch.get(name)
    return getattr(batch, name, None)


def _accept(batch: Any, cfg: TripConfig, utc_offset_min) -> dict[str, np.ndarray]:
    """The batch's fixes with a valid position, sorted, duplicates removed, as a track table."""
    dev = np.asarray(_column(batch, "device"), np.int64)
    n = len(dev)
    t: dict[str, np.ndarray] = {}
    for name, dtype in TRACK_COLUMNS:
        col = _column(batch, name)
        if name == "utc_offset_min":
            col = 0 if utc_offset_min is None else utc_offset_min
        if col is None:
            col = _OPTIONAL.get(name, 0)
        arr = np.asarray(col, dtype)
        t[name] = np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr
    t["done"] = np.zeros(n, bool)
    t["stopped"] = np.zeros(n, bool)
    ts = t["ts_ms"]
    order, dup = None, None
    # One test for the common case: (device, ts) strictly increasing, so sorted and no duplicates.
    if n > 1 and not np.all((dev[1:] > dev[:-1]) | ((dev[1:] == dev[:-1]) & (ts[1:] > ts[:-1]))):
        if not np.all((dev[1:] > dev[:-1]) | ((dev[1:] == dev[:-1]) & (ts[1:] >= ts[:-1]))):
            order = np.lexsort((ts, dev))
            t = take(t, order)
        dev, ts = t["device"], t["ts_ms"]
        dup = (dev[1:] == dev[:-1]) & (ts[1:] == ts[:-1])                   # the first one counts
    lat, lon = t["lat"], t["lon"]
    if n and lat.min() >= -90 and lat.max() <= 90 and lon.min() >= -180 and lon.max() <= 180:
        keep = np.ones(n, bool)                             # the usual case, tested by reductions (NaN fails)
    else:
        keep = (lat >= -90) & (lat <= 90) & (lon >= -180) & (lon <= 180)      # False for NaN too
    acc = _column(batch, "accuracy_m")
    if cfg.max_accuracy_m is not None and acc is not None:
        acc = np.asarray(acc, np.float32)
        keep &= ~((acc if order is None else acc[order]) > cfg.max_accuracy_m)
    if dup is not None:
        keep[1:] &= ~dup
    if keep.all():
        # Columns the batch lacks stay broadcast constants (stride 0): the core only reads them.
        return {k: v if v.strides == (0,) else np.ascontiguousarray(v) for k, v in t.items()}
    return take(t, keep)


def _drop_seen(t: dict[str, np.ndarray], first: np.ndarray, last_ts: np.ndarray) -> dict[str, np.ndarray]:
    """Without fixes not newer than their device's last accepted one (``last_ts`` per device run)."""
    if not np.any(last_ts > NONE_MS):
        return t
    starts = np.flatnonzero(first)
    keep = t["ts_ms"] > np.repeat(last_ts, np.diff(np.append(starts, len(first))))
    return t if keep.all() else take(t, keep)


def _advance(work, carry, cfg: TripConfig, force: np.ndarray):
    """One pass over ``work`` (track table of the devices of ``carry``, same order); ``force`` per device
    commits and closes everything (close_idle). Returns ((tail, carry) of these devices, trips, events,
    stops)."""
    n = len(work["ts_ms"])
    ts = work["ts_ms"]
    sig = compute_signals(work, cfg)
    dstart = np.flatnonzero(sig.first)
    dend = np.append(dstart[1:], n) - 1
    cidx = np.arange(len(dstart))  # carry rows are the devices of work, in order
    block_start = sig.first | sig.brk
    bstarts = np.flatnonzero(block_start)
    keys = sig.key
    stopped = stopped_fixes(work, sig.slow, sig.cos, keys, block_start, bstarts, cfg)
    prev_stopped = np.empty(n, bool)
    prev_stopped[0] = True
    prev_stopped[1:] = stopped[:-1]
    in_trip = ~block_start & ~(stopped & prev_stopped)

    # Committed prefix of each device: rows before `cut`.
    bl0 = bstarts[np.searchsorted(bstarts, dend, side="right") - 1]
    r = np.searchsorted(keys, keys[dend] - cfg.horizon_ms, side="right") - 1
    cut = np.where(force, dend + 1, np.maximum(bl0, r))
    final = np.ones(n, bool) if force.all() else _prefix_mask(n, dstart, cut)
    done = work["done"]
    commit = final & ~done
    done_rows = np.flatnonzero(done)            # a prefix of each device's rows (from the tail)
    frontier = np.full(len(dstart), -1, np.int64)
    np.maximum.at(frontier, np.searchsorted(dstart, done_rows, side="right") - 1, done_rows)
    closes = np.zeros(n, bool)
    closes[:-1] = commit[1:] & ~sig.first[1:]
    closes[dend[force]] = True

    wstarts, cls, limit = road_class(ts, sig.kmh, sig.wcut, block_start, cfg)
    hop_rows = commit & in_trip
    window = np.cumsum(sig.wcut, dtype=np.int32) - 1          # road-class window of each row
    fast = speeding(sig.kmh, hop_rows, window, limit, cfg)
    open_pos = np.flatnonzero(carry["trip_open"])
    runs = trip_runs(work, sig, hop_rows, frontier[open_pos], cidx[open_pos], carry, window, cls, fast, cfg)
    samples = event_samples(work, sig, commit, hop_rows, fast, cfg)
    events, ev_open = detect_events(work, sig, samples, closes, block_start, dstart, frontier, cidx, carry,
                                    runs, cfg)

    closed = closes[runs.end_row]
    ok = closed & is_trip(runs, ts[runs.end_row], cfg)
    sel = np.flatnonzero(ok)
    trips = build_trips(runs, sel, work, cfg)
    run_dev = np.searchsorted(dstart, runs.end_row, side="right") - 1
    stops, last_of_dev = stops_before(trips, run_dev[sel], carry, cidx)

    c = {k: v.copy() for k, v in carry.items()}
    c["last_ts"] = ts[dend]
    lp = run_dev[sel][last_of_dev]
    c["stop_ts"][lp] = trips.end_ms[last_of_dev]
    c["stop_lat"][lp] = trips.end_lat[last_of_dev]
    c["stop_lon"][lp] = trips.end_lon[last_of_dev]
    c["trip_open"][:] = False
    op = np.flatnonzero(~closed)
    od = run_dev[op]
    c["trip_open"][od] = True
    c["trip_start_ts"][od] = runs.start_ts[op]
    c["trip_start_lat"][od] = runs.start_lat[op]
    c["trip_start_lon"][od] = runs.start_lon[op]
    c["trip_sums"][od] = runs.sums[op]
    c["trip_maxes"][od] = runs.maxes[op]
    c.update(ev_open)

    tail = _new_tail(work, final, stopped, keys, bstarts, wstarts, dstart, dend, cut, force, cfg)
    return (tail, c), trips, events, stops


def _new_tail(work, final, stopped, keys, bstarts, wstarts, dstart, dend, cut, force, cfg: TripConfig):
    """Rows later passes need: from the earliest of (the last committed fix's predecessor, the stay
    window and the road-class window of the first pending fix) to the device's last fix."""
    if force.all():                                 # nothing pending (process_all, close_idle)
        return take(work, np.zeros(0, np.int64))
    last_final = cut - 1
    pending = ~force & (cut <= dend)
    keep_from = dstart.copy()
    q = pending & (last_final >= dstart)
    p = cut[q]
    window = np.searchsorted(keys, keys[p] - int(round(cfg.min_stop_duration_s * 1000)), side="right") - 1
    window = np.maximum(window, bstarts[np.searchsorted(bstarts, p, side="right") - 1])
    # The window before the first pending fix's road-class window (or that window, first of its block).
    wk = np.searchsorted(wstarts, p, side="right") - 1
    wk = np.where((wk > 0) & ~np.isin(wstarts[wk], bstarts), wk - 1, wk)
    road = wstarts[wk] - 1
    keep_from[q] = np.maximum(np.minimum(np.minimum(last_final[q] - 1, window), road), dstart[q])
    rows = spans(keep_from, np.where(pending, dend - keep_from + 1, 0))
    tail = take(work, rows)
    tail["done"] = final[rows]
    tail["stopped"] = stopped[rows]
    return tail


def _prefix_mask(n: int, starts: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """bool (n,): rows in [starts[d], cut[d]) for each device d."""
    edge = np.zeros(n + 1, np.int8)
    nonempty = cut > starts
    np.add.at(edge, starts[nonempty], 1)
    np.add.at(edge, cut[nonempty], -1)
    return np.cumsum(edge[:-1], dtype=np.int8).view(bool)
