"""trips: the pure, vectorised trip core: segmentation into trips and stops, metrics, driving events, score.

Columnar in, columnar out, many devices at once (rows sorted by device, ts_ms); no I/O and no clock.
The streaming processor keeps a :class:`TripState` per device (serialisable) and calls

    state, trips, events, stops = step(state, batch, config, utc_offset_min=offsets)
    state, trips, events, stops = close_idle(state, now_ms, config)   # on a timer

``process_all(batch, config)`` does a whole history at once. Scores: :func:`score` (from totals) and
:func:`score_periods`; the formula is docs/driving-score.md. Defaults and their sources: TripConfig.
"""

from trips.config import (CRASH, EVENT_NAMES, EXTRA_URBAN, HARSH_ACCEL, HARSH_BRAKE, HARSH_CORNER, HIGHWAY,
                          ROAD_CLASS_NAMES, ROAD_CLASS_SOURCE, SPEEDING, URBAN, TripConfig)
from trips.geo import hop_distance, path_hops
from trips.localtime import utc_offsets
from trips.score import DEDUCTIONS, Scores, score, score_periods
from trips.state import TripState
from trips.stream import StepResult, close_idle, process_all, step
from trips.tables import Events, Stops, Trips

__all__ = [
    "TripConfig", "TripState", "StepResult", "step", "close_idle", "process_all",
    "Trips", "Events", "Stops", "Scores", "score", "score_periods", "DEDUCTIONS",
    "utc_offsets", "hop_distance", "path_hops",
    "EVENT_NAMES", "HARSH_ACCEL", "HARSH_BRAKE", "HARSH_CORNER", "SPEEDING", "CRASH",
    "ROAD_CLASS_NAMES", "ROAD_CLASS_SOURCE", "URBAN", "EXTRA_URBAN", "HIGHWAY",
]
