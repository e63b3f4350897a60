"""RFC 9457 problem+json responses with stable ``type`` URIs."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from vigil.errors import Conflict, NotFound, RejectedInput, StorageError

TYPE_BASE = "https://vigil.dev/problems/"
MEDIA_TYPE = "application/problem+json"


def problem(status: int, kind: str, title: str, detail: str = "", **extra) -> JSONResponse:
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return problem(404, "not-found", f"{exc.kind} not found", str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict):
        return problem(409, "conflict", "conflicts with the current state", exc.detail, reason=exc.reason)

    @app.exception_handler(RejectedInput)
    async def rejected(request: Request, exc: RejectedInput):
        return problem(422, "rejected", "request is invalid", exc.detail, reason=exc.reason)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return problem(422, "invalid-request", "request is invalid", "see errors", errors=errors)

    @app.exception_handler(StorageError)
    async def storage(request: Request, exc: StorageError):
        return problem(503, "storage-unavailable", "storage is unavailable", str(exc))

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException):
        return problem(exc.status_code, f"http-{exc.status_code}", str(exc.detail), str(exc.detail))
