"""Login, refresh rotation, expiry, lockout and confirmation codes, over the real app and database.

The app's clock is a list the tests move forward, so expiry and lockout periods pass without sleeping.
"""

from __future__ import annotations

import datetime as dt
import re

import httpx
import jwt
import pytest

from tests.helpers import PASSWORD, add_account, login, make_app

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
async def api(db):
    clock = Clock()
    app = make_app(db, now=clock)
    await add_account(db, "alice", customer_id="cust-a", email="alice@example.org")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as http:
        yield http, clock


async def password_grant(http, username="alice", password=PASSWORD):
    return await http.post("/v1/auth/token", data={"grant_type": "password", "username": username,
                                                   "password": password})


async def refresh_grant(http, token):
    return await http.post("/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": token})


def bearer(body: dict) -> dict:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def outbox(db, recipient: str) -> list[tuple[str, str, str]]:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT channel, subject, body FROM notifications WHERE recipient = %s ORDER BY id",
                                 (recipient,))
        return await cur.fetchall()


async def test_login_issues_a_15_minute_jwt_and_a_refresh_token(api):
    http, _ = api
    r = await password_grant(http)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900 and body["role"] == "customer"
    assert body["customer_id"] == "cust-a" and len(body["refresh_token"]) >= 43
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900 and claims["cid"] == "cust-a" and claims["role"] == "customer"
    assert claims["iat"] == int(T0.timestamp())
    assert jwt.get_unverified_header(body["access_token"]) == {"alg": "HS256", "typ": "at+jwt"}
    me = await http.get("/v1/account", headers=bearer(body))
    assert me.status_code == 200 and me.json()["username"] == "alice" and me.json()["email"] == "alice@example.org"


