"""Who may call a route, and whose objects it sees.

Every ``/v1`` route except login takes one of these dependencies (FastAPI ``Depends``):

- ``owner: str | None = Depends(customer_scope)`` — customers and operators. The value is what a service's
  ``owner=`` keyword takes: the caller's customer id (devices.owner) for a customer, ``None`` (everything)
  for an operator. The service raises :class:`~vigil.errors.NotFound` for an object of another customer,
  so it answers 404, exactly as for a missing one: existence is not leaked.
- ``owner: str = Depends(customer_only)`` — customer-only routes (an operator gets 403).
- ``caller: Caller = Depends(operator_only)`` — assistance-centre routes (a customer gets 403).
- ``caller: Caller = Depends(current_caller)`` — any logged-in caller, when the route needs who it is.

Adopting it is one parameter, e.g.::

    @router.get("/v1/pets/{pet_id}", responses=access.RESPONSES | NOT_FOUND)
    async def pet(request: Request, pet_id: access.DeviceId, owner: str | None = Depends(access.customer_scope)):
        return await service.get_pet(db=request.app.state.db, pet_id=pet_id, owner=owner)

``RESPONSES`` (401), ``OPERATOR_RESPONSES`` and ``CUSTOMER_RESPONSES`` (401, 403) document the refusals in
OpenAPI; ``problem_example`` writes such an entry for any other status. Tests log in with
``tests.helpers.add_account`` and ``tests.helpers.login`` (see there).

Without a valid ``Authorization: Bearer <access token>`` the answer is 401 problem+json with a
``WWW-Authenticate: Bearer`` challenge. Tokens come from ``POST /v1/auth/token`` (OAuth2 password flow).

Server-sent-event routes take ``Depends(stream_scope)`` or ``Depends(stream_operator)`` instead: a browser's
``EventSource`` cannot send headers, so there (and only there) the token may also come as the
``access_token`` query parameter (RFC 6750 §2.3). A URL leaks more easily than a header (history,
proxy logs), which is why no other route accepts it: the token lives 15 minutes and the API server
writes no access log (uvicorn at warning level).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyQuery, OAuth2PasswordBearer

from accounts.tokens import Caller, decode_access
from api.schemas import Problem
from vigil.errors import Forbidden, Unauthenticated

__all__ = ["Caller", "DeviceId", "current_caller", "customer_scope", "customer_only", "operator_only",
           "stream_caller", "stream_scope", "stream_operator", "RESPONSES", "CUSTOMER_RESPONSES",
           "OPERATOR_RESPONSES", "problem_example"]

TOKEN_URL = "/v1/auth/token"
#: A device id path parameter (IMEI, serial or name; 64 = ingest.topics.MAX_DEVICE_ID_LEN), with an example.
DeviceId = Annotated[str, Path(min_length=1, max_length=64, examples=["car-00001"])]
bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False,
                              description="Access token from POST /v1/auth/token (15 min)")
stream_token = APIKeyQuery(name="access_token", scheme_name="AccessTokenQuery", auto_error=False,
                           description="The access token as a query parameter: only on text/event-stream routes "
                                       "(EventSource cannot send an Authorization header)")


def problem_example(status: int, kind: str, title: str, detail: str, description: str) -> dict:
    """An OpenAPI ``responses`` entry: problem+json with one example."""
    example = {"type": f"https://vigil.dev/problems/{kind}", "title": title, "status": status, "detail": detail}
    return {status: {"model": Problem, "description": description,
                     "content": {"application/problem+json": {"example": example}}}}


RESPONSES = problem_example(401, "missing-token", "authentication required",
                            "log in: send Authorization: Bearer <access token>",
                            "no valid access token (missing, invalid or expired)")
OPERATOR_RESPONSES = RESPONSES | problem_example(403, "forbidden", "not allowed for this role",
                                                 "this route is for operators of the assistance centre",
                                                 "the caller is not an operator")
CUSTOMER_RESPONSES = RESPONSES | problem_example(403, "forbidden", "not allowed for this role",
                                                 "this route is for customers", "the caller is an operator")


async def current_caller(request: Request, token: str | None = Depends(bearer)) -> Caller:
    if not token:
        raise Unauthenticated("missing_token", "log in: send Authorization: Bearer <access token>")
    return decode_access(request.app.state.auth, token, now=request.app.state.now())


async def customer_scope(caller: Caller = Depends(current_caller)) -> str | None:
    """The ``owner=`` to pass on: the customer id for a customer, None (all customers) for an operator."""
    if caller.is_operator:
        return None
    if not caller.customer_id:
        raise Unauthenticated("invalid_token", "a customer token without its customer")
    return caller.customer_id


async def customer_only(caller: Caller = Depends(current_caller)) -> str:
    if caller.is_operator or not caller.customer_id:
        raise Forbidden("this route is for customers")
    return caller.customer_id


async def operator_only(caller: Caller = Depends(current_caller)) -> Caller:
    if not caller.is_operator:
        raise Forbidden("this route is for operators of the assistance centre")
    return caller


async def stream_caller(request: Request, token: str | None = Depends(bearer),
                        query_token: str | None = Depends(stream_token)) -> Caller:
    """:func:`current_caller` for server-sent-event routes: the header, or else ``?access_token=``."""
    return await current_caller(request, token or query_token)


async def stream_scope(caller: Caller = Depends(stream_caller)) -> str | None:
    """:func:`customer_scope` for server-sent-event routes."""
    return await customer_scope(caller)


async def stream_operator(caller: Caller = Depends(stream_caller)) -> Caller:
    """:func:`operator_only` for server-sent-event routes."""
    return await operator_only(caller)
