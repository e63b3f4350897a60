"""Every customer route is scoped to the caller's own devices: customer A gets 404 (problem+json) for
customer B's car, pet, home kit, trip, geofence, pet fence, geofence events, certificate and alarm,
exactly as for a missing one, and changes nothing of B's; operators see everything; operator routes
refuse customers (403); no token or a bad one is 401 with a Bearer challenge."""

from __future__ import annotations

import itertools
import json

import httpx
import pytest

from api import pets
from tests.access_data import certificate_context, seed_two_customers
from tests.helpers import login, make_app

CIRCLE = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [24.94, 60.17]},
          "properties": {"name": "renamed", "radius_m": 250.0}}
FINE = {"kind": "fine_assist", "at": "2026-05-04T08:55:00Z"}
PROFILE = {"display_name": "A. Customer", "phone": "+358 40 123 4567", "language": "fi",
           "address": {"street": "Unioninkatu 29", "postal_code": "00170", "city": "Helsinki", "country": "FI"},
           "contacts": [{"name": "Neighbour", "phone": "+358 50 765 4321", "relation": "neighbour"}]}

#: Every customer route naming an object, as (method, path template[, JSON body]). ``{car}``, ``{trip}``,
#: ``{pet}``, ``{home}``, ``{fence}`` (a car geofence), ``{pet_fence}``, ``{cert}`` are filled with the
#: other customer's ids (in the path, the query and the body).
OBJECT_ROUTES = [
    ("GET", "/v1/vehicles/{car}/position"),
    ("GET", "/v1/vehicles/{car}/trips"),
    ("GET", "/v1/vehicles/{car}/driving-style"),
    ("GET", "/v1/vehicles/{car}/find?from_lat=60.1675&from_lon=24.9445"),
    ("GET", "/v1/trips/{trip}"),
    ("GET", "/v1/devices/{car}"),
    ("GET", "/v1/devices/{pet}"),
    ("GET", "/v1/devices/{home}"),
    ("POST", "/v1/devices/{home}/activate"),
    ("GET", "/v1/geofences/{fence}"),
    ("PUT", "/v1/geofences/{fence}", CIRCLE),
    ("DELETE", "/v1/geofences/{fence}"),
    ("POST", "/v1/geofences", {**CIRCLE, "properties": {**CIRCLE["properties"], "vehicle_id": "{car}"}}),
    ("GET", "/v1/geofence-events?device={car}"),
    ("GET", "/v1/geofence-events?fence={fence}"),
    ("GET", "/v1/pets/{pet}/fences"),
    ("POST", "/v1/pets/{pet}/fences", CIRCLE),
    ("GET", "/v1/pets/{pet}/fences/{pet_fence}"),
    ("PUT", "/v1/pets/{pet}/fences/{pet_fence}", CIRCLE),
    ("DELETE", "/v1/pets/{pet}/fences/{pet_fence}"),
    ("GET", "/v1/pets/{pet}/position"),
    ("GET", "/v1/pets/{pet}/track/stream"),
    ("GET", "/v1/vehicles/{car}/certificates"),
    ("POST", "/v1/vehicles/{car}/certificates", FINE),
    ("GET", "/v1/certificates/{cert}"),
    ("GET", "/v1/certificates/{cert}/pdf"),
    ("GET", "/v1/alarms/{alarm}"),
]
#: Customer-only routes naming an object (an operator gets 403): the same 404 test, no operator test.
CUSTOMER_ONLY_ROUTES = [
    ("POST", "/v1/alarms/{alarm}/feedback", {"feedback": "it_was_me"}),
]
#: Ids that name nothing, for the "same answer as a missing object" comparison.
MISSING = {"car": "car-zz", "pet": "pet-zz", "home": "home-zz", "trip": 999_999, "fence": 999_998,
           "pet_fence": 999_997, "cert": "crt_" + "0" * 24, "alarm": 999_996}


