"""Driving style of a period from its stored trips (rows as storage.trips.list_trips returns them).

Shared by the driving-style route and the driving-style certificate, so both say the same.
"""

from __future__ import annotations

import numpy as np

from trips.config import EVENT_NAMES, ROAD_CLASS_NAMES, TripConfig
from trips.score import score


def period_style(rows: list[dict], cfg: TripConfig) -> dict:
    """Trips, km, score and sub-scores (None without trips), events and events per 100 km, km by road
    class and night share of a period; the period is scored on its summed totals."""
    distance = sum(r["distance_m"] for r in rows)
    severity = np.array([[sum(r["event_severity"][n] for r in rows) for n in EVENT_NAMES]])
    counts = {n: sum(r["event_counts"][n] for r in rows) for n in EVENT_NAMES}
    s = score([distance], [sum(r["night_m"] for r in rows)], [sum(r["speeding_excess_kmh_s"] for r in rows)],
              severity, cfg)
    per_100 = 100_000.0 / distance if distance else 0.0
    return {
        "trips": len(rows), "distance_km": round(distance / 1000.0, 3),
        "score": round(float(s.score[0]), 1) if rows else None,
        "sub_scores": {"smoothness": round(float(s.smoothness[0]), 1), "speed": round(float(s.speed[0]), 1),
                       "time_of_day": round(float(s.time_of_day[0]), 1)} if rows else None,
        "events": counts, "events_per_100km": {n: round(c * per_100, 2) for n, c in counts.items()},
        "km_by_road_class": {name: round(sum(r[f"{name}_m"] for r in rows) / 1000.0, 3)
                             for name in ROAD_CLASS_NAMES},
        "road_class_source": rows[0]["road_class_source"] if rows else "speed_bands",
        "night_share": round(sum(r["night_m"] for r in rows) / distance, 4) if distance else 0.0,
    }
