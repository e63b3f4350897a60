"""Driving score 0-100 per trip and per period; the formula is docs/driving-score.md.

Start at 100 and deduct, per category, points proportional to a rate per 100 km, each category capped:
harsh acceleration, braking and cornering by severity-weighted events per 100 km; speeding by km/h-minutes
of excess per 100 km; night by the share of distance driven at night. The caps add up to 100, so the
score stays in [0, 100]. A period is scored on its summed distances, events and excess, so it weighs
trips by distance instead of averaging trip scores. Pure arithmetic: same inputs, same score.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from trips.config import HARSH_ACCEL, HARSH_BRAKE, HARSH_CORNER, TripConfig

DEDUCTIONS = ("harsh_acceleration", "harsh_braking", "harsh_cornering", "speeding", "night")


class Scores(NamedTuple):
    """Shapes (k,), 0..100; ``deductions`` (k, 5) points lost per category, in DEDUCTIONS order."""
    score: np.ndarray
    smoothness: np.ndarray
    speed: np.ndarray
    time_of_day: np.ndarray
    deductions: np.ndarray


def score(distance_m, night_m, speeding_excess_kmh_s, event_severity, cfg: TripConfig) -> Scores:
    """Scores from totals: distance m (k,), night distance m (k,), speeding excess km/h x s (k,),
    severity-weighted event counts (k, 5) in trips.config.EVENT_NAMES order."""
    distance_m = np.asarray(distance_m, np.float64)
    sev = np.asarray(event_severity, np.float64).reshape(len(distance_m), 5)
    per_100km = np.maximum(distance_m / 1000.0, cfg.score_min_distance_km) / 100.0
    d = np.zeros((len(distance_m), len(DEDUCTIONS)))
    for col, kind in enumerate((HARSH_ACCEL, HARSH_BRAKE, HARSH_CORNER)):
        rate = sev[:, kind] / per_100km
        d[:, col] = np.minimum(cfg.score_caps[col], cfg.score_points_per_event[col] * rate)
    excess_min = np.asarray(speeding_excess_kmh_s, np.float64) / 60.0
    d[:, 3] = np.minimum(cfg.score_speed_cap, cfg.score_points_per_speeding_kmh_min * excess_min / per_100km)
    with np.errstate(invalid="ignore", divide="ignore"):
        night_share = np.where(distance_m > 0, np.asarray(night_m, np.float64) / distance_m, 0.0)
    d[:, 4] = cfg.score_night_cap * np.clip(night_share, 0.0, 1.0)
    total = np.clip(100.0 - d.sum(axis=1), 0.0, 100.0)
    smooth_cap = float(sum(cfg.score_caps))
    return Scores(
        score=total,
        smoothness=100.0 * (1.0 - d[:, :3].sum(axis=1) / smooth_cap),
        speed=100.0 * (1.0 - d[:, 3] / cfg.score_speed_cap),
        time_of_day=100.0 * (1.0 - d[:, 4] / cfg.score_night_cap),
        deductions=d,
    )


def score_periods(trips, group, cfg: TripConfig) -> tuple[np.ndarray, Scores]:
    """Score groups of trips (e.g. device x month): ``group`` is one key per trip (k,).

    Returns (the sorted distinct keys, their Scores), each group scored on its summed totals.
    """
    keys, inverse = np.unique(np.asarray(group), return_inverse=True)
    m = len(keys)

    def total(x):
        return np.bincount(inverse, weights=np.asarray(x, np.float64), minlength=m)

    sev = np.stack([total(trips.event_severity[:, k]) for k in range(trips.event_severity.shape[1])], axis=1) \
        if len(trips) else np.zeros((m, 5))
    return keys, score(total(trips.distance_m), total(trips.night_m), total(trips.speeding_excess_kmh_s),
                       sev, cfg)