#: Customer routes naming an object whose 404-for-another-customer test lives in another file.
COVERED_ELSEWHERE = {
    ("POST", "/v1/account/confirmations/{challenge_id}"):
        "tests/test_accounts_api.py::test_email_change_goes_to_the_new_address_and_only_its_account_confirms",
}
_PARAMS = {"{car}": ("{vehicle_id}", "{device_id}"), "{trip}": ("{trip_id}",), "{pet}": ("{device_id}", "{pet_id}"),
           "{home}": ("{device_id}",), "{fence}": ("{fence_id}",), "{pet_fence}": ("{fence_id}",),
           "{cert}": ("{cert_id}",), "{alarm}": ("{alarm_id}",)}


def test_every_customer_route_naming_an_object_has_a_404_test():
    """Every operation a customer may call (bearer security, no 403 for customers) with an id in its path
    appears in OBJECT_ROUTES or COVERED_ELSEWHERE: a new route cannot skip the other-customer test."""
    spec = make_app(None).openapi()
    customer_object_routes = {(method.upper(), path) for path, ops in spec["paths"].items()
                              for method, op in ops.items()
                              if "{" in path and op.get("security") and "403" not in op["responses"]}
    listed = set(COVERED_ELSEWHERE)
    for method, template, *_ in [*OBJECT_ROUTES, *CUSTOMER_ONLY_ROUTES]:
        path = template.split("?")[0]
        present = [p for p in _PARAMS if p in path]
        for names in itertools.product(*(_PARAMS[p] for p in present)):
            filled = path
            for placeholder, name in zip(present, names):
                filled = filled.replace(placeholder, name)
            listed.add((method, filled))
    assert customer_object_routes, "the document lists no customer routes"
    missing = customer_object_routes - listed
    assert not missing, f"add a 404-for-another-customer test for {sorted(missing)}"


@pytest.fixture
async def world(db, tmp_path, monkeypatch):
    # The live stream ends at once: the in-process transport reads a response whole.
    monkeypatch.setattr(pets, "STREAM_MAX_S", 0.0)
    ctx = certificate_context(tmp_path / "keys")
    ids = await seed_two_customers(db, certificates=ctx)
    app = make_app(db, certificates=ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as http:
        yield http, ids


def _fill(text: str, ids: dict) -> str:
    for key, value in ids.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def _call(http, route: tuple, ids: dict, headers: dict):
    method, path, *body = route
    content = _fill(json.dumps(body[0]), ids) if body else None
    return http.request(method, _fill(path, ids), headers={**headers, "content-type": "application/json"},
                        content=content)


#: The GET that shows what a changing route would change, where it is not the route's own path.
_WITNESS = {"/activate": "", "/feedback": ""}


def _witness(route: tuple) -> str:
    """The GET that shows what a changing route would change (the object itself, or the collection)."""
    path = route[1].split("?")[0]
    for suffix, replacement in _WITNESS.items():
        if path.endswith(suffix):
            return path.removesuffix(suffix) + replacement
    return path


def _ids(route) -> str:
    return f"{route[0]} {route[1]}"


@pytest.mark.parametrize("route", [*OBJECT_ROUTES, *CUSTOMER_ONLY_ROUTES], ids=_ids)
async def test_customer_gets_404_for_another_customers_object(world, route):
    http, ids = world
    alice, bob = await login(http, "alice"), await login(http, "bob")
    changes = route[0] != "GET"
    if changes:
        before = await http.get(_fill(_witness(route), ids["cust-b"]), headers=bob)
        assert before.status_code == 200, before.text
    own = await _call(http, route, ids["cust-a"], alice)
    assert own.status_code in (200, 201, 204), own.text
    theirs = await _call(http, route, ids["cust-b"], alice)
    missing = await _call(http, route, MISSING, alice)
    assert theirs.status_code == missing.status_code == 404, theirs.text
    assert theirs.headers["content-type"] == "application/problem+json"
    assert theirs.json()["type"] == missing.json()["type"] == "https://vigil.dev/problems/not-found"
    # The same wording as for an object that does not exist: nothing tells B's object exists.
    detail = theirs.json()["detail"]
    for key, value in sorted(ids["cust-b"].items(), key=lambda kv: -len(str(kv[1]))):
        if "{" + key + "}" in str(route):
            detail = detail.replace(str(value), str(MISSING[key]))
    assert detail == missing.json()["detail"]
    if changes:   # and nothing of B's changed
        after = await http.get(_fill(_witness(route), ids["cust-b"]), headers=bob)
        assert after.status_code == 200 and after.json() == before.json()


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=_ids)
async def test_operator_sees_every_customers_object(world, route):
    http, ids = world
    olga = await login(http, "olga")
    for owner in ("cust-a", "cust-b"):
        r = await _call(http, route, ids[owner], olga)
        assert r.status_code in (200, 201, 204), r.text


