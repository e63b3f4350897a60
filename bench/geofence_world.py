"""Seeded synthetic fences and devices for ``bench/geofence.py``: vectorised, no network, no files.

A 2° × 4° region around Helsinki (about 220 × 220 km). Fences: half circles (radius 50 m – 2 km, log-uniform),
half star-shaped polygons of 8–16 vertices (100 m – 2 km), one polygon in ten with a hole. Devices: 30 % parked
with GPS jitter (σ 15 m), the rest driving straight legs at 5–30 m/s that turn now and then, with σ 5 m noise;
one fix per device per round, ``dt_s`` apart.
"""

from __future__ import annotations

import numpy as np
from pyproj import Geod

from geofence import CircleFence, PolygonFence

LAT0, LON0, DLAT, DLON = 59.2, 23.0, 2.0, 4.0
GEOD = Geod(ellps="WGS84")


def fences(n: int, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    lat = LAT0 + rng.uniform(0, DLAT, n)
    lon = LON0 + rng.uniform(0, DLON, n)
    radius = np.exp(rng.uniform(np.log(50), np.log(2000), n))
    out: list = []
    for i in range(n):
        if i % 2 == 0:
            out.append(CircleFence(i + 1, float(lat[i]), float(lon[i]), float(radius[i]), name=f"c{i}"))
            continue
        k = int(rng.integers(8, 17))
        az = (np.arange(k) + rng.uniform(0, 0.8, k)) * 360.0 / k   # star-shaped around the centre
        r = radius[i] * rng.uniform(0.6, 1.0, k) + 50
        plon, plat, _ = GEOD.fwd(np.full(k, lon[i]), np.full(k, lat[i]), az, r)
        rings = [_closed(plon, plat)]
        if i % 20 == 1:
            hlon, hlat, _ = GEOD.fwd(np.full(6, lon[i]), np.full(6, lat[i]), np.arange(0, 360, 60.0)[::-1],
                                     np.full(6, 0.3 * r.min()))
            rings.append(_closed(hlon, hlat))
        out.append(PolygonFence(i + 1, {"type": "Polygon", "coordinates": rings}, name=f"p{i}"))
    return out


def _closed(lon, lat) -> list:
    ring = np.column_stack([lon, lat]).tolist()
    return ring + [ring[0]]


def rounds(devices: int, n_rounds: int, dt_s: float = 10.0, seed: int = 2, t0_ms: int = 1_767_000_000_000):
    """Yield ``n_rounds`` fix batches (dict of columns, sorted by device), one fix per device each."""
    rng = np.random.default_rng(seed)
    lat = LAT0 + rng.uniform(0, DLAT, devices)
    lon = LON0 + rng.uniform(0, DLON, devices)
    parked = rng.random(devices) < 0.3
    speed = np.where(parked, 0.0, rng.uniform(5, 30, devices))
    heading = rng.uniform(0, 2 * np.pi, devices)
    m_lat = 111_320.0
    device = np.arange(devices, dtype=np.int64)
    for r in range(n_rounds):
        turn = rng.random(devices) < 0.1
        heading = np.where(turn, heading + rng.normal(0, 1.0, devices), heading)
        step = speed * dt_s
        lat = lat + step * np.cos(heading) / m_lat
        lon = lon + step * np.sin(heading) / (m_lat * np.cos(np.radians(lat)))
        noise = np.where(parked, 15.0, 5.0)
        jl = lat + rng.normal(0, 1, devices) * noise / m_lat
        jo = lon + rng.normal(0, 1, devices) * noise / (m_lat * np.cos(np.radians(lat)))
        yield {"device": device, "ts_ms": np.full(devices, t0_ms + int(r * dt_s * 1000), np.int64),
               "lat": jl, "lon": jo, "accuracy_m": np.where(parked, 15.0, 5.0)}
