"""The OpenAPI document says what the API really sends: every error is ``application/problem+json``.

FastAPI documents its request-validation answer (422) as ``application/json`` with its own schema, and a
``responses`` entry with a model under both media types. This rewrites every 4xx/5xx answer of the
generated document to problem+json with the :class:`~api.schemas.Problem` schema, keeping examples.
"""

from __future__ import annotations

from fastapi import FastAPI

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
MEDIA = "application/problem+json"
INVALID_EXAMPLE = {"type": "https://vigil.dev/problems/invalid-request", "title": "request is invalid",
                   "status": 422, "detail": "see errors",
                   "errors": [{"loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1"}]}


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            _rewrite(generate())
        return app.openapi_schema

    app.openapi = openapi


MALFORMED = {"description": "the body cannot be parsed (not JSON, or not a form)",
             "content": {MEDIA: {"example": {"type": "https://vigil.dev/problems/http-400",
                                             "title": "There was an error parsing the body", "status": 400,
                                             "detail": "There was an error parsing the body"}}}}


def _rewrite(document: dict) -> None:
    for path in document.get("paths", {}).values():
        for operation in path.values():
            if "requestBody" in operation:
                operation["responses"].setdefault("400", MALFORMED)
            for code, response in operation.get("responses", {}).items():
                if not code.startswith(("4", "5")):
                    continue
                content = response.setdefault("content", {})
                plain = content.pop("application/json", {})
                entry = content.setdefault(MEDIA, {})
                entry["schema"] = PROBLEM_REF
                if "example" not in entry and "examples" not in entry:
                    entry["example"] = plain.get("example", INVALID_EXAMPLE if code == "422" else None)
                    if entry["example"] is None:
                        del entry["example"]
                if code == "422" and response.get("description") == "Validation Error":
                    response["description"] = "the request is invalid (which fields: `errors`)"
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
