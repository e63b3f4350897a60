"""Every customer route is scoped to the caller's own devices: customer A gets 404 (problem+json) for
customer B's car, pet, home kit and trip, exactly as for a missing one; operators see everything;
no token or a bad one is 401 with a Bearer challenge."""

from __future__ import annotations

import httpx
import pytest

from tests.access_data import seed_two_customers
from tests.helpers import login, make_app

#: Every customer route naming an object, as (method, path template). ``{car}``, ``{trip}``, ``{device}``
#: are filled with the other customer's ids.
OBJECT_ROUTES = [
    ("GET", "/v1/vehicles/{car}/position"),
    ("GET", "/v1/vehicles/{car}/trips"),
    ("GET", "/v1/vehicles/{car}/driving-style"),
    ("GET", "/v1/trips/{trip}"),
    ("GET", "/v1/devices/{car}"),
    ("GET", "/v1/devices/{pet}"),
    ("GET", "/v1/devices/{home}"),
    ("POST", "/v1/devices/{home}/activate"),
]


#: Customer routes naming an object whose 404-for-another-customer test lives in another file.
COVERED_ELSEWHERE = {
    ("POST", "/v1/account/confirmations/{challenge_id}"):
        "tests/test_accounts_api.py::test_email_change_goes_to_the_new_address_and_only_its_account_confirms",
}
_PARAMS = {"{car}": ("{vehicle_id}", "{device_id}"), "{trip}": ("{trip_id}",), "{pet}": ("{device_id}",),
           "{home}": ("{device_id}",)}


def test_every_customer_route_naming_an_object_has_a_404_test():
    """Every operation a customer may call (bearer security, no 403 for customers) with an id in its path
    appears in OBJECT_ROUTES or COVERED_ELSEWHERE: a new route cannot skip the other-customer test."""
    spec = make_app(None).openapi()
    customer_object_routes = {(method.upper(), path) for path, ops in spec["paths"].items()
                              for method, op in ops.items()
                              if "{" in path and op.get("security") and "403" not in op["responses"]}
    listed = set(COVERED_ELSEWHERE)
    for method, template in OBJECT_ROUTES:
        for placeholder, names in _PARAMS.items():
            if placeholder in template:
                listed |= {(method, template.replace(placeholder, name)) for name in names}
    assert customer_object_routes, "the document lists no customer routes"
    missing = customer_object_routes - listed
    assert not missing, f"add a 404-for-another-customer test for {sorted(missing)}"


@pytest.fixture
async def world(db):
    ids = await seed_two_customers(db)
    app = make_app(db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as http:
        yield http, ids


def _fill(path: str, ids: dict) -> str:
    return path.format(**ids)


@pytest.mark.parametrize("method,path", OBJECT_ROUTES)
async def test_customer_gets_404_for_another_customers_object(world, method, path):
    http, ids = world
    alice = await login(http, "alice")
    own = await http.request(method, _fill(path, ids["cust-a"]), headers=alice)
    assert own.status_code == 200, own.text
    theirs = await http.request(method, _fill(path, ids["cust-b"]), headers=alice)
    missing = await http.request(method, _fill(path, {"car": "car-zz", "pet": "pet-zz", "home": "home-zz",
                                                     "trip": 999_999}), headers=alice)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.headers["content-type"] == "application/problem+json"
    assert theirs.json()["type"] == missing.json()["type"] == "https://vigil.dev/problems/not-found"
    # The same wording as for an object that does not exist: nothing tells B's object exists.
    assert theirs.json()["detail"].replace("-b", "-zz").replace(str(ids["cust-b"]["trip"]), "999999") == \
        missing.json()["detail"]


@pytest.mark.parametrize("method,path", OBJECT_ROUTES)
async def test_operator_sees_every_customers_object(world, method, path):
    http, ids = world
    olga = await login(http, "olga")
    for owner in ("cust-a", "cust-b"):
        r = await http.request(method, _fill(path, ids[owner]), headers=olga)
        assert r.status_code == 200, r.text


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


@pytest.mark.parametrize("method,path", [*OBJECT_ROUTES, ("GET", "/v1/vehicles"), ("GET", "/v1/devices"),
                                          ("GET", "/v1/account")])
async def test_no_token_is_401_with_a_bearer_challenge(world, method, path):
    http, ids = world
    url = _fill(path, ids["cust-a"])
    r = await http.request(method, url)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "https://vigil.dev/problems/missing-token"
    assert r.headers["www-authenticate"] == 'Bearer realm="vigil"'
    forged = await http.request(method, url, headers={"Authorization": "Bearer not.a.jwt"})
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
