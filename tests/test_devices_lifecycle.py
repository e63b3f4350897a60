"""Devices belong to customers and move through provisioned → active ⇄ suspended → returned; the API
and the CLI drive it, and the signing key and logins the CLI makes are the ones the API uses."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat

import httpx
import psycopg
import pytest

from accounts import AuthConfig, decode_access
from accounts.ownership import TRANSITIONS, check_transition
from storage import devices
from tests.access_data import seed_two_customers
from tests.helpers import login, make_app, make_settings
from vigil import cli
from vigil.errors import Conflict, RejectedInput
from vigil.settings import Settings


def test_transition_table():
    allowed = {(a, b) for a in devices.STATUSES for b in devices.STATUSES if _allowed(a, b)}
    assert allowed == set(TRANSITIONS)
    assert ("returned", "active") not in TRANSITIONS and ("suspended", "provisioned") not in TRANSITIONS
    with pytest.raises(RejectedInput):
        check_transition("active", "stolen")


def _allowed(a: str, b: str) -> bool:
    try:
        check_transition(a, b)
        return True
    except Conflict:
        return False


@pytest.fixture
async def world(db):
    ids = await seed_two_customers(db)
    app = make_app(db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as http:
        yield http, db, ids


async def test_customer_activates_own_provisioned_device(world):
    http, db, _ = world
    alice = await login(http, "alice")
    assert (await http.get("/v1/devices/home-a", headers=alice)).json()["status"] == "provisioned"
    r = await http.post("/v1/devices/home-a/activate", headers=alice)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert (await devices.lookup(db, ["home-a"]))["home-a"].status == "active"  # what the gateway reads
    assert (await http.post("/v1/devices/home-a/activate", headers=alice)).status_code == 200  # idempotent
    assert (await http.post("/v1/devices/home-b/activate", headers=alice)).status_code == 404
    assert (await devices.lookup(db, ["home-b"]))["home-b"].status == "provisioned"


async def test_operator_suspends_returns_and_reassigns(world):
    http, db, _ = world
    alice, bob, olga = await login(http, "alice"), await login(http, "bob"), await login(http, "olga")
    status = "/v1/operator/devices/car-a/status"
    assert (await http.post(status, json={"status": "suspended"}, headers=olga)).json()["status"] == "suspended"
    # A customer may not lift a suspension.
    r = await http.post("/v1/devices/car-a/activate", headers=alice)
    assert r.status_code == 409 and r.json()["type"] == "https://vigil.dev/problems/invalid-transition"
    # Nor may anyone hand an assigned device to someone else.
    r = await http.put("/v1/operator/devices/car-a/owner", json={"customer_id": "cust-b"}, headers=olga)
    assert r.status_code == 409
    returned = (await http.post(status, json={"status": "returned"}, headers=olga)).json()
    assert returned["status"] == "returned" and returned["owner"] is None
    assert (await http.get("/v1/devices/car-a", headers=alice)).status_code == 404
    assert (await http.get("/v1/vehicles/car-a/trips", headers=alice)).status_code == 404
    assert "car-a" not in [d["device_id"] for d in (await http.get("/v1/devices", headers=alice)).json()["items"]]
    r = await http.post(status, json={"status": "active"}, headers=olga)
    assert r.status_code == 409 and "returned device cannot become active" in r.json()["detail"]
    assert (await http.post(status, json={"status": "provisioned"}, headers=olga)).status_code == 200
    r = await http.post(status, json={"status": "active"}, headers=olga)
    assert r.status_code == 409 and r.json()["type"].endswith("/no-owner")
    given = await http.put("/v1/operator/devices/car-a/owner", json={"customer_id": "cust-b"}, headers=olga)
    assert given.status_code == 200 and given.json()["owner"] == "cust-b"
    assert (await http.post("/v1/devices/car-a/activate", headers=bob)).json()["status"] == "active"
    assert (await http.get("/v1/vehicles/car-a/trips", headers=bob)).status_code == 200
    assert (await http.put("/v1/operator/devices/nowhere/owner", json={"customer_id": "c"},
                           headers=olga)).status_code == 404


def test_signing_key_is_created_once_and_kept(tmp_path):
    settings = Settings(data_dir=tmp_path)
    first, second = AuthConfig.from_settings(settings), AuthConfig.from_settings(settings)
    assert first.secret == second.secret and len(first.secret) == 32
    key_file = tmp_path / "auth" / "token-signing.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert os.listdir(tmp_path / "auth") == ["token-signing.key"]
    other = AuthConfig.from_settings(Settings(data_dir=tmp_path / "elsewhere"))
    assert other.secret != first.secret


def test_cli_creates_logins_the_api_accepts(database_url, mqtt_url, capsys, monkeypatch):
    settings = make_settings(mqtt_url, database_url)
    monkeypatch.setenv("VIGIL_DATABASE_URL", database_url)
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    assert cli.main(["accounts", "add-customer", "carol", "--customer-id", "cust-c", "--email",
                     "carol@example.org", "--password", "carols long password"]) == 0
    assert "account carol (customer cust-c) created" in capsys.readouterr().out
    assert cli.main(["accounts", "add-operator", "otto", "--email", "otto@example.org"]) == 0
    generated = capsys.readouterr().out.splitlines()[-1].removeprefix("password (shown once): ")
    assert cli.main(["accounts", "add-customer", "carol", "--customer-id", "x", "--email", "c@example.org",
                     "--password", "another long one"]) == 1
    assert cli.main(["devices", "add", "--kind", "pet", "--id", "pet-c", "--owner", "cust-c",
                     "--status", "provisioned"]) == 0
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT username, role, customer_id, password_hash FROM accounts ORDER BY id").fetchall()
        assert [r[:3] for r in rows] == [("carol", "customer", "cust-c"), ("otto", "operator", None)]
        assert all(r[3].startswith("$argon2id$v=19$m=65536,t=3,p=4$") for r in rows)
        assert conn.execute("SELECT owner, status FROM devices WHERE device_id = 'pet-c'").fetchone() == \
            ("cust-c", "provisioned")
    assert cli.main(["accounts", "set-password", "nobody", "--password", "whatever long"]) == 1
    asyncio.run(_logins_work(database_url, settings, generated))


async def _logins_work(database_url, settings, otto_password):
    from storage import Database

    db = await Database.open(database_url)
    try:
        config = AuthConfig.from_settings(settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(db, auth=config)),
                                     base_url="http://vigil") as http:
            carol = await login(http, "carol", "carols long password")
            assert [d["device_id"] for d in (await http.get("/v1/devices", headers=carol)).json()["items"]] == ["pet-c"]
            otto = await login(http, "otto", otto_password)
            token = otto["Authorization"].removeprefix("Bearer ")
            assert decode_access(config, token, now=dt.datetime.now(dt.timezone.utc)).is_operator
    finally:
        await db.close()
