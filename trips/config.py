"""Trip, event and score settings (one frozen dataclass) and the integer codes used in the output arrays.

Every default names its source. "Traccar" means Traccar's current ("new logic") trip keys
``report.trip.minDistance`` (200 m), ``report.trip.minDuration`` (180 s) and ``report.trip.stopGap``
(3600 s); "Teltonika" means the FMB family's Green Driving parameter defaults (max acceleration 2.5 m/s²,
max braking 2.7 m/s², max cornering 3.4 m/s², GPS source computed at 1 Hz, only from 10 km/h).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

G = 9.80665  # m/s² per g (standard gravity)

# Event type codes (``Events.kind``) and their names, in code order.
HARSH_ACCEL, HARSH_BRAKE, HARSH_CORNER, SPEEDING, CRASH = 0, 1, 2, 3, 4
EVENT_NAMES = ("harsh_acceleration", "harsh_braking", "harsh_cornering", "speeding", "crash")

# Road classes, estimated from speed bands when no road graph is available.
URBAN, EXTRA_URBAN, HIGHWAY = 0, 1, 2
ROAD_CLASS_NAMES = ("urban", "extra_urban", "highway")
ROAD_CLASS_SOURCE = "speed_bands"  # reported with every trip: no road graph/map matching was used


@dataclass(frozen=True, slots=True)
class TripConfig:
    # --- segmentation -------------------------------------------------------------------------
    # 200 m: Traccar report.trip.minDistance. A stop ends (trip starts) once the car is this far from
    # where it stood; a stop is confirmed when every fix of the last min_stop_duration_s stays this close.
    min_distance_m: float = 200.0
    # 180 s: Traccar report.trip.minDuration ("if the device doesn't move for the minimum duration,
    # it is considered a stop").
    min_stop_duration_s: float = 180.0
    # 3600 s: Traccar report.trip.stopGap / report.trip.minimalNoDataDuration (one hour).
    max_gap_s: float = 3600.0
    # 200 m: Traccar report.trip.minDistance again ("distances above the minimum are considered trips").
    min_trip_distance_m: float = 200.0
    # 60 s: ours. Removes a single GPS jump (a far fix and back within seconds); Traccar's old 300 s
    # would also drop real short hops, which matter for mileage-based cover.
    min_trip_duration_s: float = 60.0
    # 5 km/h: ours, walking pace. GNSS Doppler speed of a parked receiver stays below it, so a fix
    # reporting more is moving even inside a stop window; also the moving/idle split of trip time.
    stop_speed_kmh: float = 5.0
    # None: no filter. Fixes reporting a worse horizontal accuracy (m) are ignored.
    max_accuracy_m: float | None = None
    # 600 s: ours. close_idle() closes the open trip of a device silent this long. Longer than common
    # tunnel/urban-canyon outages; set it >= max_gap_s to make close_idle exactly batch-equivalent.
    idle_close_s: float = 600.0

    # --- metrics --------------------------------------------------------------------------------
    # 23:00-05:00 local time: the night window (minutes after local midnight, may wrap).
    night_start_min: int = 23 * 60
    night_end_min: int = 5 * 60
    # Road class from the mean speed of the device in epoch-aligned windows of this length:
    # < urban_max_kmh urban, >= highway_min_kmh highway, else extra-urban. 60 s windows smooth
    # traffic lights out yet follow a motorway exit. Must not exceed min_stop_duration_s.
    # A fix takes the highest class of its window and the two neighbouring windows (see metrics).
    road_class_window_s: float = 60.0
    urban_max_kmh: float = 50.0
    highway_min_kmh: float = 90.0
    # Limits per class (urban, extra-urban, highway), km/h: the common EU 50/90/130.
    speed_limits_kmh: tuple[float, float, float] = (50.0, 90.0, 130.0)

    # --- events ---------------------------------------------------------------------------------
    # Thresholds in g. 0.3/0.3/0.35 from the issue; Teltonika's 0.25/0.28/0.35 g and Progressive
    # Snapshot's hard brake (7 mph lost in one second = 0.32 g) are of the same order.
    harsh_accel_g: float = 0.30
    harsh_brake_g: float = 0.30
    harsh_corner_g: float = 0.35
    # 2.5 g: the issue. Tyre grip limits normal driving to about 1 g, so 2.5 g means an impact.
    crash_g: float = 2.5
    # A harsh run must last this long (sum of the fix intervals it covers): with 1 Hz fixes two
    # consecutive samples, so one bad speed value (a +a then -a pair) never makes an event.
    harsh_min_duration_s: float = 1.5
    # Speed-derived acceleration only between fixes at most this far apart, and only from 10 km/h
    # (Teltonika computes GPS green driving at 1 Hz and from 10 km/h).
    max_derivative_dt_s: float = 5.0
    event_min_speed_kmh: float = 10.0
    # Speeding: over the class limit by more than the tolerance for at least the duration.
    speeding_tolerance_kmh: float = 10.0
    speeding_min_duration_s: float = 10.0
    # Severity 1/2/3 when the run's peak reaches each value (g; km/h over the limit for speeding).
    severity_accel_g: tuple[float, float, float] = (0.30, 0.45, 0.60)
    severity_brake_g: tuple[float, float, float] = (0.30, 0.45, 0.60)
    severity_corner_g: tuple[float, float, float] = (0.35, 0.50, 0.65)
    severity_speeding_kmh: tuple[float, float, float] = (10.0, 20.0, 30.0)
    severity_crash_g: tuple[float, float, float] = (2.5, 4.0, 6.0)

    # --- score (docs/driving-score.md) ------------------------------------------------------------
    # Points deducted per severity-weighted event per 100 km, and each category's cap; caps sum to 100.
    score_points_per_event: tuple[float, float, float] = (1.0, 1.5, 1.0)  # accel, brake, corner
    score_caps: tuple[float, float, float] = (15.0, 20.0, 15.0)           # accel, brake, corner
    # Speeding: points per km/h-minute of excess (speed minus limit while speeding) per 100 km.
    score_points_per_speeding_kmh_min: float = 0.5
    score_speed_cap: float = 35.0
    # Night: cap x share of distance driven at night.
    score_night_cap: float = 15.0
    # Rates are per 100 km of max(distance, this): a 2 km trip is judged as if it were 10 km long.
    score_min_distance_km: float = 10.0

    def __post_init__(self) -> None:
        positive = ("min_distance_m", "min_stop_duration_s", "max_gap_s", "road_class_window_s",
                    "max_derivative_dt_s", "score_min_distance_km")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"TripConfig.{name} must be > 0")
        if self.road_class_window_s > self.min_stop_duration_s:
            raise ValueError("TripConfig.road_class_window_s must not exceed min_stop_duration_s")
        if self.max_gap_s < self.min_stop_duration_s:
            raise ValueError("TripConfig.max_gap_s must be >= min_stop_duration_s")
        if abs(sum(self.score_caps) + self.score_speed_cap + self.score_night_cap - 100.0) > 1e-9:
            raise ValueError("TripConfig score caps must sum to 100")

    @property
    def horizon_ms(self) -> int:
        """How long after a fix its stop/trip classification can still change (UTC ms)."""
        return int(round(max(self.min_stop_duration_s, 2 * self.road_class_window_s) * 1000))

    def severity_bands(self) -> np.ndarray:
        """(5, 3) float64: severity thresholds per event kind in output units (g or km/h)."""
        return np.array([self.severity_accel_g, self.severity_brake_g, self.severity_corner_g,
                         self.severity_speeding_kmh, self.severity_crash_g], dtype=np.float64)

    def min_event_duration_s(self) -> np.ndarray:
        """(5,) float64: minimum run duration per event kind (crash: none, a crash pulse is ~0.1 s)."""
        h = self.harsh_min_duration_s
        return np.array([h, h, h, self.speeding_min_duration_s, 0.0])
