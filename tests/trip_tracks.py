"""Synthetic NumPy tracks for the trip-core tests: a leg-by-leg builder and a few stock journeys."""

from __future__ import annotations

import numpy as np

from trips import TripConfig
from trips.geo import metres_per_degree

CFG = TripConfig()
T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
G = 9.80665
FOREVER = 2**62


class Track:
    """Builds one device's fixes leg by leg, 1 Hz by default, positions integrated from speed/heading."""

    def __init__(self, device=1, lat=45.0, lon=9.0, t0=T0, heading=90.0, seed=0):
        self.device, self.lat, self.lon, self.t, self.heading = device, lat, lon, t0, heading
        self.rng = np.random.default_rng(seed)
        self.cols: dict[str, list[np.ndarray]] = {k: [] for k in (
            "ts_ms", "lat", "lon", "speed_kmh", "heading_deg", "ignition", "accel_x", "accel_y", "accel_z")}

    def _emit(self, ts, lat, lon, kmh, heading, ignition, accel=None):
        n = len(ts)
        ax = np.full(n, np.nan) if accel is None else accel
        for k, v in (("ts_ms", ts), ("lat", lat), ("lon", lon), ("speed_kmh", kmh), ("heading_deg", heading),
                     ("ignition", np.full(n, ignition)), ("accel_x", ax),
                     ("accel_y", np.full(n, np.nan) if accel is None else np.zeros(n)),
                     ("accel_z", np.full(n, np.nan) if accel is None else np.zeros(n))):
            self.cols[k].append(np.asarray(v))

    def drive(self, seconds, kmh, kmh_to=None, turn_deg_s=0.0, ignition=-1, dt=1.0, accel=None):
        n = int(round(seconds / dt))
        kmh_to = kmh if kmh_to is None else kmh_to
        v = np.linspace(kmh, kmh_to, n + 1)[1:]
        heading = self.heading + turn_deg_s * dt * np.arange(1, n + 1)
        step_m = v / 3.6 * dt
        m_lat, m_lon = (float(x[0]) for x in metres_per_degree(np.array([self.lat])))
        lat = self.lat + np.cumsum(step_m * np.cos(np.radians(heading))) / m_lat
        lon = self.lon + np.cumsum(step_m * np.sin(np.radians(heading))) / m_lon
        ts = self.t + (np.arange(1, n + 1) * dt * 1000).astype(np.int64)
        self._emit(ts, lat, lon, v, heading % 360, ignition, accel)
        self.t, self.lat, self.lon, self.heading = int(ts[-1]), lat[-1], lon[-1], heading[-1] % 360
        return self

    def park(self, seconds, drift_m=0.0, ignition=-1, dt=1.0, speed_noise=0.0, no_speed=False):
        n = int(round(seconds / dt))
        ts = self.t + (np.arange(1, n + 1) * dt * 1000).astype(np.int64)
        m_lat, m_lon = (float(x[0]) for x in metres_per_degree(np.array([self.lat])))
        lat = self.lat + self.rng.normal(0, drift_m, n) / m_lat
        lon = self.lon + self.rng.normal(0, drift_m, n) / m_lon
        kmh = np.full(n, np.nan) if no_speed else np.abs(self.rng.normal(0, speed_noise, n))
        self._emit(ts, lat, lon, kmh, np.full(n, self.heading), ignition)
        self.t = int(ts[-1])
        return self

    def gap(self, seconds, move_m=0.0):
        self.t += int(seconds * 1000)
        m_lat, m_lon = (float(x[0]) for x in metres_per_degree(np.array([self.lat])))
        self.lon += move_m / m_lon
        return self

    def build(self) -> dict[str, np.ndarray]:
        out = {k: np.concatenate(v) for k, v in self.cols.items()}
        out["device"] = np.full(len(out["ts_ms"]), self.device, np.int64)
        out["ts_ms"] = out["ts_ms"].astype(np.int64)
        out["ignition"] = out["ignition"].astype(np.int8)
        for k in ("speed_kmh", "heading_deg", "accel_x", "accel_y", "accel_z"):
            out[k] = out[k].astype(np.float32)
        return out


def merge(*tracks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {k: np.concatenate([t[k] for t in tracks]) for k in tracks[0]}
    order = np.lexsort((out["ts_ms"], out["device"]))
    return {k: v[order] for k, v in out.items()}


def commute(track: Track, minutes=10, kmh=50.0) -> Track:
    """Park 5 min, accelerate gently, cruise, brake gently, park 5 min."""
    return (track.park(300).drive(20, 0, kmh).drive(minutes * 60, kmh).drive(20, kmh, 0).park(300))
