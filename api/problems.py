"""RFC 9457 problem+json responses with stable ``type`` URIs."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from vigil.errors import Conflict, Forbidden, NotFound, RejectedInput, StorageError, TooManyAttempts, Unauthenticated

TYPE_BASE = "https://vigil.dev/problems/"
MEDIA_TYPE = "application/problem+json"


def problem(status: int, kind: str, title: str, detail: str = "", **extra) -> JSONResponse:
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def _slug(reason: str) -> str:
    return reason.replace("_", "-")


def install(app: FastAPI) -> None:
    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated):
        if exc.reason in ("invalid_grant", "invalid_request"):
            # RFC 6749 §5.2: the token endpoint answers a wrong password, a spent refresh token or a
            # missing field with 400 and names the error.
            return problem(400, _slug(exc.reason), exc.reason.replace("_", " "), exc.detail, error=exc.reason)
        response = problem(401, _slug(exc.reason), "authentication required", exc.detail)
        # RFC 6750 §3: name the error only when a token was sent.
        challenge = 'Bearer realm="vigil"'
        if exc.reason != "missing_token":
            challenge += ', error="invalid_token", error_description="' + exc.detail.replace('"', "'") + '"'
        response.headers["WWW-Authenticate"] = challenge
        return response

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden):
        return problem(403, "forbidden", "not allowed for this role", str(exc))

    @app.exception_handler(TooManyAttempts)
    async def too_many(request: Request, exc: TooManyAttempts):
        response = problem(429, "too-many-attempts", "too many attempts", str(exc), retry_after_s=exc.retry_after_s)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict):
        return problem(409, _slug(exc.reason), "conflict with the current state", exc.detail or exc.reason,
                       reason=exc.reason)

    @app.exception_handler(RejectedInput)
    async def rejected(request: Request, exc: RejectedInput):
        return problem(422, _slug(exc.reason), "request refused", exc.detail or exc.reason, reason=exc.reason)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return problem(404, "not-found", f"{exc.kind} not found", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return problem(422, "invalid-request", "request is invalid", "see errors", errors=errors)

    @app.exception_handler(StorageError)
    async def storage(request: Request, exc: StorageError):
        return problem(503, "storage-unavailable", "storage is unavailable", str(exc))

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException):
        response = problem(exc.status_code, f"http-{exc.status_code}", str(exc.detail), str(exc.detail))
        # Keep what the framework adds, e.g. the ``Allow`` header RFC 9110 requires with a 405.
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed(request) or response.headers.get("Allow", "")
        return response


_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _allowed(request: Request) -> str:
    """Every method the path supports, from the OpenAPI document. Starlette's 405 names only the first route
    matching the path, but one path is often several routes (GET and POST of a collection are two
    functions, in different routers). As OpenAPI matches paths, the templates with the fewest parameters
    win (``/v1/certificates/verify`` before ``/v1/certificates/{cert_id}``)."""
    table = getattr(request.app.state, "allow_table", None)
    if table is None:
        table = []
        for path, operations in request.app.openapi()["paths"].items():
            methods = {m.upper() for m in operations if m in _METHODS}
            table.append((path.count("{"), compile_path(path)[0], methods | ({"HEAD"} if "GET" in methods else set())))
        request.app.state.allow_table = table
    matching = [(params, methods) for params, regex, methods in table if regex.match(request.scope["path"])]
    fewest = min((params for params, _ in matching), default=0)
    return ", ".join(sorted(set().union(*(methods for params, methods in matching if params == fewest))))
