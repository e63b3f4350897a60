"""Shortcuts of the geofence hot path against the exact tests they stand in for: polygon rasters vs shapely
``contains_xy``, the edge-by-edge segment test vs shapely ``intersects``, the circle chord vs the arc."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofence import CircleFence, FenceSet, PolygonFence
from geofence.edges import Edges, outside_segment_hits
from geofence.frames import ecef
from geofence.membership import evidence, pair_distance
from geofence.raster import EDGE, IN, OUT, build

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def star(rng, k, r_min, r_max, cx=0.0, cy=0.0, hole=False):
    """A star-shaped polygon about (cx, cy) (m), ``k`` vertices, optionally with a hole."""
    az = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = rng.uniform(r_min, r_max, k)
    shell = np.column_stack([cx + r * np.sin(az), cy + r * np.cos(az)])
    holes = []
    if hole:
        h = 0.3 * r.min()
        t = np.linspace(0, 2 * np.pi, 7)[:-1]
        holes = [np.column_stack([cx + h * np.sin(t), cy + h * np.cos(t)])]
    return shapely.Polygon(shell, holes)


@st.composite
def shapes(draw):
    """A batch of polygons with a grown and a shrunk version each (shrunk ones may split or vanish)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 12))
    base = []
    for i in range(n):
        size = float(rng.uniform(5, 3000))
        p = star(rng, int(rng.integers(3, 20)), 0.2 * size, size, *rng.uniform(-5000, 5000, 2), hole=bool(i % 3 == 1))
        if not p.is_valid:
            p = shapely.make_valid(p).buffer(0)
            p = max(shapely.get_parts(p), key=lambda g: g.area) if p.geom_type != "Polygon" else p
        base.append(p)
    base = np.array(base, dtype=object)
    margin = float(draw(st.sampled_from([1.0, 30.0, 100.0])))
    grown = shapely.buffer(base, margin, quad_segs=8)
    shrunk = shapely.buffer(base, -margin, quad_segs=8)
    return base, grown, shrunk, rng


def probe_points(rng, polys, per=400):
    """Random points over each polygon's box (and a little beyond), plus its vertices and edge midpoints."""
    b = np.asarray(shapely.bounds(polys)).reshape(-1, 4)
    k = len(polys)
    owner = np.repeat(np.arange(k), per)
    w = np.maximum(b[:, 2] - b[:, 0], 1.0)[owner]
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)[owner]
    x = rng.uniform(b[owner, 0] - 0.1 * w, b[owner, 2] + 0.1 * w)
    y = rng.uniform(b[owner, 1] - 0.1 * h, b[owner, 3] + 0.1 * h)
    xy, vo = shapely.get_coordinates(polys, return_index=True)
    mid = (xy[1:] + xy[:-1]) / 2
    same = vo[1:] == vo[:-1]
    return (np.concatenate([owner, vo, vo[1:][same]]), np.concatenate([x, xy[:, 0], mid[same, 0]]),
            np.concatenate([y, xy[:, 1], mid[same, 1]]))


@SETTINGS
@given(shapes())
def test_raster_codes_agree_with_contains_xy(data):
    base, grown, shrunk, rng = data
    k = len(base)
    rasters = build([grown, shrunk], k, np.arange(k))
    owner, x, y = probe_points(rng, grown)
    code = rasters.lookup(owner, x, y)
    for bit, polys in enumerate((grown, shrunk)):
        c = (code >> (2 * bit)) & 3
        exact = shapely.contains_xy(polys[owner], x, y)
        sure = c != EDGE
        assert ((c[sure] == IN) == exact[sure]).all()
        assert set(np.unique(c)) <= {OUT, IN, EDGE}
    # Boundary points (vertices, edge midpoints) always fall in boundary cells.
    on = ~shapely.contains_xy(grown[owner], x, y) & (shapely.distance(shapely.points(x, y), shapely.boundary(grown[owner])) == 0)
    assert ((code[on] & 3) == EDGE).all()


def test_raster_mostly_decides_without_shapely():
    rng = np.random.default_rng(5)
    polys = np.array([star(rng, 12, 300, 1000) for _ in range(50)], dtype=object)
    rasters = build([polys], 50, np.arange(50))
    owner, x, y = probe_points(rng, polys, per=2000)
    assert ((rasters.lookup(owner, x, y) & 3) == EDGE).mean() < 0.15


