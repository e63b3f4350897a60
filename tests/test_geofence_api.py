"""Geofence and pet-fence API on the real app and PostgreSQL: CRUD, customer scoping, refused input."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from storage import devices
from tests.access_data import seed_fix
from tests.geofence_tracks import square
from tests.helpers import add_account, count_rows, login, make_app

LAT0, LON0 = 45.4642, 9.19


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
    for name in ("alice", "bob"):
        await add_account(db, name)               # customer id = the name, the devices' owner
    await add_account(db, "olga", role="operator")
    app = make_app(db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as client:
        yield client


@pytest.fixture
async def auth(http) -> dict[str, dict]:
    """The Authorization header of alice, bob (customers) and olga (operator)."""
    return {name: await login(http, name) for name in ("alice", "bob", "olga")}


async def test_geofence_crud_round_trips_geojson(http, auth, db):
    ztl = polygon(square(LAT0, LON0, 1000), square(LAT0, LON0, 300)[::-1], name="ZTL",
                  anti_flap={"hysteresis_m": 40})
    made = await http.post("/v1/geofences", json=ztl, headers=auth["alice"])
    assert made.status_code == 201, made.text
    fence = made.json()
    assert fence["type"] == "Feature" and fence["geometry"] == ztl["geometry"]
    props = fence["properties"]
    assert props["name"] == "ZTL" and props["scope"] == "customer" and props["owner"] == "alice"
    assert props["anti_flap"] == {"enabled": True, "hysteresis_m": 40.0, "min_fixes": 3, "min_dwell_ms": 0,
                                  "max_accuracy_m": 200.0}
    one = await http.post("/v1/geofences", json=circle(LON0, LAT0, 150.0, name="home", vehicle_id="car-a2"),
                          headers=auth["alice"])
    assert one.status_code == 201 and one.json()["properties"]["vehicle_id"] == "car-a2"
    assert one.json()["properties"]["radius_m"] == 150.0

    listed = (await http.get("/v1/geofences", headers=auth["alice"])).json()
    assert listed["type"] == "FeatureCollection" and [f["id"] for f in listed["features"]] == [fence["id"], one.json()["id"]]
    assert (await http.get("/v1/geofences", headers=auth["bob"])).json()["features"] == []
    assert len((await http.get("/v1/geofences", headers=auth["olga"])).json()["features"]) == 2     # operator

    moved = circle(LON0, LAT0 + 0.01, 300.0, name="home 2")
    put = await http.put(f"/v1/geofences/{one.json()['id']}", json=moved, headers=auth["alice"])
    assert put.status_code == 200 and put.json()["properties"]["radius_m"] == 300.0
    assert put.json()["properties"]["scope"] == "customer" and put.json()["properties"]["name"] == "home 2"

    # Another customer's fence or car is "not found", not "forbidden".
    assert (await http.get(f"/v1/geofences/{fence['id']}", headers=auth["bob"])).status_code == 404
    assert (await http.delete(f"/v1/geofences/{fence['id']}", headers=auth["bob"])).status_code == 404
    stolen = await http.post("/v1/geofences", json=circle(LON0, LAT0, 100.0, vehicle_id="car-b1"), headers=auth["alice"])
    assert stolen.status_code == 404 and stolen.headers["content-type"] == "application/problem+json"

    assert (await http.delete(f"/v1/geofences/{fence['id']}", headers=auth["alice"])).status_code == 204
    assert (await http.get(f"/v1/geofences/{fence['id']}", headers=auth["alice"])).status_code == 404
    assert [f["id"] for f in (await http.get("/v1/geofences", headers=auth["alice"])).json()["features"]] == [one.json()["id"]]
    async with db.connection() as conn:   # soft delete: the row stays for past events
        cur = await conn.execute("SELECT count(*) FILTER (WHERE deleted_at IS NOT NULL), count(*) FROM fences")
        assert await cur.fetchone() == (1, 2)


async def test_operator_scope_needs_an_owner(http, auth):
    refused = await http.post("/v1/geofences", json=circle(LON0, LAT0, 100.0), headers=auth["olga"])
    assert refused.status_code == 422 and refused.json()["reason"] == "missing_owner"
    made = await http.post("/v1/geofences", json=circle(LON0, LAT0, 100.0, owner="bob"), headers=auth["olga"])
    assert made.status_code == 201 and made.json()["properties"]["owner"] == "bob"
    by_car = await http.post("/v1/geofences", json=circle(LON0, LAT0, 100.0, vehicle_id="car-a1"),
                             headers=auth["olga"])
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
async def test_degenerate_input_is_a_422_with_the_core_reason_and_nothing_stored(http, auth, db, body, reason):
    import json
    answer = await http.post("/v1/geofences", content=json.dumps(body), headers={**auth["alice"], "content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["reason"] == reason
    assert await count_rows(db, "fences") == 0


async def test_update_with_degenerate_input_keeps_the_old_fence(http, auth):
    made = (await http.post("/v1/geofences", json=polygon(square(LAT0, LON0, 500), name="a"), headers=auth["alice"])).json()
    bad = await http.put(f"/v1/geofences/{made['id']}", json=polygon(BOWTIE), headers=auth["alice"])
    assert bad.status_code == 422 and bad.json()["reason"] == "invalid_geometry"
    assert (await http.get(f"/v1/geofences/{made['id']}", headers=auth["alice"])).json()["geometry"] == made["geometry"]


async def test_fences_at_70_degrees_across_the_antimeridian_and_with_holes_are_accepted(http, auth):
    near_pole = await http.post("/v1/geofences", json=circle(18.95, 69.65, 500.0, name="Tromsø"), headers=auth["alice"])
    dateline = polygon([[179.9, -16.6], [-179.9, -16.6], [-179.9, -16.4], [179.9, -16.4], [179.9, -16.6]],
                       name="Taveuni")
    across = await http.post("/v1/geofences", json=dateline, headers=auth["alice"])
    holed = await http.post("/v1/geofences", json=polygon(square(69.65, 18.95, 2000), square(69.65, 18.95, 500)[::-1]),
                            headers=auth["alice"])
    assert [r.status_code for r in (near_pole, across, holed)] == [201, 201, 201]
    assert across.json()["geometry"]["coordinates"] == dateline["geometry"]["coordinates"]
    assert len(holed.json()["geometry"]["coordinates"]) == 2


async def test_pet_fences_at_most_five_named_circles(http, auth, db):
    for i in range(5):
        made = await http.post("/v1/pets/pet-a/fences", json=circle(LON0 + 0.01 * i, LAT0, 200.0, name=f"zone {i}"),
                               headers=auth["alice"])
        assert made.status_code == 201, made.text
        assert made.json()["properties"]["pet_id"] == "pet-a" and made.json()["properties"]["scope"] == "pet"
    sixth = await http.post("/v1/pets/pet-a/fences", json=circle(LON0, LAT0, 200.0, name="six"), headers=auth["alice"])
    assert sixth.status_code == 422 and sixth.headers["content-type"] == "application/problem+json"
    assert sixth.json()["reason"] == "too_many_fences"
    assert await count_rows(db, "fences") == 5
    listed = (await http.get("/v1/pets/pet-a/fences", headers=auth["alice"])).json()["features"]
    assert [f["properties"]["name"] for f in listed] == [f"zone {i}" for i in range(5)]
    # Pet fences are not car geofences, and another customer does not see the pet.
    assert (await http.get("/v1/geofences", headers=auth["alice"])).json()["features"] == []
    assert (await http.get("/v1/pets/pet-a/fences", headers=auth["bob"])).status_code == 404
    assert (await http.get(f"/v1/geofences/{listed[0]['id']}", headers=auth["alice"])).status_code == 404

    gone = await http.delete(f"/v1/pets/pet-a/fences/{listed[0]['id']}", headers=auth["alice"])
    assert gone.status_code == 204
    again = await http.post("/v1/pets/pet-a/fences", json=circle(LON0, LAT0, 200.0, name="six"), headers=auth["alice"])
    assert again.status_code == 201
    renamed = await http.put(f"/v1/pets/pet-a/fences/{listed[1]['id']}", json=circle(LON0, LAT0, 60.0, name="yard"),
                             headers=auth["alice"])
    assert renamed.status_code == 200 and renamed.json()["properties"]["radius_m"] == 60.0


@pytest.mark.parametrize("body, reason", [
    (circle(LON0, LAT0, 10.0, name="tiny"), "radius_out_of_range"),
    (circle(LON0, LAT0, 60_000.0, name="region"), "radius_out_of_range"),
    (circle(LON0, LAT0, 0.0, name="zero"), "radius_out_of_range"),
    (circle(LON0, LAT0, 100.0, name="  "), "missing_name"),
    ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(LAT0, LON0, 100)]},
      "properties": {"name": "p", "radius_m": 100.0}}, "invalid_geometry"),
])
async def test_pet_fence_refusals(http, auth, db, body, reason):
    answer = await http.post("/v1/pets/pet-a/fences", json=body, headers=auth["alice"])
    assert answer.status_code == 422 and answer.json()["reason"] == reason
    assert await count_rows(db, "fences") == 0


async def test_pet_position_and_unknown_pet(http, auth, db):
    assert (await http.get("/v1/pets/pet-a/position", headers=auth["alice"])).status_code == 404   # no fix yet
    assert (await http.get("/v1/pets/nobody/position", headers=auth["olga"])).status_code == 404
    assert (await http.get("/v1/pets/car-a1/position", headers=auth["olga"])).status_code == 404    # not a pet
    async with db.connection() as conn:
        await conn.execute("INSERT INTO device_last_fix (device_id, ts, lat, lon, accuracy_m, received_at)"
                           " SELECT id, '2026-01-01T10:00:00Z', 45.5, 9.2, 8.0, now() FROM devices"
                           " WHERE device_id = 'pet-a'")
    pos = (await http.get("/v1/pets/pet-a/position", headers=auth["alice"])).json()
    assert (pos["pet_id"], pos["lat"], pos["lon"], pos["accuracy_m"]) == ("pet-a", 45.5, 9.2, 8.0)
    assert (await http.get("/v1/pets/pet-a/position", headers=auth["bob"])).status_code == 404


async def test_track_stream_takes_the_token_from_the_query_only_there(http, auth, db, monkeypatch):
    """EventSource cannot send headers: the SSE route also reads ?access_token=; no other route does."""
    from api import pets
    monkeypatch.setattr(pets, "STREAM_MAX_S", 0.3)       # a finite stream: the ASGI transport reads it whole
    monkeypatch.setattr(pets, "STREAM_POLL_S", 0.05)
    token = auth["alice"]["Authorization"].removeprefix("Bearer ")
    pet = (await devices.lookup(db, ["pet-a"]))["pet-a"]
    await seed_fix(db, pet.id, dt.datetime(2026, 1, 1, 10, tzinfo=dt.timezone.utc), 45.5, 9.2)
    stream = await http.get("/v1/pets/pet-a/track/stream", params={"access_token": token, "last_event_id": "0"})
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert stream.text.startswith(": tracking\n\nid: 1767261600000\nevent: fix\ndata: ")
    by_header = await http.get("/v1/pets/pet-a/track/stream", headers=auth["alice"])
    assert by_header.status_code == 200 and by_header.text == ": tracking\n\n"      # nothing newer than the last fix
    assert (await http.get("/v1/pets/pet-a/track/stream", params={"access_token": "x.y.z"})).status_code == 401
    bob = auth["bob"]["Authorization"].removeprefix("Bearer ")
    assert (await http.get("/v1/pets/pet-a/track/stream", params={"access_token": bob})).status_code == 404
    anonymous = await http.get("/v1/pets/pet-a/track/stream")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == 'Bearer realm="vigil"'
    elsewhere = await http.get("/v1/pets/pet-a/position", params={"access_token": token})
    assert elsewhere.status_code == 401
