"""trips: the pure, vectorised trip core: segmentation into trips and stops, metrics, driving events, score.

Columnar in, columnar out, many devices at once (rows sorted by device, ts_ms); no I/O and no clock.
A stream processor keeps one :class:`TripState` (immutable, serialisable whole or per device) and calls

    state, trips, events, stops = step(state, batch, config, utc_offset_min=offsets)
    state, trips, events, stops = close_idle(state, now_ms, config)        # on a timer

Feeding a device's fixes in any split gives the same trips, events and stops as feeding them at once.
``process_all(batch, config)`` does a whole history in one call. Trips carry their score; :func:`score`
scores any totals and :func:`score_periods` groups of trips (formula: docs/driving-score.md).
Segmentation, event and score settings, with the source of each default: :class:`TripConfig`.

Public API:
    TripConfig, TripState, StepResult, step, close_idle, process_all
    Trips, Events, Stops (columnar outputs), Scores, score, score_periods, DEDUCTIONS
    utc_offsets (per-fix offsets from time zone names), hop_distance, path_hops (WGS84 distances)
    event kind codes HARSH_ACCEL, HARSH_BRAKE, HARSH_CORNER, SPEEDING, CRASH (names: EVENT_NAMES)
    road classes URBAN, EXTRA_URBAN, HIGHWAY (names: ROAD_CLASS_NAMES; source: ROAD_CLASS_SOURCE)
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