async def test_a_pet_fence_is_found_only_under_its_own_pet(world):
    http, ids = world
    alice = await login(http, "alice")
    mixed = f"/v1/pets/{ids['cust-a']['pet']}/fences/{ids['cust-b']['pet_fence']}"
    for method in ("GET", "PUT", "DELETE"):
        r = await http.request(method, mixed, headers=alice, json=CIRCLE if method == "PUT" else None)
        assert r.status_code == 404 and r.json()["detail"] == f"pet fence '{ids['cust-b']['pet_fence']}' not found"


async def test_lists_hold_only_own_devices(world):
    http, ids = world
    alice, olga = await login(http, "alice"), await login(http, "olga")
    cars = (await http.get("/v1/vehicles", headers=alice)).json()["items"]
    assert [c["device_id"] for c in cars] == ["car-a"]
    mine = (await http.get("/v1/devices", headers=alice)).json()["items"]
    assert sorted(d["device_id"] for d in mine) == ["car-a", "home-a", "pet-a"]
    assert {d["owner"] for d in mine} == {"cust-a"}
    everyone = (await http.get("/v1/devices", headers=olga)).json()["items"]
    assert len(everyone) == 6
    assert [c["device_id"] for c in (await http.get("/v1/vehicles", headers=olga)).json()["items"]] == ["car-a", "car-b"]
    pets = (await http.get("/v1/devices", params={"kind": "pet"}, headers=alice)).json()["items"]
    assert [d["device_id"] for d in pets] == ["pet-a"]


@pytest.mark.parametrize("route", [*OBJECT_ROUTES, *CUSTOMER_ONLY_ROUTES, ("GET", "/v1/vehicles"),
                                   ("GET", "/v1/devices"), ("GET", "/v1/account"), ("GET", "/v1/geofences"),
                                   ("GET", "/v1/geofence-events"), ("POST", "/v1/geofences", CIRCLE),
                                   ("GET", "/v1/alarms"), ("GET", "/v1/operator/alarms"),
                                   ("GET", "/v1/operator/alarms/stream"), ("GET", "/v1/account/profile"),
                                   ("PUT", "/v1/account/profile", PROFILE),
                                   ("GET", "/v1/operator/customers/cust-b/profile"),
                                   ("PUT", "/v1/operator/customers/cust-b/profile", PROFILE)], ids=_ids)