@st.composite
def segments_outside(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    polys = np.array([star(rng, int(rng.integers(3, 16)), 50, 600, hole=bool(rng.random() < 0.3))
                      for _ in range(4)], dtype=object)
    polys = np.array([p if p.is_valid else shapely.convex_hull(p) for p in polys], dtype=object)
    which = rng.integers(0, 4, 300)
    a = rng.uniform(-900, 900, (300, 2))
    b = rng.uniform(-900, 900, (300, 2))
    # Degenerate cases: segments through vertices and along edges, ends snapped to the polygon's vertices'
    # coordinates shifted outward.
    xy, vo = shapely.get_coordinates(polys, return_index=True)
    pick = rng.integers(0, len(xy), 60)
    which[:60] = vo[pick]
    a[:60] = xy[pick] * 1.5
    b[:60] = -xy[pick] * 0.5 + xy[pick] * 1.0 * (rng.random((60, 1)) < 0.5)
    nxt = np.minimum(pick + 1, len(xy) - 1)
    a[60:90] = xy[pick[:30]] + (xy[pick[:30]] - xy[nxt[:30]]) * 2.0
    b[60:90] = xy[nxt[:30]] + (xy[nxt[:30]] - xy[pick[:30]]) * 2.0
    which[60:90] = vo[pick[:30]]
    return polys, which, a, b


@SETTINGS
@given(segments_outside())
def test_edge_segment_test_agrees_with_intersects(data):
    polys, which, a, b = data
    out = ~shapely.intersects_xy(polys[which], a[:, 0], a[:, 1]) & ~shapely.intersects_xy(polys[which], b[:, 0], b[:, 1])
    which, a, b = which[out], a[out], b[out]
    edges = Edges.build(polys, len(polys), np.arange(len(polys)))
    got = outside_segment_hits(edges, polys, which, a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    want = shapely.intersects(shapely.linestrings(np.stack([a, b], axis=1)), polys[which])
    assert (got == want).all()


@settings(max_examples=200, deadline=None)
@given(st.floats(-89.0, 89.0), st.floats(-180, 180), st.floats(20, 50_000), st.floats(0, 360),
       st.floats(-60, 60), st.sampled_from([0.0, 5.0, 30.0, 300.0]), st.floats(0, 1))
def test_circle_chord_shortcut_matches_arc(lat, lon, radius, az, offset_m, margin, inner_frac):
    """Points right at the thresholds (boundary ± margin, depth) get the exact arc's answer."""
    from pyproj import Geod
    fs = FenceSet.compile([CircleFence(1, lat, lon, radius)])
    geod = Geod(ellps="WGS84")
    inner = inner_frac * margin
    dists = np.array([radius + offset_m, radius + margin, radius - inner, radius + offset_m * 1e-6,
                      radius + margin + 1e-7, radius - inner - 1e-7])
    dists = np.maximum(dists, 0.0)
    lon2, lat2, _ = geod.fwd(np.full(6, lon), np.full(6, lat), np.full(6, az), dists)
    xyz = ecef(lat2, lon2).reshape(-1, 3)
    fence = np.zeros(6, np.int64)
    m, i = np.full(6, margin), np.full(6, inner)
    near, deep = evidence(fs, fence, xyz, m, i)
    d, _, _, _ = pair_distance(fs, fence, xyz)
    assert (near == (d <= m)).all()
    assert (deep == ((d <= 0) & (d <= -i))).all()


def test_polygon_evidence_matches_pair_distance():
    rng = np.random.default_rng(3)
    lat0, lon0 = 45.0, 9.0
    fences = []
    for i in range(20):
        p = star(rng, 10, 80, 400)
        xy = np.asarray(p.exterior.coords)
        ring = [[lon0 + x / 78_850.0, lat0 + 0.1 * i + y / 111_132.0] for x, y in xy]
        fences.append(PolygonFence(i + 1, {"type": "Polygon", "coordinates": [ring]}))
    fs = FenceSet.compile(fences)
    fence = np.repeat(np.arange(20), 500)
    lat = lat0 + 0.1 * fence + rng.uniform(-500, 500, len(fence)) / 111_132.0
    lon = lon0 + rng.uniform(-500, 500, len(fence)) / 78_850.0
    xyz = ecef(lat, lon).reshape(-1, 3)
    margin, inner = fs.outer0_m[fence], fs.inner0_m[fence]
    near, deep = evidence(fs, fence, xyz, margin, inner)
    d, ins, _, _ = pair_distance(fs, fence, xyz)
    # The pre-grown/shrunk shapes round corners with chords: within 2 % of the margin of the exact offset.
    clear = np.abs(d - margin) > 0.02 * margin
    assert (near[clear] == (d <= margin)[clear]).all()
    clear = np.abs(d + inner) > 0.02 * inner
    assert (deep[clear] == (ins & (d <= -inner))[clear]).all()
    assert near.any() and deep.any() and not near.all()


@st.composite
def one_fix_per_key(draw):
    """confirm() inputs where each key has at most one evidence fix (others HOLD), random key states."""
    k = draw(st.integers(1, 40))
    per = draw(st.lists(st.integers(1, 3), min_size=k, max_size=k))
    flat_key = np.repeat(np.arange(k), per)
    obs = np.full(len(flat_key), 2, np.int8)                      # HOLD
    starts = np.cumsum(per) - per
    pick = starts + np.array(draw(st.lists(st.integers(0, 2), min_size=k, max_size=k))) % np.array(per)
    obs[pick] = draw(st.lists(st.sampled_from([0, 1, 2, 3]), min_size=k, max_size=k))
    ts = 1_000 * (np.arange(len(flat_key)) + 1)
    side = np.array(draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=k, max_size=k)), np.int8)
    pending = np.array(draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=k, max_size=k)), np.int8)
    count = np.where(pending >= 0, draw(st.integers(1, 3)), 0)
    since = np.where(pending >= 0, 500, 0)
    need = np.array(draw(st.lists(st.integers(1, 3), min_size=k, max_size=k)))
    dwell = np.array(draw(st.lists(st.sampled_from([0, 0, 1_000, 10_000]), min_size=k, max_size=k)))
    at = np.flatnonzero(np.array(draw(st.lists(st.booleans(), min_size=len(obs), max_size=len(obs)))))
    return flat_key, ts, obs, side, pending, since, count, need, dwell, at


@settings(max_examples=300, deadline=None)
@given(one_fix_per_key())
def test_confirm_single_fix_path_matches_run_based(args):
    from geofence.confirm import confirm
    fast = confirm(*args)
    slow = confirm(*args, general=True)
    for name in ("side", "pending", "since", "count", "event_pos", "event_side", "event_since", "side_before"):
        assert getattr(fast, name).tolist() == getattr(slow, name).tolist(), name
