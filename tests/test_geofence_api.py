"""Geofence and pet-fence API on the real app and PostgreSQL: CRUD, customer scoping, refused input."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from storage import devices
from tests.geofence_tracks import square
from tests.helpers import count_rows
from vigil.metrics import Metrics

LAT0, LON0 = 45.4642, 9.19
ALICE, BOB = {"X-Vigil-Customer": "alice"}, {"X-Vigil-Customer": "bob"}


def polygon(*rings, **props) -> dict:
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": list(rings)}, "properties": props}


def circle(lon, lat, radius_m, **props) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"radius_m": radius_m, **props}}


@pytest.fixture
async def http(db):
    await devices.provision(db, ["car-a1", "car-a2"], kind="car", owner="alice")
    await devices.provision(db, ["car-b1"], kind="car", owner="bob")
    await devices.provision(db, ["pet-a"], kind="pet", owner="alice")
    app = create_app(db=db, metrics=Metrics())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as client:
        yield client


async def test_geofence_crud_round_trips_geojson(http, db):
    ztl = polygon(square(LAT0, LON0, 1000), square(LAT0, LON0, 300)[::-1], name="ZTL",
                  anti_flap={"hysteresis_m": 40})
    made = await http.post("/v1/geofences", json=ztl, headers=ALICE)
    assert made.status_code == 201, made.text
    fence = made.json()
    assert fence["type"] == "Feature" and fence["geometry"] == ztl["geometry"]
    props = fence["properties"]
    assert props["name"] == "ZTL" and props["scope"] == "customer" and props["owner"] == "alice"
    assert props["anti_flap"] == {"enabled": True, "hysteresis_m": 40.0, "min_fixes": 3, "min_dwell_ms": 0,
                                  "max_accuracy_m": 200.0}
    one = await http.post("/v1/geofences", json=circle(LON0, LAT0, 150.0, name="home", vehicle_id="car-a2"),
                          headers=ALICE)
    assert one.status_code == 201 and one.json()["properties"]["vehicle_id"] == "car-a2"
    assert one.json()["properties"]["radius_m"] == 150.0

    listed = (await http.get("/v1/geofences", headers=ALICE)).json()
    assert listed["type"] == "FeatureCollection" and [f["id"] for f in listed["features"]] == [fence["id"], one.json()["id"]]
    assert (await http.get("/v1/geofences", headers=BOB)).json()["features"] == []
    assert len((await http.get("/v1/geofences")).json()["features"]) == 2          # operator scope

    moved = circle(LON0, LAT0 + 0.01, 300.0, name="home 2")
    put = await http.put(f"/v1/geofences/{one.json()['id']}", json=moved, headers=ALICE)
    assert put.status_code == 200 and put.json()["properties"]["radius_m"] == 300.0
    assert put.json()["properties"]["scope"] == "customer" and put.json()["properties"]["name"] == "home 2"

    # Another customer's fence or car is "not found", not "forbidden".
    assert (await http.get(f"/v1/geofences/{fence['id']}", headers=BOB)).status_code == 404
    assert (await http.delete(f"/v1/geofences/{fence['id']}", headers=BOB)).status_code == 404
    stolen = await http.post("/v1/geofences", json=circle(LON0, LAT0, 100.0, vehicle_id="car-b1"), headers=ALICE)
    assert stolen.status_code == 404 and stolen.headers["content-type"] == "application/problem+json"

    assert (await http.delete(f"/v1/geofences/{fence['id']}", headers=ALICE)).status_code == 204
    assert (await http.get(f"/v1/geofences/{fence['id']}", headers=ALICE)).status_code == 404
    assert [f["id"] for f in (await http.get("/v1/geofences", headers=ALICE)).json()["features"]] == [one.json()["id"]]
    async with db.connection() as conn:   # soft delete: the row stays for past events
        cur = await conn.execute("SELECT count(*) FILTER (WHERE deleted_at IS NOT NULL), count(*) FROM fences")
        assert await cur.fetchone() == (1, 2)


async def test_operator_scope_needs_an_owner(http):
    refused = await http.post("/v1/geofences", json=circle(LON0, LAT0, 100.0))
    assert refused.status_code == 422 and refused.json()["reason"] == "missing_owner"
    made = await http.post("/v1/geofences", json=circle(LON0, LAT0, 100.0, owner="bob"))
    assert made.status_code == 201 and made.json()["properties"]["owner"] == "bob"
    by_car = await http.post("/v1/geofences", json=circle(LON0, LAT0, 100.0, vehicle_id="car-a1"))
    assert by_car.status_code == 201 and by_car.json()["properties"]["owner"] == "alice"


BOWTIE = [[9.18, 45.46], [9.2, 45.475], [9.2, 45.46], [9.18, 45.475], [9.18, 45.46]]
OPEN_RING = [[9.18, 45.46], [9.2, 45.46], [9.2, 45.475], [9.18, 45.475]]


@pytest.mark.parametrize("body, reason", [
    (polygon(BOWTIE), "invalid_geometry"),                                    # self-intersecting
    (polygon(OPEN_RING), "invalid_geometry"),                                 # unclosed ring
    (polygon([[9.18, 45.46], [9.2, 45.46], [9.18, 45.46]]), "invalid_geometry"),  # too few positions
    (polygon([[9.18, 95.0], [9.2, 95.0], [9.2, 95.1], [9.18, 95.0]]), "invalid_geometry"),  # latitude > 90
    (polygon([[9.18, float("nan")], [9.2, 45.46], [9.2, 45.475], [9.18, float("nan")]]), "invalid_geometry"),
    (circle(LON0, LAT0, 0.0), "radius_out_of_range"),                         # zero radius
    (circle(LON0, LAT0, -5.0), "radius_out_of_range"),
    (circle(float("nan"), LAT0, 100.0), "invalid_geometry"),                  # NaN centre
    (circle(LON0, 91.0, 100.0), "invalid_geometry"),                          # latitude beyond 90
    (circle(LON0, LAT0, float("nan")), "radius_out_of_range"),
    ({"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}, "invalid_geometry"),
    (circle(LON0, LAT0, 100.0, anti_flap={"min_fixes": 0}), "invalid_anti_flap"),
])
async def test_degenerate_input_is_a_422_with_the_core_reason_and_nothing_stored(http, db, body, reason):
    import json
    answer = await http.post("/v1/geofences", content=json.dumps(body), headers={**ALICE, "content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["reason"] == reason
    assert await count_rows(db, "fences") == 0


async def test_update_with_degenerate_input_keeps_the_old_fence(http):
    made = (await http.post("/v1/geofences", json=polygon(square(LAT0, LON0, 500), name="a"), headers=ALICE)).json()
    bad = await http.put(f"/v1/geofences/{made['id']}", json=polygon(BOWTIE), headers=ALICE)
    assert bad.status_code == 422 and bad.json()["reason"] == "invalid_geometry"
    assert (await http.get(f"/v1/geofences/{made['id']}", headers=ALICE)).json()["geometry"] == made["geometry"]


async def test_fences_at_70_degrees_across_the_antimeridian_and_with_holes_are_accepted(http):
    near_pole = await http.post("/v1/geofences", json=circle(18.95, 69.65, 500.0, name="Tromsø"), headers=ALICE)
    dateline = polygon([[179.9, -16.6], [-179.9, -16.6], [-179.9, -16.4], [179.9, -16.4], [179.9, -16.6]],
                       name="Taveuni")
    across = await http.post("/v1/geofences", json=dateline, headers=ALICE)
    holed = await http.post("/v1/geofences", json=polygon(square(69.65, 18.95, 2000), square(69.65, 18.95, 500)[::-1]),
                            headers=ALICE)
    assert [r.status_code for r in (near_pole, across, holed)] == [201, 201, 201]
    assert across.json()["geometry"]["coordinates"] == dateline["geometry"]["coordinates"]
    assert len(holed.json()["geometry"]["coordinates"]) == 2


async def test_pet_fences_at_most_five_named_circles(http, db):
    for i in range(5):
        made = await http.post("/v1/pets/pet-a/fences", json=circle(LON0 + 0.01 * i, LAT0, 200.0, name=f"zone {i}"),
                               headers=ALICE)
        assert made.status_code == 201, made.text
        assert made.json()["properties"]["pet_id"] == "pet-a" and made.json()["properties"]["scope"] == "pet"
    sixth = await http.post("/v1/pets/pet-a/fences", json=circle(LON0, LAT0, 200.0, name="six"), headers=ALICE)
    assert sixth.status_code == 422 and sixth.headers["content-type"] == "application/problem+json"
    assert sixth.json()["reason"] == "too_many_fences"
    assert await count_rows(db, "fences") == 5
    listed = (await http.get("/v1/pets/pet-a/fences", headers=ALICE)).json()["features"]
    assert [f["properties"]["name"] for f in listed] == [f"zone {i}" for i in range(5)]
    # Pet fences are not car geofences, and another customer does not see the pet.
    assert (await http.get("/v1/geofences", headers=ALICE)).json()["features"] == []
    assert (await http.get("/v1/pets/pet-a/fences", headers=BOB)).status_code == 404
    assert (await http.get(f"/v1/geofences/{listed[0]['id']}", headers=ALICE)).status_code == 404

    gone = await http.delete(f"/v1/pets/pet-a/fences/{listed[0]['id']}", headers=ALICE)
    assert gone.status_code == 204
    again = await http.post("/v1/pets/pet-a/fences", json=circle(LON0, LAT0, 200.0, name="six"), headers=ALICE)
    assert again.status_code == 201
    renamed = await http.put(f"/v1/pets/pet-a/fences/{listed[1]['id']}", json=circle(LON0, LAT0, 60.0, name="yard"),
                             headers=ALICE)
    assert renamed.status_code == 200 and renamed.json()["properties"]["radius_m"] == 60.0


@pytest.mark.parametrize("body, reason", [
    (circle(LON0, LAT0, 10.0, name="tiny"), "radius_out_of_range"),
    (circle(LON0, LAT0, 60_000.0, name="region"), "radius_out_of_range"),
    (circle(LON0, LAT0, 0.0, name="zero"), "radius_out_of_range"),
    (circle(LON0, LAT0, 100.0, name="  "), "missing_name"),
    ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(LAT0, LON0, 100)]},
      "properties": {"name": "p", "radius_m": 100.0}}, "invalid_geometry"),
])
async def test_pet_fence_refusals(http, db, body, reason):
    answer = await http.post("/v1/pets/pet-a/fences", json=body, headers=ALICE)
    assert answer.status_code == 422 and answer.json()["reason"] == reason
    assert await count_rows(db, "fences") == 0


async def test_pet_position_and_unknown_pet(http, db):
    assert (await http.get("/v1/pets/pet-a/position", headers=ALICE)).status_code == 404   # no fix yet
    assert (await http.get("/v1/pets/nobody/position")).status_code == 404
    assert (await http.get("/v1/pets/car-a1/position")).status_code == 404                 # a car is not a pet
    async with db.connection() as conn:
        await conn.execute("INSERT INTO device_last_fix (device_id, ts, lat, lon, accuracy_m, received_at)"
                           " SELECT id, '2026-01-01T10:00:00Z', 45.5, 9.2, 8.0, now() FROM devices"
                           " WHERE device_id = 'pet-a'")
    pos = (await http.get("/v1/pets/pet-a/position", headers=ALICE)).json()
    assert (pos["pet_id"], pos["lat"], pos["lon"], pos["accuracy_m"]) == ("pet-a", 45.5, 9.2, 8.0)
    assert (await http.get("/v1/pets/pet-a/position", headers=BOB)).status_code == 404
