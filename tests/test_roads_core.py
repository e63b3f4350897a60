"""The road graph core on hand-made networks: tag rules, one-way streets, snapping, unreachable points."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from roads import HIGHWAY_CLASSES, Router, WaySegments, build_graph, geodesic_m
from roads import tags as road_tags

GEOD = Geod(ellps="WGS84")
LAT0, LON0 = 60.0, 25.0


def offset(north_m: float, east_m: float) -> tuple[float, float]:
    """(lat, lon) of a point ``north_m`` and ``east_m`` from (LAT0, LON0)."""
    lon, lat, _ = GEOD.fwd(LON0, LAT0, 0.0, north_m)
    lon, lat, _ = GEOD.fwd(lon, lat, 90.0, east_m)
    return lat, lon


def network(nodes: dict[int, tuple[float, float]], ways: list[tuple[list[int], dict[str, str]]]) -> WaySegments:
    """WaySegments of ``ways`` (node id lists with their tags) over ``nodes`` (id -> north m, east m)."""
    ids = np.array(sorted(nodes), dtype=np.int64)
    coords = np.array([offset(*nodes[i]) for i in ids])
    u, v, way, seg_tags = [], [], [], []
    for way_id, (refs, tags) in enumerate(ways, start=1):
        for a, b in zip(refs[:-1], refs[1:]):
            u.append(a), v.append(b), way.append(way_id), seg_tags.append(tags)
    keys = sorted({k for t in seg_tags for k in t})
    return WaySegments(ids, coords[:, 0], coords[:, 1], np.array(u), np.array(v), np.array(way),
                       {k: np.array([t.get(k, "") for t in seg_tags], dtype=object) for k in keys})


# A square: 1 (0,0) and 2 (0, 1000 m east) joined directly by the way under test; the detour 1-3-4-2 runs
# 500 m north, 1000 m east and 500 m back along residential streets.
SQUARE = {1: (0.0, 0.0), 2: (0.0, 1000.0), 3: (500.0, 0.0), 4: (500.0, 1000.0)}
DETOUR = ([1, 3, 4, 2], {"highway": "residential"})


def square_route(shortcut: dict[str, str], mode: str = "walking", reverse: bool = False):
    graph = build_graph(network(SQUARE, [DETOUR, ([1, 2], shortcut)]), mode)
    (a_lat, a_lon), (b_lat, b_lon) = offset(*SQUARE[1]), offset(*SQUARE[2])
    if reverse:
        a_lat, a_lon, b_lat, b_lon = b_lat, b_lon, a_lat, a_lon
    return graph, Router(graph).route(a_lat, a_lon, b_lat, b_lon)


CLOSED_TO_WALKERS = [
    {"highway": "motorway"}, {"highway": "motorway_link"}, {"highway": "motorway", "foot": "yes"},
    {"highway": "trunk"}, {"highway": "trunk_link"}, {"highway": "cycleway"},
    {"highway": "footway", "foot": "no"}, {"highway": "residential", "foot": "use_sidepath"},
    {"highway": "residential", "access": "private"}, {"highway": "service", "access": "private;delivery"},
    {"highway": "service", "tunnel": "yes"}, {"highway": "footway", "area": "yes"}, {"highway": "proposed"},
    {"highway": "construction"},
]
OPEN_TO_WALKERS = [
    {"highway": "footway"}, {"highway": "steps"}, {"highway": "pedestrian"}, {"highway": "primary"},
    {"highway": "cycleway", "foot": "designated"}, {"highway": "trunk", "foot": "yes"},
    {"highway": "residential", "access": "no", "foot": "yes"}, {"highway": "footway", "tunnel": "yes"},
    {"highway": "residential", "oneway": "yes"}, {"highway": "service", "access": "destination"},
]


@pytest.mark.parametrize("shortcut", CLOSED_TO_WALKERS, ids=lambda t: ",".join(f"{k}={v}" for k, v in t.items()))
def test_walkers_take_the_detour_around_closed_ways(shortcut):
    graph, route = square_route(shortcut)
    detour = sum(geodesic_m(*offset(*SQUARE[a]), *offset(*SQUARE[b])) for a, b in [(1, 3), (3, 4), (4, 2)])
    assert route.found and route.distance_m == pytest.approx(detour, abs=1e-6)
    assert set(graph.seg_way[route.segments].tolist()) == {1}
    assert HIGHWAY_CLASSES.index("motorway") not in graph.seg_highway


@pytest.mark.parametrize("shortcut", OPEN_TO_WALKERS, ids=lambda t: ",".join(f"{k}={v}" for k, v in t.items()))
def test_walkers_use_open_ways_in_both_directions(shortcut):
    direct = float(geodesic_m(*offset(*SQUARE[1]), *offset(*SQUARE[2])))
    for reverse in (False, True):
        graph, route = square_route(shortcut, reverse=reverse)
        assert route.found and route.distance_m == pytest.approx(direct, abs=1e-6)
        assert 2 in set(graph.seg_way[route.segments].tolist())  # a tunnel: the ends snap to way 1 (0 m of it)


def test_drivers_use_the_motorway_one_way_only_and_never_footways():
    direct = float(geodesic_m(*offset(*SQUARE[1]), *offset(*SQUARE[2])))
    graph, there = square_route({"highway": "motorway", "maxspeed": "120"}, mode="driving")
    _, back = square_route({"highway": "motorway", "maxspeed": "120"}, mode="driving", reverse=True)
    assert there.distance_m == pytest.approx(direct, abs=1e-6)
    assert back.distance_m > 1.9 * direct  # against the motorway's direction: the 2 km detour
    assert HIGHWAY_CLASSES[graph.seg_highway[there.segments[0]]] == "motorway"
    assert np.nanmax(graph.seg_maxspeed_kmh) == 120.0
    _, on_foot_path = square_route({"highway": "footway"}, mode="driving")
    assert on_foot_path.distance_m > 1.9 * direct
    _, against = square_route({"highway": "residential", "oneway": "-1"}, mode="driving", reverse=True)
    assert against.distance_m == pytest.approx(direct, abs=1e-6)


def test_tag_rules_directly():
    tags = {"highway": np.array(["motorway", "primary", "residential", "service", "service", "residential"]),
            "oneway": np.array(["", "yes", "-1", "no", "", ""]),
            "junction": np.array(["", "", "", "", "roundabout", ""]),
            "motor_vehicle": np.array(["", "", "", "", "", "no"]),
            "access": np.array(["", "", "", "", "", "yes"]),
            "maxspeed": np.array(["100", "50 mph", "FI:urban", "", "30", "none"], dtype=object)}
    fwd, bwd = road_tags.directions(tags, 6, "driving")
    assert fwd.tolist() == [True, True, False, True, True, True]
    assert bwd.tolist() == [False, False, True, True, False, True]
    # motor_vehicle=no is more specific than access=yes (OSM's access hierarchy)
    assert road_tags.drivable(tags, 6).tolist() == [True, True, True, True, True, False]
    speeds = road_tags.maxspeed_kmh(tags["maxspeed"], 6)
    assert speeds[[0, 4]].tolist() == [100.0, 30.0] and speeds[1] == pytest.approx(80.4672)
    assert np.isnan(speeds[[2, 3, 5]]).all()
    assert road_tags.highway_codes(np.array(["footway", "bogus", ""])).tolist() == [
        HIGHWAY_CLASSES.index("footway"), 0, 0]


def test_points_far_from_the_graph_and_disconnected_islands_have_no_route():
    islands = network({1: (0, 0), 2: (0, 300), 3: (2000, 0), 4: (2000, 300)},
                      [([1, 2], {"highway": "footway"}), ([3, 4], {"highway": "footway"})])
    router = Router(build_graph(islands, largest_component=False))
    unreachable = router.route(*offset(0, 100), *offset(2000, 100))
    assert not unreachable.found and unreachable.reason == "no_path"
    assert unreachable.snap_from_m < 0.01 and unreachable.snap_to_m < 0.01  # mm: segments are straight in degrees
    outside = router.route(*offset(0, 100), *offset(1000, 100))
    assert not outside.found and outside.reason == "outside_graph" and outside.snap_to_m > 900
    # the default build keeps the largest island only (ties: the first), so the second becomes "outside"
    assert build_graph(islands).n_segments == 1


def test_a_route_along_one_segment_and_the_split_at_the_projection():
    router = Router(build_graph(network({1: (0, 0), 2: (0, 400)}, [([1, 2], {"highway": "footway"})])))
    route = router.route(*offset(30, 100), *offset(-20, 250))
    assert route.found and route.distance_m == pytest.approx(150.0, abs=0.05)
    assert route.snap_from_m == pytest.approx(30.0, abs=0.05) and route.snap_to_m == pytest.approx(20.0, abs=0.05)
    assert route.segments.tolist() == [0] and len(route.lat) == 2


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_grids_routes_are_consistent(seed):
    """On a random 6x6 grid with missing and closed streets: the distance equals the length of the returned
    polyline, is never below the geodesic between the snapped ends, and no closed way is used."""
    rng = np.random.default_rng(seed)
    nodes = {r * 6 + c: (r * 150.0, c * 150.0) for r in range(6) for c in range(6)}
    ways = []
    for r in range(6):
        for c in range(6):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < 6 and c + dc < 6 and rng.random() < 0.85:
                    hw = "motorway" if rng.random() < 0.2 else rng.choice(["footway", "residential", "primary"])
                    ways.append(([r * 6 + c, (r + dr) * 6 + c + dc], {"highway": str(hw)}))
    graph = build_graph(network(nodes, ways))
    if graph.n_segments == 0:
        return
    router = Router(graph)
    a, b = rng.uniform(-50, 800, 2), rng.uniform(-50, 800, 2)
    route = router.route(*offset(*a), *offset(*b))
    if not route.found:
        assert route.reason in ("outside_graph", "no_path")
        return
    pieces = geodesic_m(route.lat[:-1], route.lon[:-1], route.lat[1:], route.lon[1:])
    assert route.distance_m == pytest.approx(float(np.sum(pieces)), rel=1e-6, abs=0.01)
    ends = float(geodesic_m(route.lat[0], route.lon[0], route.lat[-1], route.lon[-1]))
    assert route.distance_m >= ends - 0.01
    assert HIGHWAY_CLASSES.index("motorway") not in graph.seg_highway[route.segments]


def test_the_search_limit_bounds_the_walk():
    graph = build_graph(network(SQUARE, [DETOUR, ([1, 2], {"highway": "motorway"})]))
    router = Router(graph)
    ends = (*offset(*SQUARE[1]), *offset(*SQUARE[2]))
    assert router.route(*ends, limit_m=1500.0).reason == "no_path"  # the walk is the 2 km detour
    assert router.route(*ends, limit_m=2500.0).found


def test_the_polyline_has_no_repeated_vertices():
    router = Router(build_graph(network(SQUARE, [DETOUR])))
    route = router.route(*offset(*SQUARE[1]), *offset(*SQUARE[2]))  # both ends exactly on nodes
    assert len(route.lat) == 4 and np.unique(route.segments).tolist() == [0, 1, 2]
    same = router.route(*offset(*SQUARE[3]), *offset(*SQUARE[3]))
    assert same.distance_m == 0.0 and len(same.lat) == 2
