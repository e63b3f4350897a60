"""Access tokens (JWT, HS256, RFC 9068 profile) and opaque refresh tokens.

An access token carries who is calling: ``sub`` (account id), ``role`` (customer or operator), ``cid``
(the customer id, customers only) and ``name`` (username). It is checked without the database; its short
life bounds what a leaked one can do. A refresh token is 256 random bits; only its SHA-256 is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import jwt

from accounts.config import AuthConfig
from vigil.errors import Unauthenticated

ISSUER = "vigil"
AUDIENCE = "vigil-api"
ROLES = ("customer", "operator")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling. ``customer_id`` is the devices.owner value a customer acts for (None for operators)."""
    account_id: int
    username: str
    role: str
    customer_id: str | None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


def issue_access(config: AuthConfig, caller: Caller, *, now: dt.datetime) -> tuple[str, dt.datetime]:
    """A signed access token for ``caller`` and the moment it expires (UTC)."""
    expires = now + dt.timedelta(seconds=config.access_ttl_s)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(caller.account_id), "name": caller.username,
              "role": caller.role, "iat": int(now.timestamp()), "exp": int(expires.timestamp()),
              "jti": secrets.token_urlsafe(12)}
    if caller.customer_id is not None:
        claims["cid"] = caller.customer_id
    token = jwt.encode(claims, config.secret, algorithm="HS256", headers={"typ": "at+jwt"})
    return token, expires


def decode_access(config: AuthConfig, token: str, *, now: dt.datetime) -> Caller:
    """The caller an access token names; raises :class:`Unauthenticated` when it is forged, malformed,
    for another audience or expired at ``now`` (the app's clock, not the machine's)."""
    try:
        claims = jwt.decode(token, config.secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
                            options={"require": ["exp", "sub", "role", "iss", "aud"], "verify_exp": False,
                                     "verify_iat": False, "verify_nbf": False})
    except jwt.PyJWTError as exc:
        raise Unauthenticated("invalid_token", f"the access token is not valid ({exc})") from exc
    exp = claims["exp"]
    if not isinstance(exp, int) or exp <= now.timestamp():
        raise Unauthenticated("expired_token", "the access token has expired; refresh it or log in")
    role, customer = claims.get("role"), claims.get("cid")
    # A customer token without its customer would read as operator scope: refuse it outright.
    if role not in ROLES or (role == "customer") != isinstance(customer, str) or customer == "":
        raise Unauthenticated("invalid_token", "the access token names no valid role")
    try:
        account = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise Unauthenticated("invalid_token", "the access token names no account") from exc
    return Caller(account_id=account, username=str(claims.get("name", "")), role=role,
                  customer_id=customer if role == "customer" else None)


def new_refresh_token() -> tuple[str, bytes]:
    """(token to hand out once, digest to store)."""
    token = secrets.token_urlsafe(32)
    return token, refresh_digest(token)


def refresh_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
