"""Which fences each fix is in (or near): a box prefilter, then exact tests, all as index arrays.

A circle's signed distance is the WGS84 geodesic distance to its centre minus the radius; a polygon's is the
planar distance to its boundary in the fence's tangent frame (see :mod:`geofence.frames`), negative inside
(holes are outside), via shapely ``contains_xy`` and ``distance``. Segments (for ``cross``) are tested in the
fence's frame. Everything is vectorised over (fix, fence) pairs: no loop over fixes or fences.
"""

from __future__ import annotations

import numpy as np
import shapely

from geofence.edges import outside_segment_hits
from geofence.frames import arc_from_centre, east_north, ecef
from geofence.raster import EDGE as EDGE_CELL
from geofence.raster import IN as IN_CELL
from geofence.shapes import CIRCLE, M_PER_DEG_LAT, M_PER_DEG_LON, FenceSet, lonlat_boxes, wrap_lon


def _unique_pairs(a: np.ndarray, b: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray]:
    key = np.unique(a.astype(np.int64) * max(nb, 1) + b)
    return key // max(nb, 1), key % max(nb, 1)


def candidates_box(fs: FenceSet, lat_lo, lat_hi, lon_c, lon_half) -> tuple[np.ndarray, np.ndarray]:
    """(row, fence) pairs whose fence box meets the query box of ``row`` (deg), from the STRtree; sorted."""
    if len(fs) == 0 or len(lat_lo) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    boxes, owner = lonlat_boxes(lat_lo, lat_hi, lon_c, lon_half)
    q, t = fs.tree.query(boxes)
    return _unique_pairs(owner[q], fs.tree_fence[t], len(fs))


def in_box(fs: FenceSet, fix, fence, lat, lon, margin_m) -> np.ndarray:
    """Per pair: is the fix inside its fence's lon/lat box grown by ``margin_m`` (m, per pair)?"""
    la = lat[fix]
    grow = margin_m / M_PER_DEG_LAT * 1.01 + 1e-7
    ok = (la >= fs.box_lat[fence, 0] - grow) & (la <= fs.box_lat[fence, 1] + grow)
    cos = np.cos(np.radians(np.minimum(np.abs(la) + grow, 89.9)))
    half = fs.box_lon[fence, 1] + margin_m / (M_PER_DEG_LON * cos) * 1.01 + 1e-7
    return ok & (np.abs(wrap_lon(lon[fix] - fs.box_lon[fence, 0])) <= half)


def in_grown_box(fs: FenceSet, fence, lat, lon) -> np.ndarray:
    """Per pair: is the point (deg) inside the fence's box grown by its ``pad_m`` (precomputed)?"""
    g = np.take(fs.grown_box, fence, axis=0)     # np.take: row gathers far faster than fancy indexing
    d = np.abs(lon - g[:, 2])
    return (lat >= g[:, 0]) & (lat <= g[:, 1]) & ((d <= g[:, 3]) | (d >= 360.0 - g[:, 3]))


