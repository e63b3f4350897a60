"""Turn closed trip runs into the Trips table (with scores) and the Stops between consecutive trips."""

from __future__ import annotations

import numpy as np

from trips.config import TripConfig
from trips.metrics import TripRuns
from trips.score import score
from trips.state import S
from trips.tables import Stops, Trips


def build_trips(runs: TripRuns, sel: np.ndarray, track: dict[str, np.ndarray], cfg: TripConfig) -> Trips:
    """Trips for the runs ``sel`` (int indices, ascending): metrics in output units, then scores."""
    end = runs.end_row[sel]
    sums, maxes = runs.sums[sel], runs.maxes[sel]
    start_ms = runs.start_ts[sel]
    end_ms = track["ts_ms"][end]
    distance = sums[:, S["distance_m"]]
    duration = (end_ms - start_ms) / 1000.0
    moving = sums[:, S["moving_s"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_speed = np.where(moving > 0, distance / moving * 3.6, 0.0)
    ev_count = sums[:, [S[f"n{k}"] for k in range(5)]]
    ev_sev = sums[:, [S[f"sev{k}"] for k in range(5)]]
    excess = sums[:, S["excess_kmh_s"]]
    sc = score(distance, sums[:, S["night_m"]], excess, ev_sev, cfg)
    return Trips(
        device=track["device"][end], start_ms=start_ms, end_ms=end_ms,
        start_lat=runs.start_lat[sel], start_lon=runs.start_lon[sel],
        end_lat=track["lat"][end], end_lon=track["lon"][end],
        distance_m=distance, duration_s=duration, moving_s=moving,
        idle_s=np.maximum(duration - moving, 0.0), max_speed_kmh=maxes[:, 0], mean_speed_kmh=mean_speed,
        night_m=sums[:, S["night_m"]], urban_m=sums[:, S["urban_m"]],
        extra_urban_m=sums[:, S["extra_urban_m"]], highway_m=sums[:, S["highway_m"]],
        speeding_s=sums[:, S["speeding_s"]], speeding_excess_kmh_s=excess,
        n_fixes=sums[:, S["hops"]].astype(np.int64) + 1,
        event_count=np.rint(ev_count).astype(np.int32), event_severity=ev_sev,
        score=sc.score, score_smoothness=sc.smoothness, score_speed=sc.speed, score_time_of_day=sc.time_of_day,
    )


def stops_before(trips: Trips, dev_pos: np.ndarray, carry: dict[str, np.ndarray], dev_carry: np.ndarray
                 ) -> tuple[Stops, np.ndarray]:
    """Stops ending at each new trip, from the previous trip of the device (this batch or the carry).

    ``dev_pos``: device position of each trip; returns the Stops and, per trip, whether it is the last
    of its device here (its end becomes the carried start of the next stop).
    """
    k = len(trips)
    same = np.zeros(k, bool)
    same[1:] = trips.device[1:] == trips.device[:-1]
    cr = dev_carry[dev_pos]
    prev_ts = carry["stop_ts"][cr].copy()
    prev_lat = carry["stop_lat"][cr].copy()
    prev_lon = carry["stop_lon"][cr].copy()
    idx = np.flatnonzero(same)
    prev_ts[idx] = trips.end_ms[idx - 1]
    prev_lat[idx] = trips.end_lat[idx - 1]
    prev_lon[idx] = trips.end_lon[idx - 1]
    has = prev_ts >= 0
    stops = Stops(device=trips.device[has], start_ms=prev_ts[has], end_ms=trips.start_ms[has],
                  lat=prev_lat[has], lon=prev_lon[has],
                  duration_s=(trips.start_ms[has] - prev_ts[has]) / 1000.0)
    last = np.ones(k, bool)
    last[:-1] = ~same[1:]
    return stops, last
