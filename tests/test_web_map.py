"""``/v1/map/roads``: the street lines of the walking graph in a bounding box, and the pages' routes."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import numpy as np
import pytest

from api.find_service import WalkGraph
from roads import Router, bundled_pbf, load_graph
from tests.helpers import add_account, count_rows, login, make_app
from webui import roads as map_roads

ESPLANADI = {"west": 24.940, "south": 60.165, "east": 24.955, "north": 60.170}


@pytest.fixture(scope="module")
def walk_graph(tmp_path_factory) -> WalkGraph:
    graph, _ = load_graph(bundled_pbf(), "walking", cache_dir=tmp_path_factory.mktemp("roads"))
    return WalkGraph.ready(Router(graph))


@asynccontextmanager
async def client(db, walk_graph):
    """An API client logged in as a customer (the map, like every /v1 route, needs a token)."""
    if not await count_rows(db, "accounts"):
        await add_account(db, "alice")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(db, walk_graph=walk_graph)),
                                 base_url="http://vigil") as http:
        http.headers.update(await login(http, "alice"))
        yield http


async def test_roads_in_a_box_grouped_by_class(db, walk_graph):
    graph = walk_graph.router.graph
    async with client(db, walk_graph) as http:
        streets = (await http.get("/v1/map/roads", params=ESPLANADI)).json()
        with_paths = (await http.get("/v1/map/roads", params=ESPLANADI | {"paths": "true"})).json()
    assert streets["status"] == "ready" and not streets["paths_dropped"]
    assert [f["properties"]["class"] for f in streets["features"]] == ["main", "street"]
    assert [f["properties"]["class"] for f in with_paths["features"]] == ["main", "street", "path"]
    # exactly the segments with an end in the box, of a drawn class
    west, south, east, north = ESPLANADI.values()
    inside = (graph.lon >= west) & (graph.lon <= east) & (graph.lat >= south) & (graph.lat <= north)
    seg = np.flatnonzero(inside[graph.seg_u] | inside[graph.seg_v])
    groups = map_roads._GROUP_OF_CODE[graph.seg_highway[seg]]
    for feature in with_paths["features"]:
        name = feature["properties"]["class"]
        lines = feature["geometry"]["coordinates"]
        assert feature["properties"]["segments"] == len(lines) == int((groups == name).sum()) > 0
        assert all(len(line) == 2 for line in lines)
        ends = np.array(lines)  # (n, 2, 2) lon/lat
        touches = ((ends[..., 0] >= west - 1e-5) & (ends[..., 0] <= east + 1e-5)
                   & (ends[..., 1] >= south - 1e-5) & (ends[..., 1] <= north + 1e-5)).any(axis=1)
        assert touches.all()


async def test_bad_box_is_a_problem_an_empty_box_has_no_streets_and_a_loading_graph_answers_empty(db, walk_graph):
    async with client(db, walk_graph) as http:
        for bad in ({"west": 24.9}, ESPLANADI | {"south": -91}, ESPLANADI | {"east": "nan"}, ESPLANADI | {"west": "x"}):
            r = await http.get("/v1/map/roads", params=bad)
            assert r.status_code == 422, bad
            assert r.headers["content-type"].startswith("application/problem+json")
        inverted = await http.get("/v1/map/roads", params=ESPLANADI | {"west": 24.96})
        assert inverted.json()["features"] == []
        del http.headers["Authorization"]
        assert (await http.get("/v1/map/roads", params=ESPLANADI)).status_code == 401
    async with client(db, WalkGraph("loading", "loading Helsinki.osm.pbf")) as http:
        r = await http.get("/v1/map/roads", params=ESPLANADI)
    assert r.json() == {"type": "FeatureCollection", "features": [], "status": "loading",
                        "detail": "loading Helsinki.osm.pbf"}


async def test_pages_and_npm_assets_are_served(db, walk_graph):
    async with client(db, walk_graph) as http:
        for path, marker in (("/app", "/static/ui/app.js"), ("/console", "/static/ui/console.js")):
            r = await http.get(path)
            assert r.status_code == 200 and marker in r.text and "/static/leaflet/leaflet.css" in r.text
        leaflet = await http.get("/static/leaflet/leaflet-src.esm.js")
        assert leaflet.status_code == 200 and "export" in leaflet.text
        assert (await http.get("/static/ui/common.js")).headers["content-type"].startswith("text/javascript")
        assert (await http.get("/", follow_redirects=False)).headers["location"] == "/app"