def candidates(fs: FenceSet, lat, lon, margin_m) -> tuple[np.ndarray, np.ndarray]:
    """(fix, fence) pairs whose fence box, grown by ``margin_m`` (m, per fix), holds the fix; unsorted.

    Uses the grid while every margin fits in the fences' ``pad_m``, the STRtree otherwise.
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    margin = np.broadcast_to(np.maximum(np.asarray(margin_m, float), 0.0), lat.shape)
    if len(fs) == 0 or len(lat) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if float(margin.max()) <= float(fs.pad_m.min()):
        fix, fence = fs.grid.query(lat, lon)
        keep = in_box(fs, fix, fence, lat, lon, margin[fix])
        return fix[keep], fence[keep]
    half_lat = margin / M_PER_DEG_LAT * 1.01 + 1e-7
    lo, hi = lat - half_lat, lat + half_lat
    worst = np.minimum(np.maximum(np.abs(lo), np.abs(hi)), 90.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        half_lon = np.where(worst >= 89.9, 180.0, margin / (M_PER_DEG_LON * np.cos(np.radians(worst))) * 1.01 + 1e-7)
    return candidates_box(fs, lo, hi, lon, half_lon)


def pair_distance(fs: FenceSet, fence, xyz, margin_m=None, inner_m=None):
    """Signed distance (m) of points ``xyz`` (k, 3, ECEF) to fences ``fence`` (k,), plus their frame coordinates.

    Returns (d, inside, east, north); ``d`` is negative inside. Polygon distances are exact only where the
    caller needs them, to spare shapely's per-point cost:

    - outside, where the distance to the fence's frame box is at most ``margin_m`` (per pair; None =
      everywhere) and ``margin_m`` differs from the fence's ``outer0_m``; at ``outer0_m`` the pre-grown
      polygon answers instead. Where not exact, ``d`` is a lower bound on the same side of ``margin_m`` as
      the true distance;
    - inside, where ``inner_m`` (per pair; None = everywhere) is larger than the fence's ``inner0_m``; at
      ``inner0_m`` the pre-shrunk polygon answers instead and ``d`` is ``-inner_m`` when the point is at
      least that deep, else ``-0.0``; ``inner_m = inf`` asks no depth at all.
    """
    par = np.take(fs.frame, fence, axis=0)
    east, north = east_north(par, xyz)
    d = np.empty(len(fence))
    circ = fs.kind[fence] == CIRCLE
    if circ.any():
        c = np.flatnonzero(circ)
        d[c] = arc_from_centre(np.take(par, c, axis=0), np.take(xyz, c, axis=0), east[c], north[c]) - fs.radius_m[fence[c]]
    inside = d <= 0
    p = np.flatnonzero(~circ)
    if len(p):
        pf, pe, pn = fence[p], east[p], north[p]
        box = np.take(fs.frame_box, pf, axis=0)
        dx = np.maximum(np.maximum(box[:, 0] - pe, pe - box[:, 2]), 0.0)
        dy = np.maximum(np.maximum(box[:, 1] - pn, pn - box[:, 3]), 0.0)
        out_box = np.hypot(dx, dy)
        pin = np.zeros(len(p), bool)
        cand = np.flatnonzero(out_box == 0)
        pin[cand] = shapely.contains_xy(fs.shape[pf[cand]], pe[cand], pn[cand])
        inside[p] = pin
        dp = np.where(pin, -0.0, out_box)
        if inner_m is None:
            exact = pin.copy()
        else:
            inner = inner_m[p]
            asked = pin & np.isfinite(inner)        # inner_m = inf: the depth is not needed
            exact = asked & (inner > fs.inner0_m[pf] + 1e-9)
            quick = np.flatnonzero(asked & ~exact & (inner > 0))
            deep = shapely.contains_xy(fs.shrunk[pf[quick]], pe[quick], pn[quick])
            dp[quick[deep]] = -inner[quick[deep]]
        if margin_m is None:
            exact |= ~pin
        else:
            margin = margin_m[p]
            close = ~pin & (out_box <= margin)
            usual = close & (np.abs(margin - fs.outer0_m[pf]) <= 1e-9)
            exact |= close & ~usual
            q = np.flatnonzero(usual)
            beyond = ~shapely.contains_xy(fs.grown[pf[q]], pe[q], pn[q])
            dp[q[beyond]] = np.nextafter(margin[q[beyond]], np.inf)
        if exact.any():
            ex = np.flatnonzero(exact)
            dist = shapely.distance(shapely.points(pe[ex], pn[ex]), fs.boundary[pf[ex]])
            dp[ex] = np.where(pin[ex], -dist, dist)
        d[p] = dp
    return d, inside, east, north


_SURE_M = 1e-3   # a pre-grown or pre-shrunk polygon stands in for the exact test only if its offset is larger


def _polygon_frame(fs: FenceSet, fence, east, north):
    """Distance (m) from each point to its polygon's frame box (0 inside the box)."""
    box = np.take(fs.frame_box, fence, axis=0)
    dx = np.maximum(np.maximum(box[:, 0] - east, east - box[:, 2]), 0.0)
    dy = np.maximum(np.maximum(box[:, 1] - north, north - box[:, 3]), 0.0)
    return np.hypot(dx, dy)


