"""Find-Vehicle walking route end to end: a car's last fix in PostgreSQL, the HTTP route, the fallbacks."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest

from api.find_service import WalkGraph, find_vehicle, walking_answer
from roads import Router, bundled_pbf, geodesic_m, load_graph
from storage import FixWriter, devices
from tests.helpers import add_account, login, make_app, make_settings
from vigil.batch import FixBatch
from vigil.errors import ConfigError, NotFound, RejectedInput
from vigil.settings import Settings

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
CUSTOMER = (60.1675, 24.9445)  # Pohjoisesplanadi at Erottaja
CAR = (60.1690, 24.9500)  # parked on Aleksanterinkatu
KNOWN_LENGTH_M = 446.72  # see tests/test_roads_sample.py


@pytest.fixture(scope="module")
def walk_graph(tmp_path_factory) -> WalkGraph:
    graph, _ = load_graph(bundled_pbf(), "walking", cache_dir=tmp_path_factory.mktemp("roads"))
    return WalkGraph.ready(Router(graph))


async def park(db, device_id: str, lat: float, lon: float, age_s: float, *, kind="car", owner="alice") -> None:
    (device,) = await devices.provision(db, [device_id], kind=kind, owner=owner)
    ts = int((NOW.timestamp() - age_s) * 1000)
    one = lambda v, dtype=float: np.array([v], dtype=dtype)  # noqa: E731
    await FixWriter(db).write(FixBatch(
        device=one(device.id, np.int64), ts_ms=one(ts, np.int64), lat=one(lat), lon=one(lon), speed_kmh=one(0.0),
        heading_deg=one(90.0), accuracy_m=one(4.0), ignition=one(0, np.int8), accel_x=one(np.nan),
        accel_y=one(np.nan), accel_z=one(np.nan), seq=one(1, np.int64), received_ms=one(ts + 400, np.int64)))


async def logged_in(db, http: httpx.AsyncClient, username: str = "alice") -> httpx.AsyncClient:
    """``http`` sending the Authorization of customer ``username`` (customer id = the name), created if new."""
    try:
        await add_account(db, username)
    except RejectedInput as exc:
        assert exc.reason == "username_taken"
    http.headers.update(await login(http, username))
    return http


@contextlib.asynccontextmanager
async def client(db, walk_graph: WalkGraph, speed: float = 5.0, username: str = "alice"):
    app = make_app(db, now=lambda: NOW, walk_graph=walk_graph, walk_speed_kmh=speed)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as http:
        yield await logged_in(db, http, username)


def params(lat: float, lon: float) -> dict:
    return {"from_lat": lat, "from_lon": lon}


async def test_the_walking_route_to_the_car(db, walk_graph):
    await park(db, "car-1", *CAR, age_s=90)
    async with client(db, walk_graph) as http:
        answer = await http.get("/v1/vehicles/car-1/find", params=params(*CUSTOMER))
    assert answer.status_code == 200
    body = answer.json()
    assert body["vehicle"]["device_id"] == "car-1" and body["vehicle"]["age_s"] == 90.0
    assert (body["vehicle"]["lat"], body["vehicle"]["lon"]) == CAR
    route = body["route"]
    assert route["method"] == "osm_walking" and route["reason"] is None
    assert route["distance_m"] == pytest.approx(KNOWN_LENGTH_M, abs=0.5)
    assert route["walking_time_s"] == pytest.approx(route["distance_m"] / (5.0 / 3.6), abs=0.1)
    line = route["geometry"]
    assert line["type"] == "LineString" and len(line["coordinates"]) > 10
    lon, lat = np.array(line["coordinates"]).T  # GeoJSON order: lon, lat
    assert geodesic_m(lat[0], lon[0], *CUSTOMER) == pytest.approx(route["from_snap_m"], abs=0.1)
    assert geodesic_m(lat[-1], lon[-1], *CAR) == pytest.approx(route["to_snap_m"], abs=0.1)
    assert route["distance_m"] >= float(geodesic_m(*CUSTOMER, *CAR))


async def test_walking_speed_setting_and_the_straight_line_fallbacks(db, walk_graph):
    await park(db, "car-1", *CAR, age_s=5)
    tampere = (61.4978, 23.7610)
    async with client(db, walk_graph, speed=4.0) as http:
        slow = (await http.get("/v1/vehicles/car-1/find", params=params(*CUSTOMER))).json()["route"]
        far = (await http.get("/v1/vehicles/car-1/find", params=params(*tampere))).json()["route"]
    assert slow["walk_speed_kmh"] == 4.0 and slow["walking_time_s"] == pytest.approx(slow["distance_m"] * 0.9, abs=0.1)
    assert far["method"] == "straight_line" and far["reason"] == "outside_graph"
    assert far["distance_m"] == pytest.approx(float(geodesic_m(*tampere, *CAR)), abs=0.1)
    assert far["geometry"]["coordinates"] == [[tampere[1], tampere[0]], [CAR[1], CAR[0]]]
    assert far["from_snap_m"] is None and far["to_snap_m"] < 5
    async with client(db, WalkGraph("loading", "loading Helsinki.osm.pbf")) as http:
        loading = (await http.get("/v1/vehicles/car-1/find", params=params(*CUSTOMER))).json()["route"]
    assert loading["method"] == "straight_line" and loading["reason"] == "graph_loading"
    assert "loading" in loading["reason_detail"]
    assert loading["distance_m"] == pytest.approx(float(geodesic_m(*CUSTOMER, *CAR)), abs=0.1)


async def test_bad_parameters_and_unknown_vehicles_are_problems(db, walk_graph):
    await park(db, "car-1", *CAR, age_s=5)
    await park(db, "pet-1", *CAR, age_s=5, kind="pet")
    await devices.provision(db, ["car-silent"], kind="car", owner="alice")
    async with client(db, walk_graph) as http:
        for bad in ({"from_lat": 91, "from_lon": 24.9}, {"from_lat": 60.1, "from_lon": -181},
                    {"from_lat": "nan", "from_lon": 24.9}, {"from_lat": 60.1, "from_lon": "inf"},
                    {"from_lat": 60.1}, {"from_lat": "north", "from_lon": 24.9}):
            answer = await http.get("/v1/vehicles/car-1/find", params=bad)
            assert answer.status_code == 422, bad
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"].endswith("/invalid-request")
        for missing in ("car-404", "pet-1", "car-silent"):
            answer = await http.get(f"/v1/vehicles/{missing}/find", params=params(*CUSTOMER))
            assert answer.status_code == 404, missing
            assert answer.json()["type"].endswith("/not-found")
        spec = (await http.get("/openapi.json")).json()
        del http.headers["Authorization"]
        assert (await http.get("/v1/vehicles/car-1/find", params=params(*CUSTOMER))).status_code == 401
    assert "/v1/vehicles/{vehicle_id}/find" in spec["paths"]
    # Another customer's car is not found, in the same words as one that does not exist.
    async with client(db, walk_graph, username="bob") as http:
        theirs = await http.get("/v1/vehicles/car-1/find", params=params(*CUSTOMER))
        nobody = await http.get("/v1/vehicles/car-2/find", params=params(*CUSTOMER))
    assert theirs.status_code == nobody.status_code == 404
    assert theirs.json()["detail"] == nobody.json()["detail"].replace("car-2", "car-1")


async def test_the_service_scopes_to_the_owner(db, walk_graph):
    await park(db, "car-1", *CAR, age_s=5, owner="alice")
    kwargs = dict(db=db, graph=walk_graph, vehicle_id="car-1", from_lat=CUSTOMER[0], from_lon=CUSTOMER[1],
                  speed_kmh=5.0, now=NOW)
    with pytest.raises(NotFound):
        await find_vehicle(**kwargs, owner="bob")
    mine = await find_vehicle(**kwargs, owner="alice")
    anyone = await find_vehicle(**kwargs)
    assert mine.walk == anyone.walk and mine.walk.method == "osm_walking" and mine.age_s == 5.0


async def test_vigil_up_loads_the_graph_in_the_background(database_url, runtime_factory):
    settings = make_settings("mqtt://127.0.0.1:1", database_url)
    runtime = await runtime_factory(settings, parts=frozenset({"api"}))
    for _ in range(600):
        if runtime.walk_graph.status != "loading":
            break
        await asyncio.sleep(0.05)
    assert runtime.walk_graph.status == "ready", runtime.walk_graph.detail
    assert list(Path(settings.data_dir, "roads").glob("Helsinki.osm-walking-*.npz")) or \
        "memory" in runtime.walk_graph.detail  # built earlier in this process: shared, not re-read
    await park(runtime.db, "car-1", *CAR, age_s=0)
    async with httpx.AsyncClient(base_url=runtime.http_url) as http:
        await logged_in(runtime.db, http)
        body = (await http.get("/v1/vehicles/car-1/find", params=params(*CUSTOMER))).json()
    assert body["route"]["method"] == "osm_walking"
    assert body["route"]["distance_m"] == pytest.approx(KNOWN_LENGTH_M, abs=0.5)


async def test_vigil_up_without_a_graph_answers_straight_lines(database_url, runtime_factory):
    settings = make_settings("mqtt://127.0.0.1:1", database_url)
    runtime = await runtime_factory(replace(settings, osm_pbf=Path("off")), parts=frozenset({"api"}))
    await park(runtime.db, "car-1", *CAR, age_s=0)
    async with httpx.AsyncClient(base_url=runtime.http_url) as http:
        await logged_in(runtime.db, http)
        body = (await http.get("/v1/vehicles/car-1/find", params=params(*CUSTOMER))).json()
    assert body["route"]["method"] == "straight_line" and body["route"]["reason"] == "graph_unavailable"


async def test_settings_and_a_missing_pbf(tmp_path):
    settings = Settings.from_env({"VIGIL_WALK_SPEED_KMH": "4.5", "VIGIL_OSM_PBF": str(tmp_path / "none.osm.pbf")})
    assert settings.walk_speed_kmh == 4.5 and settings.osm_pbf == tmp_path / "none.osm.pbf"
    for bad in ("0", "nan", "fast"):
        with pytest.raises(ConfigError):
            Settings.from_env({"VIGIL_WALK_SPEED_KMH": bad})
    holder = WalkGraph()
    await holder.load(settings.osm_pbf, cache_dir=tmp_path)
    assert holder.status == "failed" and "not found" in holder.detail
    answer = walking_answer(graph=holder, from_lat=CUSTOMER[0], from_lon=CUSTOMER[1], to_lat=CAR[0], to_lon=CAR[1],
                            speed_kmh=5.0)
    assert answer.method == "straight_line" and answer.reason == "graph_unavailable"
    assert "not found" in answer.reason_detail