async def test_no_token_is_401_with_a_bearer_challenge(world, route):
    http, ids = world
    r = await _call(http, route, ids["cust-a"], {})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "https://vigil.dev/problems/missing-token"
    assert r.headers["www-authenticate"] == 'Bearer realm="vigil"'
    forged = await _call(http, route, ids["cust-a"], {"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401 and forged.json()["type"].endswith("/invalid-token")
    assert forged.headers["www-authenticate"].startswith('Bearer realm="vigil", error="invalid_token"')


async def test_a_token_signed_with_another_key_is_refused(world, db):
    http, ids = world
    other = make_app(db)  # its own random key
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://other") as o:
        foreign = await login(o, "alice")
    r = await http.get("/v1/devices/car-a", headers=foreign)
    assert r.status_code == 401 and r.json()["type"].endswith("/invalid-token")


async def test_health_and_metrics_stay_open(world):
    http, _ = world
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/metrics")).status_code == 200


async def test_operator_routes_refuse_customers(world):
    http, ids = world
    alice = await login(http, "alice")
    r = await http.post("/v1/operator/devices/car-a/status", json={"status": "suspended"}, headers=alice)
    assert r.status_code == 403 and r.json()["type"].endswith("/forbidden")
    r = await http.put("/v1/operator/devices/pet-b/owner", json={"customer_id": "cust-a"}, headers=alice)
    assert r.status_code == 403


async def test_alarm_lists_hold_only_own_alarms(world):
    http, ids = world
    alice, olga = await login(http, "alice"), await login(http, "olga")
    mine = (await http.get("/v1/alarms", headers=alice)).json()
    assert mine["customer"] == "cust-a" and [a["id"] for a in mine["alarms"]] == [ids["cust-a"]["alarm"]]
    queue = (await http.get("/v1/operator/alarms", headers=olga)).json()
    assert sorted(a["id"] for a in queue) == sorted([ids["cust-a"]["alarm"], ids["cust-b"]["alarm"]])
    # Feedback is the customer's word; the list is a customer's own (an operator has the queue).
    assert (await http.get("/v1/alarms", headers=olga)).status_code == 403
    feedback = await http.post(f"/v1/alarms/{ids['cust-a']['alarm']}/feedback", json={"feedback": "false_alarm"},
                               headers=olga)
    assert feedback.status_code == 403


async def test_every_operator_route_refuses_customers(world):
    """Every /v1/operator operation of the document answers a customer 403 (problem+json), and says so."""
    http, ids = world
    alice = await login(http, "alice")
    spec = make_app(None).openapi()
    operations = [(method.upper(), path, op) for path, ops in spec["paths"].items() if path.startswith("/v1/operator/")
                  for method, op in ops.items()]
    assert len(operations) >= 12
    for method, path, op in operations:
        assert "403" in op["responses"], (method, path)
        url = path.replace("{alarm_id}", str(ids["cust-a"]["alarm"])).replace("{device_id}", "home-a") \
            .replace("{customer}", "cust-a")
        r = await http.request(method, url, headers=alice, json={} if method in ("POST", "PUT") else None)
        assert r.status_code == 403 and r.json()["type"].endswith("/forbidden"), (method, path, r.text)


async def test_a_customer_profile_is_the_callers_own(world):
    """The profile routes take no id: a customer reads and writes only its own customer's profile, never
    another's (the operator route answers 403), and changes nothing of B's."""
    http, ids = world
    alice, bob, olga = await login(http, "alice"), await login(http, "bob"), await login(http, "olga")
    for who, name in ((alice, "Alice A"), (bob, "Bob B")):
        r = await http.put("/v1/account/profile", json={**PROFILE, "display_name": name}, headers=who)
        assert r.status_code == 200, r.text
    mine = (await http.get("/v1/account/profile", headers=alice)).json()
    assert (mine["customer_id"], mine["display_name"]) == ("cust-a", "Alice A")
    before = (await http.get("/v1/account/profile", headers=bob)).json()
    for method in ("GET", "PUT"):
        r = await http.request(method, "/v1/operator/customers/cust-b/profile", headers=alice,
                               json={**PROFILE, "display_name": "hijacked"} if method == "PUT" else None)
        assert r.status_code == 403 and r.json()["type"].endswith("/forbidden")
    assert (await http.get("/v1/operator/customers/cust-b/alarms", headers=alice)).status_code == 403
    assert (await http.get("/v1/account/profile", headers=bob)).json() == before
    # Operators read every customer's, through the operator route.
    for owner, name in (("cust-a", "Alice A"), ("cust-b", "Bob B")):
        r = await http.get(f"/v1/operator/customers/{owner}/profile", headers=olga)
        assert r.status_code == 200 and r.json()["display_name"] == name