def evidence(fs: FenceSet, fence, xyz, margin_m, inner_m) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: (near, deep) = (inside or within ``margin_m`` outside, inside by at least ``inner_m``).

    The same answers as :func:`pair_distance` (``d <= margin_m``; inside and ``d <= -inner_m``) with fewer
    polygon tests in the usual case (``margin_m`` = ``outer0_m``, ``inner_m`` = ``inner0_m``): a point outside
    the pre-grown polygon is neither; inside it, it is near, and deep if inside the pre-shrunk one. Both come
    from the polygon's raster (:mod:`geofence.raster`) except in its boundary cells, which ask shapely.
    Circles compare the chord to the thresholds first (see :func:`_circle_evidence`).
    """
    k = len(fence)
    near, deep = np.zeros(k, bool), np.zeros(k, bool)
    circ = fs.kind[fence] == CIRCLE
    c = np.flatnonzero(circ)
    if len(c):
        near[c], deep[c] = _circle_evidence(fs, fence[c], np.take(xyz, c, axis=0), margin_m[c], inner_m[c])
    p = np.flatnonzero(~circ)
    if len(p):
        pf, margin, inner = fence[p], margin_m[p], inner_m[p]
        usual = ((np.abs(margin - fs.outer0_m[pf]) <= 1e-9) & (fs.outer0_m[pf] > _SURE_M)
                 & (inner > 0) & (inner <= fs.inner0_m[pf] + 1e-9) & (fs.inner0_m[pf] > _SURE_M))
        u = p[usual]
        uf = fence[u]
        eu, nu = east_north(np.take(fs.frame, uf, axis=0), np.take(xyz, u, axis=0))
        code = fs.rasters.lookup(uf, eu, nu)
        in_g = (code & 3) == IN_CELL
        a = np.flatnonzero((code & 3) == EDGE_CELL)
        in_g[a] = shapely.contains_xy(fs.grown[uf[a]], eu[a], nu[a])
        near[u] = in_g
        code >>= 2
        in_s = in_g & (code == IN_CELL)
        b = np.flatnonzero(in_g & (code == EDGE_CELL))
        in_s[b] = shapely.contains_xy(fs.shrunk[uf[b]], eu[b], nu[b])
        deep[u] = in_s
        o = p[~usual]
        if len(o):
            d, ins, _, _ = pair_distance(fs, fence[o], xyz[o], margin_m[o], inner_m[o])
            near[o] = ins | (d <= margin_m[o])
            deep[o] = ins & (d <= -inner_m[o])
    return near, deep


_ARC_K = 1.0 / (20.0 * 6.3e6 ** 2)   # arc <= chord (1 + chord² K) for chords up to _ARC_CHORD_M (M >= 6.33e6 m)
_ARC_CHORD_M = 1e5


def _circle_evidence(fs: FenceSet, fence, xyz, margin_m, inner_m) -> tuple[np.ndarray, np.ndarray]:
    """:func:`evidence` for circles. The arc from the centre is at least the ECEF chord and exceeds it by a
    relative ``chord² K`` at most, so the chord settles every pair but those within that (sub-millimetre)
    band of a threshold; only those compute the arc."""
    par = np.take(fs.frame, fence, axis=0)
    dv = xyz - par[:, :3]
    chord = np.sqrt(np.einsum("ij,ij->i", dv, dv))
    radius = fs.radius_m[fence]
    slack = 1e-9 * (chord + radius) + 1e-9
    lo = chord - radius - slack
    hi = np.where(chord <= _ARC_CHORD_M, chord * (1.0 + chord * chord * _ARC_K), np.inf) - radius + slack
    deep_at = np.minimum(0.0, -inner_m)
    near, deep = hi <= margin_m, hi <= deep_at
    a = np.flatnonzero(((lo <= margin_m) & ~near) | ((lo <= deep_at) & ~deep))
    if len(a):
        pa, xa = np.take(par, a, axis=0), np.take(xyz, a, axis=0)
        east, north = east_north(pa, xa)
        d = arc_from_centre(pa, xa, east, north) - radius[a]
        near[a] = d <= margin_m[a]
        deep[a] = (d <= 0) & (d <= -inner_m[a])
    return near, deep


def beyond(fs: FenceSet, fence, xyz, margin_m, east, north) -> np.ndarray:
    """Per pair: is the point farther than ``margin_m`` outside the fence (``pair_distance`` d > margin)?

    ``east``/``north``: the point in the fence's frame. With the usual margin (``outer0_m``) a polygon asks
    only its pre-grown shape: its raster, and shapely in the raster's boundary cells.
    """
    out = np.zeros(len(fence), bool)
    circ = fs.kind[fence] == CIRCLE
    c = np.flatnonzero(circ)
    if len(c):
        d = arc_from_centre(np.take(fs.frame, fence[c], axis=0), np.take(xyz, c, axis=0), east[c], north[c]) - fs.radius_m[fence[c]]
        out[c] = d > margin_m[c]
    p = np.flatnonzero(~circ)
    if len(p):
        pf, margin = fence[p], margin_m[p]
        out_box = _polygon_frame(fs, pf, east[p], north[p])
        far = out_box > margin
        out[p[far]] = True
        close = ~far
        at0 = (np.abs(margin - fs.outer0_m[pf]) <= 1e-9) & (fs.outer0_m[pf] > _SURE_M)
        usual = close & at0
        u = np.flatnonzero(usual)
        pu = p[u]
        code = fs.rasters.lookup(pf[u], east[pu], north[pu]) & 3
        a = np.flatnonzero(code == EDGE_CELL)
        inside = code == IN_CELL
        inside[a] = shapely.contains_xy(fs.grown[pf[u[a]]], east[pu[a]], north[pu[a]])
        out[pu] = ~inside
        o = p[close & ~at0]
        if len(o):
            out[o] = pair_distance(fs, fence[o], xyz[o], margin_m[o], np.full(len(o), np.inf))[0] > margin_m[o]
    return out


def signed_distance(fs: FenceSet, fix_idx, fence_idx, lat, lon) -> np.ndarray:
    """For each pair, the fix's distance to the fence boundary (m): negative inside, positive outside."""
    fix_idx = np.asarray(fix_idx, np.int64)
    fence_idx = np.asarray(fence_idx, np.int64)
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    return pair_distance(fs, fence_idx, ecef(lat[fix_idx], lon[fix_idx]).reshape(-1, 3))[0]


