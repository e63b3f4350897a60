"""API errors are RFC 9457 problem+json with a stable type, on the real app and database."""

from __future__ import annotations

import httpx

from tests.helpers import add_account, login, make_app


async def test_errors_are_problem_json(db):
    app = make_app(db)
    await add_account(db, "alice")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as http:
        http.headers.update(await login(http, "alice"))
        bad = await http.get("/v1/vehicles", params={"limit": 0})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        body = bad.json()
        assert body["type"].endswith("/invalid-request") and body["errors"][0]["loc"] == ["query", "limit"]
        missing = await http.get("/v1/nowhere")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert (await http.get("/v1/trips/not-a-number")).json()["type"].endswith("/invalid-request")
        spec = (await http.get("/openapi.json")).json()
        assert {"/v1/vehicles/{vehicle_id}/position", "/v1/vehicles/{vehicle_id}/trips", "/v1/trips/{trip_id}",
                "/v1/vehicles/{vehicle_id}/driving-style", "/healthz"} <= set(spec["paths"])
