"""Columnar outputs of the trip core: closed trips, driving events and stops (one NumPy array per field).

Units: times UTC ms, positions WGS84 degrees, distances m, durations s, speeds km/h, accelerations g.
A trip is identified by (device, start_ms); an event names its trip by the same key (``trip_start_ms``,
-1 outside any trip). Event columns of per-trip counts follow :data:`trips.config.EVENT_NAMES`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence, TypeVar

import numpy as np

from trips.config import ROAD_CLASS_SOURCE

T = TypeVar("T", bound="_Table")


class _Table:
    """Shared behaviour: empty(), concat(), take(), len(), to_dict()."""

    @classmethod
    def empty(cls: type[T]) -> T:
        return cls(**{f.name: np.zeros((0,) + _tail_shape(f.name, cls), _dtype(cls, f.name))
                      for f in fields(cls)})

    @classmethod
    def concat(cls: type[T], parts: Sequence[T]) -> T:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def take(self: T, index: np.ndarray) -> T:
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def __len__(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])

    def to_dict(self) -> dict[str, list]:
        """Plain lists, for JSON or for a DataFrame."""
        return {f.name: getattr(self, f.name).tolist() for f in fields(self)}


@dataclass(slots=True, eq=False)
class Trips(_Table):
    """Closed trips, shape (k,) per field; ``event_count``/``event_severity`` are (k, 5)."""
    device: np.ndarray          # int64 device code
    start_ms: np.ndarray        # int64: last stopped fix before moving (or first fix after a gap)
    end_ms: np.ndarray          # int64: first stopped fix (or last fix before a gap / ignition off)
    start_lat: np.ndarray
    start_lon: np.ndarray
    end_lat: np.ndarray
    end_lon: np.ndarray
    distance_m: np.ndarray      # float64, sum of ellipsoidal hop distances
    duration_s: np.ndarray
    moving_s: np.ndarray        # time at >= stop_speed_kmh
    idle_s: np.ndarray          # duration_s - moving_s
    max_speed_kmh: np.ndarray
    mean_speed_kmh: np.ndarray  # distance / moving time
    night_m: np.ndarray         # distance driven in the local night window
    urban_m: np.ndarray         # distance per road class (speed bands, see road_class_source)
    extra_urban_m: np.ndarray
    highway_m: np.ndarray
    speeding_s: np.ndarray      # time over limit + tolerance
    speeding_excess_kmh_s: np.ndarray  # integral of (speed - limit) over that time, km/h x s
    n_fixes: np.ndarray         # int64
    event_count: np.ndarray     # int32 (k, 5)
    event_severity: np.ndarray  # float64 (k, 5): sum of the events' severities (1..3)
    score: np.ndarray           # float64 0..100, docs/driving-score.md
    score_smoothness: np.ndarray
    score_speed: np.ndarray
    score_time_of_day: np.ndarray

    road_class_source = ROAD_CLASS_SOURCE

    @property
    def night_share(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.distance_m > 0, self.night_m / self.distance_m, 0.0)


@dataclass(slots=True, eq=False)
class Events(_Table):
    """Driving events, shape (m,). ``value``: peak g (accelerations, crash) or km/h over the limit."""
    device: np.ndarray          # int64
    trip_start_ms: np.ndarray   # int64, start_ms of the trip the event ended in, -1 outside trips
    ts_ms: np.ndarray           # int64, first fix of the event
    lat: np.ndarray
    lon: np.ndarray
    kind: np.ndarray            # int8, trips.config codes
    severity: np.ndarray        # int8 1..3
    value: np.ndarray           # float32
    duration_s: np.ndarray      # float32, time the threshold was exceeded


@dataclass(slots=True, eq=False)
class Stops(_Table):
    """Stops between two consecutive trips of a device, emitted when the second trip closes."""
    device: np.ndarray
    start_ms: np.ndarray        # end of the previous trip
    end_ms: np.ndarray          # start of the next trip
    lat: np.ndarray             # where the previous trip ended
    lon: np.ndarray
    duration_s: np.ndarray


_DTYPES = {
    "device": np.int64, "start_ms": np.int64, "end_ms": np.int64, "ts_ms": np.int64,
    "trip_start_ms": np.int64, "n_fixes": np.int64, "event_count": np.int32, "kind": np.int8,
    "severity": np.int8, "value": np.float32, "duration_s": np.float64,
}


def _dtype(cls, name: str):
    if cls is Events and name == "duration_s":
        return np.float32
    return _DTYPES.get(name, np.float64)


def _tail_shape(name: str, cls) -> tuple[int, ...]:
    return (5,) if name in ("event_count", "event_severity") else ()