def near(fs: FenceSet, lat, lon, margin_m=0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fences each fix is inside of, or within ``margin_m`` (m, scalar or per fix) outside of.

    Returns (fix_idx, fence_idx, signed_distance_m), sorted by (fix, fence).
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    margin = np.broadcast_to(np.maximum(np.asarray(margin_m, float), 0.0), lat.shape)
    fix, fence = candidates(fs, lat, lon, margin)
    order = np.lexsort((fence, fix))
    fix, fence = fix[order], fence[order]
    d, _, _, _ = pair_distance(fs, fence, ecef(lat[fix], lon[fix]).reshape(-1, 3), margin[fix])
    keep = d <= margin[fix]
    return fix[keep], fence[keep], d[keep]


def inside(fs: FenceSet, lat, lon, margin_m=0.0) -> tuple[np.ndarray, np.ndarray]:
    """(fix_idx, fence_idx) pairs: fix inside the fence grown by ``margin_m`` (m; 0 = strictly inside)."""
    fix, fence, _ = near(fs, lat, lon, margin_m)
    return fix, fence


def _closest_to_origin(ea, na, eb, nb) -> np.ndarray:
    """Distance (m) from the frame origin to the nearest point of each segment a→b (frame metres)."""
    dx, dy = eb - ea, nb - na
    len2 = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip(np.where(len2 > 0, -(ea * dx + na * dy) / len2, 0.0), 0.0, 1.0)
    return np.hypot(ea + t * dx, na + t * dy)


def segment_reaches(fs: FenceSet, fence, ea, na, eb, nb) -> np.ndarray:
    """Per pair: may the segment a→b (frame metres of ``fence``) meet the fence? Exact for circles (closest
    approach to the centre within the radius), the segment's box meeting the frame box for polygons."""
    ok = np.empty(len(fence), bool)
    circ = fs.kind[fence] == CIRCLE
    c = np.flatnonzero(circ)
    if len(c):
        ok[c] = _closest_to_origin(ea[c], na[c], eb[c], nb[c]) <= fs.radius_m[fence[c]]
    p = np.flatnonzero(~circ)
    if len(p):
        box = np.take(fs.frame_box, fence[p], axis=0)
        ok[p] = ((np.maximum(ea[p], eb[p]) >= box[:, 0]) & (np.minimum(ea[p], eb[p]) <= box[:, 2])
                 & (np.maximum(na[p], nb[p]) >= box[:, 1]) & (np.minimum(na[p], nb[p]) <= box[:, 3]))
    return ok


def segment_hits(fs: FenceSet, fence, ea, na, eb, nb, reached: bool = False, ends_outside: bool = False
                 ) -> np.ndarray:
    """Per pair: does the straight segment a→b (frame metres of ``fence``) meet the fence?

    ``reached=True``: every pair already passed :func:`segment_reaches`, so only polygons need more work.
    ``ends_outside=True``: both ends are known to be outside the fence, so polygons are tested edge by edge
    (:func:`geofence.edges.outside_segment_hits`) rather than by shapely.
    """
    hit = np.ones(len(fence), bool) if reached else segment_reaches(fs, fence, ea, na, eb, nb)
    p = np.flatnonzero(hit & (fs.kind[fence] != CIRCLE))
    if len(p):
        # The segment's closest approach to the frame origin: within sure_in_m it enters the polygon,
        # beyond sure_out_m it misses it; only the rest need the exact test.
        pf = fence[p]
        reach = _closest_to_origin(ea[p], na[p], eb[p], nb[p])
        sure_in, sure_out = reach < fs.sure_in_m[pf], reach > fs.sure_out_m[pf]
        hit[p[sure_out]] = False
        p = p[~sure_in & ~sure_out]
        if ends_outside:
            hit[p] = outside_segment_hits(fs.edges, fs.shape, fence[p], ea[p], na[p], eb[p], nb[p])
        else:
            coords = np.stack([np.column_stack([ea[p], na[p]]), np.column_stack([eb[p], nb[p]])], axis=1)
            hit[p] = shapely.intersects(shapely.linestrings(coords), fs.shape[fence[p]])
    return hit


def segment_crosses(fs: FenceSet, lat_a, lon_a, lat_b, lon_b) -> tuple[np.ndarray, np.ndarray]:
    """(segment_idx, fence_idx) pairs where the straight segment a→b (in the fence's frame) meets it.

    Segments are taken the short way round the globe, so a hop across the antimeridian stays short.
    """
    lat_a, lon_a = np.asarray(lat_a, float), np.asarray(lon_a, float)
    lat_b, lon_b = np.asarray(lat_b, float), np.asarray(lon_b, float)
    dlon = wrap_lon(lon_b - lon_a)
    seg, fence = candidates_box(fs, np.minimum(lat_a, lat_b), np.maximum(lat_a, lat_b),
                                lon_a + dlon / 2, np.abs(dlon) / 2 + 1e-7)
    if len(seg) == 0:
        return seg, fence
    par = fs.frame[fence]
    ea, na = east_north(par, ecef(lat_a[seg], lon_a[seg]).reshape(-1, 3))
    eb, nb = east_north(par, ecef(lat_b[seg], lon_b[seg]).reshape(-1, 3))
    hit = segment_hits(fs, fence, ea, na, eb, nb)
    return seg[hit], fence[hit]
