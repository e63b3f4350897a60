"""Vehicle usage over a period, what a buyer of the used car wants to know: pure, over trip columns."""

from __future__ import annotations

import numpy as np

from trips import EVENT_NAMES

# km/h: city limit, rural limit, motorway limit in most of Europe, and beyond.
SPEED_BANDS_KMH = (0.0, 50.0, 90.0, 130.0)


def usage_summary(*, start_ms, distance_m, max_speed_kmh, urban_m, extra_urban_m, highway_m,
                  utc_offset_min, event_counts: dict[str, int]) -> dict:
    """Trip columns (k,) (start UTC ms, m, km/h, the trip's local UTC offset in minutes) and the period's
    driving-event counts by name (crashes included, parked or not) -> the usage findings."""
    start = np.asarray(start_ms, np.int64)
    dist = np.asarray(distance_m, np.float64)
    vmax = np.asarray(max_speed_kmh, np.float64)
    total = float(dist.sum())
    local_day = (start + np.asarray(utc_offset_min, np.int64) * 60_000) // 86_400_000
    by_class = {name: float(np.sum(col)) for name, col in
                zip(("urban", "extra_urban", "highway"), (urban_m, extra_urban_m, highway_m))}
    edges = np.append(SPEED_BANDS_KMH, np.inf)
    counts, _ = np.histogram(vmax, bins=edges)
    labels = [f"{int(lo)}-{int(hi)}" if hi != np.inf else f"{int(lo)}+" for lo, hi in zip(edges[:-1], edges[1:])]
    return {
        "trips": int(len(start)),
        "distance_km": round(total / 1000.0, 3),
        "days_used": int(len(np.unique(local_day))),
        "km_per_day_used": round(total / 1000.0 / len(np.unique(local_day)), 3) if len(start) else 0.0,
        "km_by_road_class": {k: round(v / 1000.0, 3) for k, v in by_class.items()},
        "road_class_share": {k: (round(v / total, 4) if total else 0.0) for k, v in by_class.items()},
        "typical_use": max(by_class, key=by_class.get) if total else None,
        "harsh_events": {n: int(event_counts.get(n, 0)) for n in EVENT_NAMES[:3]},
        "speeding_events": int(event_counts.get("speeding", 0)),
        "crashes_detected": int(event_counts.get("crash", 0)),
        "max_speed_kmh": round(float(vmax.max()), 1) if len(vmax) else None,
        "trips_by_max_speed_kmh": dict(zip(labels, (int(c) for c in counts))),
        "road_class_source": "speed_bands",
    }
