"""Which fences each fix is in (or near): STRtree prefilter on lon/lat boxes, then exact tests.

A circle's signed distance is the WGS84 geodesic distance to its centre (pyproj ``Geod.inv``) minus the
radius. A polygon's is the planar distance to its boundary in the fence's azimuthal equidistant projection
(see :mod:`geofence.shapes`), negative inside (holes are outside), via shapely ``contains_xy`` and ``distance``.
Segments (for ``cross``) are tested in the fence's projection. All functions take
arrays of many fixes and return index arrays; the only Python loop is over fences that have candidates.
"""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Geod

from geofence.shapes import CIRCLE, M_PER_DEG_LAT, M_PER_DEG_LON, FenceSet, lonlat_boxes, wrap_lon

_GEOD = Geod(ellps="WGS84")


def _unique_pairs(a: np.ndarray, b: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray]:
    key = np.unique(a.astype(np.int64) * max(nb, 1) + b)
    return key // max(nb, 1), key % max(nb, 1)


def candidates_box(fs: FenceSet, lat_lo, lat_hi, lon_c, lon_half) -> tuple[np.ndarray, np.ndarray]:
    """(row, fence) pairs whose fence box meets the query box of ``row`` (deg); sorted, unique."""
    if len(fs) == 0 or len(lat_lo) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    boxes, owner = lonlat_boxes(lat_lo, lat_hi, lon_c, lon_half)
    q, t = fs.tree.query(boxes)
    return _unique_pairs(owner[q], fs.tree_fence[t], len(fs))


def candidates(fs: FenceSet, lat, lon, margin_m) -> tuple[np.ndarray, np.ndarray]:
    """(fix, fence) pairs whose fence box meets a box of ``margin_m`` (m, per fix) around the fix."""
    lat = np.asarray(lat, float)
    half_lat = margin_m / M_PER_DEG_LAT * 1.01 + 1e-7
    lo, hi = lat - half_lat, lat + half_lat
    worst = np.minimum(np.maximum(np.abs(lo), np.abs(hi)), 90.0)
    cos = np.cos(np.radians(worst))
    with np.errstate(divide="ignore", invalid="ignore"):
        half_lon = np.where(worst >= 89.9, 180.0, margin_m / (M_PER_DEG_LON * cos) * 1.01 + 1e-7)
    return candidates_box(fs, lo, hi, lon, half_lon)


def project(fs: FenceSet, fence: int, lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Fixes in fence ``fence``'s local projection: (x, y) metres from its centre."""
    x, y = fs.projection(fence).transform(np.asarray(lon, float), np.asarray(lat, float))
    return np.asarray(x, float), np.asarray(y, float)


def signed_distance(fs: FenceSet, fix_idx, fence_idx, lat, lon) -> np.ndarray:
    """For each pair, the fix's distance to the fence boundary (m): negative inside, positive outside."""
    fix_idx = np.asarray(fix_idx, np.int64)
    fence_idx = np.asarray(fence_idx, np.int64)
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    out = np.empty(len(fix_idx))
    order = np.argsort(fence_idx, kind="stable")
    bounds = np.flatnonzero(np.diff(fence_idx[order])) + 1
    for grp in np.split(order, bounds):
        if len(grp) == 0:
            continue
        f = int(fence_idx[grp[0]])
        la, lo = lat[fix_idx[grp]], lon[fix_idx[grp]]
        if fs.kind[f] == CIRCLE:
            c_lat, c_lon = fs.centre[f]
            dist = _GEOD.inv(np.full(len(grp), c_lon), np.full(len(grp), c_lat), lo, la)[2]
            out[grp] = np.asarray(dist, float) - fs.radius_m[f]
        else:
            x, y = project(fs, f, la, lo)
            poly = fs.shape[f]
            d = shapely.distance(shapely.points(x, y), poly.boundary)
            out[grp] = np.where(shapely.contains_xy(poly, x, y), -d, d)
    return out


def near(fs: FenceSet, lat, lon, margin_m=0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fences each fix is inside of, or within ``margin_m`` (m, scalar or per fix) outside of.

    Returns (fix_idx, fence_idx, signed_distance_m), sorted by (fix, fence).
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    margin = np.broadcast_to(np.maximum(np.asarray(margin_m, float), 0.0), lat.shape)
    fix, fence = candidates(fs, lat, lon, margin)
    d = signed_distance(fs, fix, fence, lat, lon)
    keep = d <= margin[fix]
    return fix[keep], fence[keep], d[keep]


def inside(fs: FenceSet, lat, lon, margin_m=0.0) -> tuple[np.ndarray, np.ndarray]:
    """(fix_idx, fence_idx) pairs: fix inside the fence grown by ``margin_m`` (m; 0 = strictly inside)."""
    fix, fence, _ = near(fs, lat, lon, margin_m)
    return fix, fence


def segment_crosses(fs: FenceSet, lat_a, lon_a, lat_b, lon_b) -> tuple[np.ndarray, np.ndarray]:
    """(segment_idx, fence_idx) pairs where the straight segment a→b (in the fence's projection) meets it.

    Segments are taken the short way round the globe, so a hop across the antimeridian stays short.
    """
    lat_a, lon_a = np.asarray(lat_a, float), np.asarray(lon_a, float)
    lat_b, lon_b = np.asarray(lat_b, float), np.asarray(lon_b, float)
    dlon = wrap_lon(lon_b - lon_a)
    seg, fence = candidates_box(fs, np.minimum(lat_a, lat_b), np.maximum(lat_a, lat_b),
                                lon_a + dlon / 2, np.abs(dlon) / 2 + 1e-7)
    hit = np.zeros(len(seg), bool)
    order = np.argsort(fence, kind="stable")
    for grp in np.split(order, np.flatnonzero(np.diff(fence[order])) + 1):
        if len(grp) == 0:
            continue
        f = int(fence[grp[0]])
        xa, ya = project(fs, f, lat_a[seg[grp]], lon_a[seg[grp]])
        xb, yb = project(fs, f, lat_b[seg[grp]], lon_b[seg[grp]])
        if fs.kind[f] == CIRCLE:
            dx, dy = xb - xa, yb - ya
            len2 = dx * dx + dy * dy
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.clip(np.where(len2 > 0, -(xa * dx + ya * dy) / len2, 0.0), 0.0, 1.0)
            hit[grp] = np.hypot(xa + t * dx, ya + t * dy) <= fs.radius_m[f]
        else:
            lines = shapely.linestrings(np.stack([np.column_stack([xa, ya]), np.column_stack([xb, yb])], axis=1))
            hit[grp] = shapely.intersects(lines, fs.shape[f])
    return seg[hit], fence[hit]
