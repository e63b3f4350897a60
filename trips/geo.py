"""Distances on the WGS84 ellipsoid for the short hops between consecutive fixes.

Between two close points the ellipsoid is locally a plane scaled by the meridional radius M(φ) north-south
and by N(φ)·cos φ east-west, both taken at the mean latitude. For hops up to tens of km this agrees with
Karney's geodesic (pyproj.Geod) to better than 1e-4 relative, which the tests check against pyproj; it
costs one float32 cosine per fix instead of the four transcendental calls of a haversine, and unlike a
sphere it does not err by up to 0.5 % with the direction of travel. Antimeridian crossings are not
unwrapped (no road crosses it).
"""

from __future__ import annotations

import numpy as np

A = 6378137.0                    # WGS84 semi-major axis, m
F = 1.0 / 298.257223563          # WGS84 flattening
E2 = F * (2.0 - F)               # first eccentricity squared
_RAD = np.pi / 180.0
# M and N to first order in e² (the e⁴ terms are below 5e-5 relative): N = a(1 + e²s/2), M = a(1-e²)(1 + 3e²s/2).
_KN = A * _RAD
_KM = A * (1.0 - E2) * _RAD


def cos_lat(lat_deg: np.ndarray) -> np.ndarray:
    """float32 cos of ``lat_deg``: the one transcendental the distances here need (computed once per fix)."""
    return np.cos(np.asarray(lat_deg, dtype=np.float32) * np.float32(_RAD))


def metres_per_degree(lat_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale factors (m per degree of latitude, m per degree of longitude) at ``lat_deg``; float32, shape of input."""
    return scales_from_cos(cos_lat(lat_deg))


def scales_from_cos(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`metres_per_degree` from :func:`cos_lat` of the latitudes (same values)."""
    s2 = np.float32(1.0) - c * c
    m_lat = np.float32(_KM) * (np.float32(1.0) + np.float32(1.5 * E2) * s2)
    m_lon = np.float32(_KN) * (np.float32(1.0) + np.float32(0.5 * E2) * s2) * c
    return m_lat, m_lon


def hop_distance(lat0, lon0, lat1, lon1, cos0=None, cos1=None) -> np.ndarray:
    """Distance (m, float32) from (lat0, lon0) to (lat1, lon1), degrees, elementwise; for hops below ~50 km.
    ``cos0``/``cos1``: :func:`cos_lat` of lat0/lat1 when the caller has them (same result, cheaper)."""
    lat0 = np.asarray(lat0, dtype=np.float64)
    lat1 = np.asarray(lat1, dtype=np.float64)
    c = ((cos_lat(lat0) if cos0 is None else cos0) + (cos_lat(lat1) if cos1 is None else cos1)) * np.float32(0.5)
    s2 = np.float32(1.0) - c * c
    y = (lat1 - lat0).astype(np.float32) * (np.float32(_KM) * (np.float32(1.0) + np.float32(1.5 * E2) * s2))
    x = (np.asarray(lon1, dtype=np.float64) - np.asarray(lon0, dtype=np.float64)).astype(np.float32)
    x *= np.float32(_KN) * (np.float32(1.0) + np.float32(0.5 * E2) * s2) * c
    return np.sqrt(x * x + y * y)


def path_hops(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Distances (m, float32) between consecutive points: shape (n - 1,) for n points (degrees)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    c = np.cos(lat.astype(np.float32) * np.float32(_RAD))
    cm = (c[1:] + c[:-1]) * np.float32(0.5)
    s2 = np.float32(1.0) - cm * cm
    y = np.diff(lat).astype(np.float32)
    y *= np.float32(_KM) * (np.float32(1.0) + np.float32(1.5 * E2) * s2)
    x = np.diff(lon).astype(np.float32)
    x *= np.float32(_KN) * (np.float32(1.0) + np.float32(0.5 * E2) * s2) * cm
    return np.sqrt(x * x + y * y)