async def test_wrong_password_and_unknown_user_get_the_same_answer(api):
    http, _ = api
    wrong, unknown = await password_grant(http, password="wrong password"), await password_grant(http, "nobody")
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json() == unknown.json()
    assert wrong.json()["type"] == "https://vigil.dev/problems/invalid-grant" and wrong.json()["error"] == "invalid_grant"
    missing = await http.post("/v1/auth/token", data={"grant_type": "password", "username": "alice"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_expired_access_token_is_401_and_refresh_gets_a_new_one(api):
    http, clock = api
    body = (await password_grant(http)).json()
    assert (await http.get("/v1/devices", headers=bearer(body))).status_code == 200
    clock.advance(900)
    r = await http.get("/v1/devices", headers=bearer(body))
    assert r.status_code == 401 and r.json()["type"] == "https://vigil.dev/problems/expired-token"
    assert r.headers["www-authenticate"].startswith('Bearer realm="vigil", error="invalid_token"')
    fresh = (await refresh_grant(http, body["refresh_token"])).json()
    assert (await http.get("/v1/devices", headers=bearer(fresh))).status_code == 200


async def test_refresh_rotates_and_a_reused_token_ends_the_session(api, db):
    http, clock = api
    first = (await password_grant(http)).json()
    clock.advance(60)
    second = (await refresh_grant(http, first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    clock.advance(60)
    third = (await refresh_grant(http, second["refresh_token"])).json()
    # The spent first token comes back (stolen copy): refused, and the live successor dies with it.
    replay = await refresh_grant(http, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["type"].endswith("/invalid-grant")
    assert "already used" in replay.json()["detail"]
    assert (await refresh_grant(http, third["refresh_token"])).status_code == 400
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*), count(used_at), count(revoked_at), count(DISTINCT family)"
                                 " FROM refresh_tokens")
        assert await cur.fetchone() == (3, 2, 3, 1)  # one family, two spent, all three revoked
    # A new login is a new session, unaffected.
    again = (await password_grant(http)).json()
    assert (await refresh_grant(http, again["refresh_token"])).status_code == 200


async def test_refresh_token_expires_after_30_days_unused(api):
    http, clock = api
    body = (await password_grant(http)).json()
    clock.advance(30 * 86_400)
    r = await refresh_grant(http, body["refresh_token"])
    assert r.status_code == 400 and r.json()["detail"] == "refresh token expired"


async def test_logout_revokes_the_session(api):
    http, _ = api
    body = (await password_grant(http)).json()
    assert (await http.post("/v1/auth/revoke", data={"token": body["refresh_token"]})).json() == {"revoked": True}
    assert (await refresh_grant(http, body["refresh_token"])).status_code == 400
    assert (await http.post("/v1/auth/revoke", data={"token": "unknown"})).json() == {"revoked": False}


async def test_five_wrong_passwords_lock_the_account_for_15_minutes(api, db):
    http, clock = api
    for _ in range(4):
        assert (await password_grant(http, password="wrong password")).status_code == 400
    fifth = await password_grant(http, password="wrong password")
    assert fifth.status_code == 429 and fifth.headers["retry-after"] == "900"
    assert fifth.json()["type"] == "https://vigil.dev/problems/too-many-attempts"
    clock.advance(600)
    locked = await password_grant(http)  # the right password does not open a locked account
    assert locked.status_code == 429 and locked.headers["retry-after"] == "300"
    notices = await outbox(db, "alice@example.org")
    assert [n[1] for n in notices] == ["Your Vigil account is locked"]
    clock.advance(300)
    assert (await password_grant(http)).status_code == 200
    # A success resets the count: four more failures do not lock.
    for _ in range(4):
        assert (await password_grant(http, password="wrong password")).status_code == 400
    assert (await password_grant(http)).status_code == 200


async def _code_for(db, recipient: str) -> str:
    channel, subject, body = (await outbox(db, recipient))[-1]
    assert channel == "email" and subject == "Your Vigil confirmation code"
    (code,) = re.findall(r"\b\d{6}\b", body)
    return code


async def test_password_change_needs_the_emailed_code(api, db):
    http, _ = api
    session = (await password_grant(http)).json()
    auth = bearer(session)
    wrong = await http.post("/v1/account/password", json={"current_password": "nope nope nope",
                                                          "new_password": "a new long password"}, headers=auth)
    assert wrong.status_code == 403 and wrong.json()["detail"] == "the current password is wrong"
    weak = await http.post("/v1/account/password", json={"current_password": PASSWORD, "new_password": "short"},
                           headers=auth)
    assert weak.status_code == 422 and weak.json()["errors"][0]["loc"] == ["body", "new_password"]
    r = await http.post("/v1/account/password", json={"current_password": PASSWORD,
                                                      "new_password": "a new long password"}, headers=auth)
    assert r.status_code == 202
    challenge = r.json()
    assert challenge["sent_to"] == "a***@example.org" and challenge["expires_at"] == "2026-05-04T09:05:00Z"
    code = await _code_for(db, "alice@example.org")
    # Nothing changes before the code is confirmed.
    assert (await password_grant(http)).status_code == 200
    bad = f"{(int(code) + 1) % 1_000_000:06d}"
    miss = await http.post(f"/v1/account/confirmations/{challenge['challenge_id']}", json={"code": bad}, headers=auth)
    assert miss.status_code == 422 and miss.json()["detail"] == "wrong code, 4 attempts left"
    ok = await http.post(f"/v1/account/confirmations/{challenge['challenge_id']}", json={"code": code}, headers=auth)
    assert ok.status_code == 200 and ok.json() == {"confirmed": "password"}
    assert (await password_grant(http)).status_code == 400
    assert (await password_grant(http, password="a new long password")).status_code == 200
    # Every session from before the change is ended.
    assert (await refresh_grant(http, session["refresh_token"])).status_code == 400
    again = await http.post(f"/v1/account/confirmations/{challenge['challenge_id']}", json={"code": code},
                            headers=auth)
    assert again.status_code == 422 and again.json()["type"].endswith("/code-used")


async def test_a_code_expires_after_5_minutes(api, db):
    http, clock = api
    auth = await login(http, "alice")
    r = await http.post("/v1/account/email", json={"new_email": "alice@example.com"}, headers=auth)
    code = await _code_for(db, "alice@example.com")
    clock.advance(300)
    auth = await login(http, "alice")
    late = await http.post(f"/v1/account/confirmations/{r.json()['challenge_id']}", json={"code": code},
                           headers=auth)
    assert late.status_code == 422 and late.json()["type"] == "https://vigil.dev/problems/code-expired"
    assert (await http.get("/v1/account", headers=auth)).json()["email"] == "alice@example.org"


async def test_five_wrong_codes_burn_the_challenge(api, db):
    http, _ = api
    auth = await login(http, "alice")
    r = await http.post("/v1/account/email", json={"new_email": "alice@example.com"}, headers=auth)
    url = f"/v1/account/confirmations/{r.json()['challenge_id']}"
    code = await _code_for(db, "alice@example.com")
    bad = f"{(int(code) + 1) % 1_000_000:06d}"
    answers = [(await http.post(url, json={"code": bad}, headers=auth)).status_code for _ in range(5)]
    assert answers == [422] * 5
    last = await http.post(url, json={"code": code}, headers=auth)
    assert last.status_code == 429 and last.json()["type"].endswith("/too-many-attempts")


async def test_email_change_goes_to_the_new_address_and_only_its_account_confirms(api, db):
    http, _ = api
    await add_account(db, "mallory", customer_id="cust-m")
    alice, mallory = await login(http, "alice"), await login(http, "mallory")
    r = await http.post("/v1/account/email", json={"new_email": "alice@example.com"}, headers=alice)
    assert r.status_code == 202 and r.json()["purpose"] == "email"
    assert await outbox(db, "alice@example.org") == []  # the code goes where the change leads
    code = await _code_for(db, "alice@example.com")
    url = f"/v1/account/confirmations/{r.json()['challenge_id']}"
    stolen = await http.post(url, json={"code": code}, headers=mallory)
    assert stolen.status_code == 404
    assert (await http.post(url, json={"code": code}, headers=alice)).json() == {"confirmed": "email"}
    assert (await http.get("/v1/account", headers=alice)).json()["email"] == "alice@example.com"
    invalid = await http.post("/v1/account/email", json={"new_email": "not-an-address"}, headers=alice)
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["loc"] == ["body", "new_email"]
