"""Login (OAuth2 password flow, RFC 6749 §4.3), refresh with rotation (§6) and logout (RFC 7009)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, Field

from accounts import service
from accounts.tokens import Caller, issue_access
from api.access import problem_example
from vigil.errors import Unauthenticated

router = APIRouter(prefix="/v1/auth", tags=["auth"])

TOKEN_ERRORS = (
    problem_example(400, "invalid-grant", "invalid grant", "wrong username or password",
                    "wrong credentials, an unknown, expired or already used refresh token (invalid-grant), or"
                    " a field the grant needs is missing (invalid-request)")
    | problem_example(429, "too-many-attempts", "too many attempts",
                      "too many failed logins: the account is locked for 900 s",
                      "the account is locked after repeated failures (Retry-After says for how long)")
    | problem_example(422, "invalid-request", "request is invalid", "see errors", "grant_type is missing or unknown")
)


class TokenResponse(BaseModel):
    access_token: str = Field(description="JWT (HS256) to send as Authorization: Bearer",
                              examples=["eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIxIn0.c2ln"])
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds the access token is valid", examples=[900])
    refresh_token: str = Field(description="opaque, single use: each refresh returns a new one",
                               examples=["k3C0mJ9vZ0QeYcW3bq1lq8S0u7b1nE4fX9k2pQ5rT6s"])
    refresh_expires_in: int = Field(description="seconds the refresh token is valid if unused", examples=[2592000])
    role: Literal["customer", "operator"]
    customer_id: str | None = Field(None, description="the customer the account acts for", examples=["cust-1"])


class Revoked(BaseModel):
    revoked: bool = Field(description="whether a live session was ended", examples=[True])


def _tokens(request: Request, caller: Caller, refresh: str) -> TokenResponse:
    config = request.app.state.auth
    access, _ = issue_access(config, caller, now=request.app.state.now())
    return TokenResponse(access_token=access, expires_in=config.access_ttl_s, refresh_token=refresh,
                         refresh_expires_in=config.refresh_ttl_s, role=caller.role, customer_id=caller.customer_id)


@router.post("/token", response_model=TokenResponse, responses=TOKEN_ERRORS,
             summary="Log in (grant_type=password) or refresh (grant_type=refresh_token)")
async def token(
    request: Request,
    grant_type: Literal["password", "refresh_token"] = Form(examples=["password"]),
    # Optional and without a minimum length: a form sends an empty field, which FastAPI reads as absent.
    username: str | None = Form(None, max_length=64, examples=["alice"]),
    password: str | None = Form(None, max_length=1024, examples=["correct horse battery"]),
    refresh_token: str | None = Form(None, max_length=256),
    scope: str = Form("", description="ignored: the role decides what a token may do"),
) -> TokenResponse:
    state, now = request.app.state, request.app.state.now()
    if grant_type == "password":
        if not username or not password:
            raise Unauthenticated("invalid_request", "grant_type=password needs username and password")
        caller = await service.authenticate(state.db, state.passwords, state.auth, username=username,
                                            password=password, now=now)
        refresh = await service.start_session(state.db, state.auth, caller, now=now)
    else:
        if not refresh_token:
            raise Unauthenticated("invalid_request", "grant_type=refresh_token needs refresh_token")
        caller, refresh = await service.rotate(state.db, state.auth, refresh_token=refresh_token, now=now)
    return _tokens(request, caller, refresh)


@router.post("/revoke", response_model=Revoked, summary="Log out: end the session of a refresh token",
             responses=problem_example(422, "invalid-request", "request is invalid", "see errors",
                                       "the token field is missing"))
async def revoke(request: Request, token: str = Form(min_length=1, max_length=256)) -> Revoked:
    # RFC 7009 §2.2: an unknown token is not an error (200, revoked=false).
    ended = await service.revoke(request.app.state.db, refresh_token=token, now=request.app.state.now())
    return Revoked(revoked=ended)
