"""Driving events: runs of consecutive committed fixes over a threshold, one event per run.

A run's duration is the sum of the intervals its fixes close (with 1 Hz fixes, one second per fix); it
becomes an event when it ends and lasted at least the kind's minimum (crash: no minimum). Position and
time are those of the run's first fix, ``value`` its peak. Harsh and speeding samples only count on trip
hops; a crash counts anywhere (a parked car can be hit). A run still going on at the end of a batch is
carried in the state, like an open trip.
"""

from __future__ import annotations

import numpy as np

from trips.config import CRASH, HARSH_ACCEL, HARSH_BRAKE, HARSH_CORNER, SPEEDING, TripConfig
from trips.features import Signals, accelerations
from trips.metrics import TripRuns
from trips.runs import containing_run, runs_of
from trips.state import S
from trips.tables import Events


def event_samples(track: dict[str, np.ndarray], sig: Signals, commit: np.ndarray, hop_mask: np.ndarray,
                  fast: tuple[np.ndarray, np.ndarray], cfg: TripConfig) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(kind, rows, value) per event kind: the committed rows over the kind's threshold and their values
    (g, or km/h over the limit). ``fast``: trip hops over the limit by more than the tolerance, and by
    how much they exceed the limit (trips.metrics.speeding)."""
    rows = np.flatnonzero(sig.hint & commit)
    along, alat, crash = accelerations(track, sig, rows, cfg)
    hop = hop_mask[rows]
    out = []
    for kind, value, ok in ((HARSH_ACCEL, along, hop & (along >= cfg.harsh_accel_g)),
                            (HARSH_BRAKE, -along, hop & (-along >= cfg.harsh_brake_g)),
                            (HARSH_CORNER, alat, hop & (alat >= cfg.harsh_corner_g)),
                            (CRASH, crash, crash >= cfg.crash_g)):
        out.append((kind, rows[ok], value[ok]))
    out.append((SPEEDING, fast[0], fast[1]))
    return sorted(out, key=lambda item: item[0])


def detect_events(track: dict[str, np.ndarray], sig: Signals, samples, closes: np.ndarray,
                  block_start: np.ndarray, dstart: np.ndarray,
                  frontier: np.ndarray, dev_carry: np.ndarray, carry: dict[str, np.ndarray], runs: TripRuns,
                  cfg: TripConfig) -> tuple[Events, dict[str, np.ndarray]]:
    """Closed events of this pass, and the open runs per device position (ev_* columns, shape (d, 5)).

    Also adds each emitted event to the counts of the trip run it ends in (``runs.sums``, in place).
    ``samples``: from :func:`event_samples`; ``closes[j]``: a run ending at row j is complete; no run
    spans a ``block_start`` row (a device's first row or the fix after a long gap);
    ``dstart``/``frontier``/``dev_carry``: per device of the table, its first row, its last committed row
    (-1: none) and its carry row.
    """
    nd = len(frontier)
    open_cols = {name: np.zeros((nd, 5), carry[name].dtype)
                 for name in ("ev_open", "ev_ts", "ev_lat", "ev_lon", "ev_peak", "ev_dur")}
    bands = cfg.severity_bands()
    min_dur = cfg.min_event_duration_s()
    out = []
    for kind, sample_rows, sample_value in samples:
        open_dev = np.flatnonzero(carry["ev_open"][dev_carry, kind])
        rows = np.concatenate([sample_rows, frontier[open_dev]])
        if len(rows) == 0:
            continue
        value = np.concatenate([sample_value, carry["ev_peak"][dev_carry[open_dev], kind]])
        dur = np.concatenate([sig.dt[sample_rows].astype(np.float64), carry["ev_dur"][dev_carry[open_dev], kind]])
        src = np.concatenate([np.full(len(sample_rows), -1), dev_carry[open_dev]])
        order = np.argsort(rows, kind="stable")
        rows, value, dur, src = rows[order], value[order], dur[order], src[order]
        first, last = runs_of(rows, block_start)
        peak = np.maximum.reduceat(value, first)
        total = np.add.reduceat(dur, first)
        r0, r1 = rows[first], rows[last]
        ts, lat, lon = track["ts_ms"][r0], track["lat"][r0], track["lon"][r0]
        c0 = src[first]
        p0 = c0 >= 0                       # the run continues one carried from the previous pass
        ts[p0] = carry["ev_ts"][c0[p0], kind]
        lat[p0] = carry["ev_lat"][c0[p0], kind]
        lon[p0] = carry["ev_lon"][c0[p0], kind]

        done = closes[r1]
        emit = done & (total >= min_dur[kind])
        severity = np.clip(np.searchsorted(bands[kind], peak[emit], side="right"), 1, 3).astype(np.int8)
        trip = containing_run(r1[emit], runs.start_row, runs.end_row)
        in_trip = trip >= 0
        trip_start = np.full(len(trip), -1, np.int64)
        trip_start[in_trip] = runs.start_ts[trip[in_trip]]
        np.add.at(runs.sums[:, S[f"n{kind}"]], trip[in_trip], 1.0)
        np.add.at(runs.sums[:, S[f"sev{kind}"]], trip[in_trip], severity[in_trip].astype(np.float64))
        out.append(Events(
            device=track["device"][r0[emit]], trip_start_ms=trip_start,
            ts_ms=ts[emit], lat=lat[emit], lon=lon[emit], kind=np.full(int(emit.sum()), kind, np.int8),
            severity=severity, value=peak[emit].astype(np.float32), duration_s=total[emit].astype(np.float32),
        ))

        still = ~done
        owner = np.searchsorted(dstart, r1[still], side="right") - 1
        open_cols["ev_open"][owner, kind] = True
        open_cols["ev_ts"][owner, kind] = ts[still]
        open_cols["ev_lat"][owner, kind] = lat[still]
        open_cols["ev_lon"][owner, kind] = lon[still]
        open_cols["ev_peak"][owner, kind] = peak[still]
        open_cols["ev_dur"][owner, kind] = total[still]
    events = Events.concat(out)
    order = np.lexsort((events.kind, events.ts_ms, events.device))
    return events.take(order), open_cols
