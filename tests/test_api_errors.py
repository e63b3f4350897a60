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
        # One path, two routes (GET and POST are two functions): the 405 names every method (RFC 9110).
        wrong = await http.delete("/v1/vehicles/car-1/certificates")
        assert wrong.status_code == 405 and wrong.headers["content-type"] == "application/problem+json"
        assert wrong.headers["allow"] == "GET, HEAD, POST"
        assert (await http.delete("/v1/certificates/verify")).headers["allow"] == "POST"   # not .../{cert_id}
        spec = (await http.get("/openapi.json")).json()
        assert {"/v1/vehicles/{vehicle_id}/position", "/v1/vehicles/{vehicle_id}/trips", "/v1/trips/{trip_id}",
                "/v1/vehicles/{vehicle_id}/driving-style", "/healthz"} <= set(spec["paths"])


#: The /v1 operations anyone may call: logging in and out, and checking a certificate (issue 7): uploading
#: one, the page its QR code opens, and the public keys for offline checks.
PUBLIC = {("post", "/v1/auth/token"), ("post", "/v1/auth/revoke"), ("post", "/v1/certificates/verify"),
          ("get", "/v1/certificates/{cert_id}/verification"), ("get", "/v1/certificates/keys")}


def test_openapi_documents_every_route_with_a_summary_and_examples():
    spec = make_app(None).openapi()
    schemas = spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            assert op.get("summary"), (method, path)
            for code, response in op["responses"].items():
                for media, content in response.get("content", {}).items():
                    if code.startswith(("4", "5")):
                        assert media == "application/problem+json", (method, path, code)
                        assert content["example"]["type"].startswith("https://vigil.dev/problems/"), (method, path)
                        continue
                    model = schemas.get(content.get("schema", {}).get("$ref", "").split("/")[-1], {})
                    # A whole example, or one per field (pydantic ``Field(examples=...)``).
                    documented = "example" in content or "examples" in model or any(
                        "examples" in p for p in model.get("properties", {}).values())
                    assert documented, (method, path, code)
            if path.startswith("/v1/") and (method, path) not in PUBLIC:
                assert "401" in op["responses"] and op.get("security"), (method, path)
