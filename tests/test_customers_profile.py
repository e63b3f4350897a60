"""Customer profiles: validation (pure), the store against PostgreSQL, and the API round trip (customer's
own profile, operator read and write, problem+json refusals, the operator's customer history)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import alarms as alarm_routes
from customers import Contact, Profile, add_missing, get_profile, put_profile, validate
from customers.model import PHONE_PATTERN, normalise_phone
from storage import devices
from tests.access_data import T0, seed_alarm
from tests.helpers import add_account, login, make_app
from vigil.errors import NotFound, RejectedInput

AINO = Profile(customer_id="cust-a", display_name="Aino Virtanen", street="Unioninkatu 29", postal_code="00170",
               city="Helsinki", country="FI", phone="+358 40 123 4567", language="fi", lat=60.1712, lon=24.9507,
               email="aino@example.org", instructions="Key safe by the back door\nDog: friendly",
               contacts=(Contact("Mikko Virtanen", "+358 (50) 765-4321", "son", True),
                         Contact("Liisa Korhonen", "+358.44.222.3333", "neighbour")))
BODY = {"display_name": "Aino Virtanen",
        "address": {"street": "Unioninkatu 29", "postal_code": "00170", "city": "Helsinki", "country": "FI",
                    "location": {"lat": 60.1712, "lon": 24.9507}},
        "phone": "+358 40 123 4567", "email": "aino@example.org", "language": "fi", "instructions": None,
        "contacts": [{"name": "Mikko Virtanen", "phone": "+358 50 765 4321", "relation": "son", "keyholder": True},
                     {"name": "Liisa Korhonen", "phone": "+358 44 222 3333", "relation": "neighbour"}]}


# --- validation ---------------------------------------------------------------------------------------------

def test_validate_normalises_phones_to_e164():
    p = validate(AINO)
    assert p.phone == "+358401234567"
    assert [c.phone for c in p.contacts] == ["+358507654321", "+358442223333"]
    assert [c.keyholder for c in p.contacts] == [True, False]
    assert (p.street, p.lat, p.lon, p.instructions) == (AINO.street, AINO.lat, AINO.lon, AINO.instructions)


@pytest.mark.parametrize(("change", "reason"), [
    ({"phone": "040 123 4567"}, "invalid_phone"),             # no country code
    ({"phone": "+0 40 123 4567"}, "invalid_phone"),           # country codes do not start with 0
    ({"phone": "+358 40"}, "invalid_phone"),                  # too short (7-15 digits)
    ({"phone": "+1234567890123456"}, "invalid_phone"),        # 16 digits
    ({"phone": "+358 40 -- 123"}, "invalid_phone"),           # three separators in a row
    ({"contacts": (Contact("Mikko", "0507654321", "son"),)}, "invalid_phone"),
    ({"display_name": "   "}, "invalid_display_name"),
    ({"display_name": "x" * 121}, "invalid_display_name"),
    ({"display_name": "Aino\tV"}, "invalid_display_name"),
    ({"street": ""}, "invalid_street"),
    ({"city": "H" * 101}, "invalid_city"),
    ({"postal_code": "0"}, "invalid_postal_code"),
    ({"country": "fi"}, "invalid_country"),
    ({"country": "FIN"}, "invalid_country"),
    ({"language": "finnish"}, "invalid_language"),
    ({"lat": None}, "invalid_location"),
    ({"lat": 91.0}, "invalid_location"),
    ({"lon": float("nan")}, "invalid_location"),
    ({"email": "not-an-address"}, "invalid_email"),
    ({"instructions": "x" * 1001}, "invalid_instructions"),
    ({"instructions": "bell\x07"}, "invalid_instructions"),
    ({"customer_id": ""}, "invalid_customer"),
    ({"customer_id": "c" * 65}, "invalid_customer"),
    ({"contacts": (Contact("A", "+358401111111", "x"),) * 6}, "too_many_contacts"),
    ({"contacts": (Contact("A", "+358401111111", ""),)}, "invalid_contact_relation"),
    ({"contacts": (Contact(" ", "+358401111111", "son"),)}, "invalid_contact_name"),
])
def test_validate_refuses_with_a_reason(change, reason):
    with pytest.raises(RejectedInput) as err:
        validate(dataclasses.replace(AINO, **change))
    assert err.value.reason == reason


@given(st.from_regex(PHONE_PATTERN, fullmatch=True))
def test_every_number_the_schema_admits_normalises_to_7_to_15_digits(number):
    e164 = normalise_phone(number)
    assert re.fullmatch(r"\+[1-9][0-9]{6,14}", e164)
    assert e164[1:] == "".join(ch for ch in number if ch.isdigit())


# --- store ------------------------------------------------------------------------------------------------

async def test_store_round_trip_and_replace(db):
    with pytest.raises(NotFound):
        await get_profile(db, customer_id="cust-a")
    first = await put_profile(db, AINO, actor="olga", now=T0)
    assert first == dataclasses.replace(validate(AINO), created_at=T0, updated_at=T0, updated_by="olga")
    assert await get_profile(db, customer_id="cust-a") == first
    later = T0 + dt.timedelta(hours=1)
    moved = await put_profile(db, dataclasses.replace(AINO, street="Mannerheimintie 1", lat=None, lon=None,
                                                      contacts=()), actor="alice", now=later)
    assert (moved.street, moved.lat, moved.contacts, moved.created_at, moved.updated_at, moved.updated_by) == \
           ("Mannerheimintie 1", None, (), T0, later, "alice")
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM customers")
        assert (await cur.fetchone())[0] == 1


async def test_a_refused_profile_writes_nothing(db):
    with pytest.raises(RejectedInput):
        await put_profile(db, dataclasses.replace(AINO, phone="123"), actor="olga", now=T0)
    with pytest.raises(NotFound):
        await get_profile(db, customer_id="cust-a")


async def test_add_missing_keeps_edited_profiles(db):
    await put_profile(db, dataclasses.replace(AINO, display_name="Edited"), actor="alice", now=T0)
    others = [dataclasses.replace(AINO, customer_id=f"cust-{i}", display_name=f"Customer {i}") for i in range(3)]
    assert await add_missing(db, [AINO, *others], actor="demo", now=T0) == 3
    assert (await get_profile(db, customer_id="cust-a")).display_name == "Edited"
    two = await get_profile(db, customer_id="cust-2")
    assert (two.display_name, two.updated_by, two.contacts[0].phone) == ("Customer 2", "demo", "+358507654321")
    assert await add_missing(db, others, actor="demo", now=T0) == 0


# --- API --------------------------------------------------------------------------------------------------

@pytest.fixture
async def api(db):
    await add_account(db, "alice", customer_id="cust-a")
    await add_account(db, "anna", customer_id="cust-a")   # same household
    await add_account(db, "bob", customer_id="cust-b")
    await add_account(db, "olga", role="operator")
    app = make_app(db, now=lambda: T0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as http:
        yield http
    await app.state.alarm_feed.close()


async def test_customer_sets_and_reads_its_own_profile(api):
    alice, anna, bob = await login(api, "alice"), await login(api, "anna"), await login(api, "bob")
    missing = await api.get("/v1/account/profile", headers=alice)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    put = await api.put("/v1/account/profile", json=BODY, headers=alice)
    assert put.status_code == 200, put.text
    expected = {**BODY, "customer_id": "cust-a", "phone": "+358401234567",
                "contacts": [{**BODY["contacts"][0], "phone": "+358507654321"},
                             {**BODY["contacts"][1], "phone": "+358442223333", "keyholder": False}],
                "created_at": "2026-05-04T09:00:00Z", "updated_at": "2026-05-04T09:00:00Z", "updated_by": "alice"}
    assert put.json() == expected
    # Another login of the same customer sees the same profile; another customer does not.
    assert (await api.get("/v1/account/profile", headers=anna)).json() == expected
    assert (await api.get("/v1/account/profile", headers=bob)).status_code == 404


async def test_refusals_are_problem_json_with_a_reason(api):
    alice = await login(api, "alice")
    r = await api.put("/v1/account/profile", json={**BODY, "phone": "0401234567"}, headers=alice)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "https://vigil.dev/problems/invalid-request"
    assert r.json()["errors"][0]["loc"] == ["body", "phone"]
    r = await api.put("/v1/account/profile", json={**BODY, "contacts": BODY["contacts"] * 3}, headers=alice)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "contacts"]
    r = await api.put("/v1/account/profile", json={k: v for k, v in BODY.items() if k != "address"}, headers=alice)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "address"]
    assert (await api.get("/v1/account/profile", headers=alice)).status_code == 404


async def test_operator_reads_and_writes_any_profile_and_customers_may_not(api):
    alice, olga = await login(api, "alice"), await login(api, "olga")
    r = await api.put("/v1/operator/customers/cust-new/profile", json=BODY, headers=olga)
    assert r.status_code == 200 and r.json()["customer_id"] == "cust-new" and r.json()["updated_by"] == "olga"
    assert (await api.get("/v1/operator/customers/cust-new/profile", headers=olga)).json() == r.json()
    assert (await api.get("/v1/operator/customers/cust-b/profile", headers=olga)).status_code == 404
    for method in ("GET", "PUT"):
        r = await api.request(method, "/v1/operator/customers/cust-new/profile", headers=alice,
                              json=BODY if method == "PUT" else None)
        assert r.status_code == 403 and r.json()["type"].endswith("/forbidden")
    # The customer routes are for customers: an operator has no profile of its own.
    assert (await api.get("/v1/account/profile", headers=olga)).status_code == 403


async def test_operator_customer_history_holds_profile_devices_and_alarms(api, db):
    alice, olga = await login(api, "alice"), await login(api, "olga")
    (home,) = await devices.provision(db, ["home-a"], kind="home", owner="cust-a")
    await devices.provision(db, ["pet-a"], kind="pet", owner="cust-a", status="provisioned")
    alarm_id = await seed_alarm(db, home.id, "leak-1")
    assert (await api.put("/v1/account/profile", json=BODY, headers=alice)).status_code == 200
    history = (await api.get("/v1/operator/customers/cust-a/alarms", headers=olga)).json()
    assert history["customer"] == "cust-a"
    assert history["devices"] == [{"device_id": "home-a", "kind": "home", "status": "active"},
                                  {"device_id": "pet-a", "kind": "pet", "status": "provisioned"}]
    profile = history["profile"]
    assert profile["address"] == BODY["address"] and profile["phone"] == "+358401234567"
    assert [(c["name"], c["phone"], c["relation"], c["keyholder"]) for c in profile["contacts"]] == [
        ("Mikko Virtanen", "+358507654321", "son", True), ("Liisa Korhonen", "+358442223333", "neighbour", False)]
    (alarm,) = history["alarms"]
    assert alarm["id"] == alarm_id and alarm["customer_name"] == "Aino Virtanen"
    assert alarm["address"] == BODY["address"]
    # A customer known only by a profile (onboarding before the kit ships) has a history too.
    await api.put("/v1/operator/customers/cust-new/profile", json=BODY, headers=olga)
    fresh = (await api.get("/v1/operator/customers/cust-new/alarms", headers=olga)).json()
    assert (fresh["devices"], fresh["alarms"], fresh["profile"]["customer_id"]) == ([], [], "cust-new")
    assert (await api.get("/v1/operator/customers/nobody/alarms", headers=olga)).status_code == 404


async def test_queue_detail_and_stream_carry_customer_name_and_address(api, db, monkeypatch):
    # One pass over the audit rows, then the stream ends: the in-process transport reads it whole.
    monkeypatch.setattr(alarm_routes, "STREAM_MAX_S", 0.5)
    alice, olga = await login(api, "alice"), await login(api, "olga")
    (home_a,) = await devices.provision(db, ["home-a"], kind="home", owner="cust-a")
    (home_b,) = await devices.provision(db, ["home-b"], kind="home", owner="cust-b")
    assert (await api.put("/v1/account/profile", json=BODY, headers=alice)).status_code == 200
    a = await seed_alarm(db, home_a.id, "leak-a")
    b = await seed_alarm(db, home_b.id, "leak-b")   # cust-b has no profile
    queue = {x["id"]: x for x in (await api.get("/v1/operator/alarms", headers=olga)).json()}
    assert (queue[a]["customer_name"], queue[a]["address"]) == ("Aino Virtanen", BODY["address"])
    assert (queue[b]["customer_name"], queue[b]["address"]) == (None, None)
    detail = (await api.get(f"/v1/operator/alarms/{a}", headers=olga)).json()
    assert detail["address"]["street"] == "Unioninkatu 29" and detail["customer_name"] == "Aino Virtanen"
    stream = await api.get("/v1/operator/alarms/stream", params={"after": 0}, headers=olga)
    events = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: ")]
    assert {e["alarm"]["id"] for e in events} == {a, b}
    assert {(e["alarm"]["id"], e["alarm"]["customer_name"], (e["alarm"]["address"] or {}).get("street"))
            for e in events} == {(a, "Aino Virtanen", "Unioninkatu 29"), (b, None, None)}


# --- CLI --------------------------------------------------------------------------------------------------

def test_cli_creates_changes_and_shows_a_profile(database_url, mqtt_url, capsys, monkeypatch):
    from vigil import cli
    from tests.helpers import make_settings

    settings = make_settings(mqtt_url, database_url)
    monkeypatch.setenv("VIGIL_DATABASE_URL", database_url)
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    base = ["accounts", "profile", "cust-c"]
    assert cli.main([*base, "--name", "Carol C"]) == 1
    assert "a new profile needs --street, --postal-code, --city, --phone" in capsys.readouterr().err
    assert cli.main([*base, "--name", "Carol C", "--street", "Fabianinkatu 12", "--postal-code", "00100",
                     "--city", "Helsinki", "--phone", "+358 40 111 2222", "--lat", "60.1686", "--lon", "24.9502",
                     "--contact", "Dan C;+358 50 333 4444;son;key",
                     "--contact", "Eve N;+358 44 555 6666;neighbour"]) == 0
    assert "profile of customer cust-c created" in capsys.readouterr().out
    assert cli.main([*base, "--phone", "0401112222"]) == 1
    assert "invalid_phone" in capsys.readouterr().err
    assert cli.main([*base, "--contact", "Dan C;+358 50 333 4444"]) == 1
    assert cli.main([*base, "--street", "Fabianinkatu 14"]) == 0
    capsys.readouterr()
    assert cli.main(base) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {k: shown[k] for k in ("customer_id", "display_name", "phone", "language", "updated_by")} == {
        "customer_id": "cust-c", "display_name": "Carol C", "phone": "+358401112222", "language": "fi",
        "updated_by": "cli"}
    assert shown["address"] == {"street": "Fabianinkatu 14", "postal_code": "00100", "city": "Helsinki",
                                "country": "FI", "location": {"lat": 60.1686, "lon": 24.9502}}
    assert shown["contacts"] == [
        {"name": "Dan C", "phone": "+358503334444", "relation": "son", "keyholder": True},
        {"name": "Eve N", "phone": "+358445556666", "relation": "neighbour", "keyholder": False}]
    assert cli.main(["accounts", "profile", "nobody"]) == 1
