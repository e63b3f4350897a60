"""Accounts in PostgreSQL: creation, password login with lockout, refresh-token sessions.

Services take keyword arguments and the clock (``now``, UTC) from the caller.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import psycopg
from psycopg.rows import dict_row

import notify
from accounts.config import AuthConfig
from accounts.passwords import Passwords
from accounts.tokens import ROLES, Caller, new_refresh_token, refresh_digest
from storage.db import Database
from vigil.errors import RejectedInput, TooManyAttempts, Unauthenticated

#: Something@something.tld without spaces or control characters; explicit ranges, so JSON Schema (the API
#: document) and Python agree on it. Whether the mailbox exists is what the confirmation code proves.
EMAIL_PATTERN = r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+$"
_EMAIL = re.compile(EMAIL_PATTERN)
_USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{3,64}$")
_WRONG = "wrong username or password"


def check_email(email: str) -> str:
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise RejectedInput("invalid_email", f"not an e-mail address: {email!r}")
    return email


def _caller(row: dict) -> Caller:
    return Caller(account_id=row["id"], username=row["username"], role=row["role"],
                  customer_id=row["customer_id"])


async def create_account(db: Database, passwords: Passwords, *, username: str, email: str, role: str,
                         password: str, customer_id: str | None = None) -> Caller:
    """A new login. A customer account acts for ``customer_id`` (the devices.owner value); an operator
    has none. Raises :class:`RejectedInput` for a taken username or invalid fields."""
    if role not in ROLES:
        raise RejectedInput("invalid_role", f"role must be one of {ROLES}")
    if (role == "customer") != bool(customer_id):
        raise RejectedInput("invalid_customer", "a customer account names its customer id; an operator none")
    if not _USERNAME.fullmatch(username):
        raise RejectedInput("invalid_username", "3-64 letters, digits or . _ @ + -")
    check_email(email)
    hashed = await passwords.hash(password)
    try:
        async with db.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO accounts (username, email, role, customer_id, password_hash)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (username, email, role, customer_id if role == "customer" else None, hashed),
            )
            (account_id,) = await cur.fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise RejectedInput("username_taken", f"username {username!r} is taken") from exc
    return Caller(account_id=account_id, username=username, role=role,
                  customer_id=customer_id if role == "customer" else None)


async def get_account(db: Database, account_id: int) -> dict | None:
    async with db.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT id, username, email, role, customer_id, created_at, password_changed_at"
                          " FROM accounts WHERE id = %s", (account_id,))
        return await cur.fetchone()


async def authenticate(db: Database, passwords: Passwords, config: AuthConfig, *, username: str, password: str,
                       now: dt.datetime) -> Caller:
    """The caller whose password this is. Wrong: :class:`Unauthenticated` (``invalid_grant``), the same
    for an unknown user. The ``lockout_attempts``-th consecutive failure locks the account for
    ``lockout_s`` (:class:`TooManyAttempts`, also for every try while locked, right or wrong)."""
    async with db.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT id, username, email, role, customer_id, password_hash, locked_until"
                          " FROM accounts WHERE username = %s", (username,))
        row = await cur.fetchone()
    if row is not None and row["locked_until"] is not None and row["locked_until"] > now:
        raise _locked(row["locked_until"], now)
    ok = await passwords.verify(row["password_hash"] if row else None, password)
    if row is None:
        raise Unauthenticated("invalid_grant", _WRONG)
    async with db.connection() as conn:
        if ok:
            await conn.execute("UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = %s",
                               (row["id"],))
            return _caller(row)
        until = now + dt.timedelta(seconds=config.lockout_s)
        cur = await conn.execute(
            "UPDATE accounts SET"
            " locked_until = CASE WHEN failed_logins + 1 >= %(n)s THEN %(until)s ELSE locked_until END,"
            " failed_logins = CASE WHEN failed_logins + 1 >= %(n)s THEN 0 ELSE failed_logins + 1 END"
            " WHERE id = %(id)s RETURNING locked_until",
            {"n": config.lockout_attempts, "until": until, "id": row["id"]},
        )
        (locked_until,) = await cur.fetchone()
    if locked_until == until:
        await notify.enqueue(db, [notify.Notice(
            dedup_key=f"lockout:{row['id']}:{until.isoformat()}", recipient=row["email"], channel="email",
            subject="Your Vigil account is locked",
            body=f"{config.lockout_attempts} wrong passwords in a row: sign-in is blocked until"
                 f" {until:%Y-%m-%d %H:%M} UTC. If this was not you, change your password afterwards.",
            event_ts=now)], now=now, max_age=dt.timedelta(seconds=config.lockout_s))
        raise _locked(until, now)
    raise Unauthenticated("invalid_grant", _WRONG)


def _locked(until: dt.datetime, now: dt.datetime) -> TooManyAttempts:
    wait = max(1, math.ceil((until - now).total_seconds()))
    return TooManyAttempts(f"too many failed logins: the account is locked for {wait} s", wait)


async def start_session(db: Database, config: AuthConfig, caller: Caller, *, now: dt.datetime) -> str:
    """A refresh token opening a new session (token family) for ``caller``."""
    token, digest = new_refresh_token()
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO refresh_tokens (id, family, token_hash, account_id, issued_at, expires_at)"
            " SELECT v, v, %s, %s, %s, %s FROM nextval(pg_get_serial_sequence('refresh_tokens', 'id')) AS v",
            (digest, caller.account_id, now, now + dt.timedelta(seconds=config.refresh_ttl_s)),
        )
    return token


async def rotate(db: Database, config: AuthConfig, *, refresh_token: str, now: dt.datetime) -> tuple[Caller, str]:
    """Trade a refresh token for its successor (the caller, the new token). The old token is spent: using
    it again is taken as theft and revokes the whole session, successors included."""
    token, digest = new_refresh_token()
    async with db.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT r.id, r.family, r.expires_at, r.used_at, r.revoked_at, a.id AS account_id, a.username,"
            " a.role, a.customer_id FROM refresh_tokens r JOIN accounts a ON a.id = r.account_id"
            " WHERE r.token_hash = %s FOR UPDATE OF r", (refresh_digest(refresh_token),))
        row = await cur.fetchone()
        if row is None:
            failure = "unknown refresh token"
        elif row["revoked_at"] is not None or row["used_at"] is not None:
            await conn.execute("UPDATE refresh_tokens SET revoked_at = %s WHERE family = %s AND revoked_at IS NULL",
                               (now, row["family"]))
            failure = "refresh token already used or revoked: the session is ended"
        elif row["expires_at"] <= now:
            failure = "refresh token expired"
        else:
            failure = None
            await conn.execute("UPDATE refresh_tokens SET used_at = %s WHERE id = %s", (now, row["id"]))
            await conn.execute(
                "INSERT INTO refresh_tokens (family, token_hash, account_id, issued_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (row["family"], digest, row["account_id"], now, now + dt.timedelta(seconds=config.refresh_ttl_s)),
            )
    if failure is not None:
        raise Unauthenticated("invalid_grant", failure)
    return Caller(account_id=row["account_id"], username=row["username"], role=row["role"],
                  customer_id=row["customer_id"]), token


async def revoke(db: Database, *, refresh_token: str, now: dt.datetime) -> bool:
    """Log out: end the session the refresh token belongs to. False when the token is unknown."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = %s WHERE revoked_at IS NULL AND family ="
            " (SELECT family FROM refresh_tokens WHERE token_hash = %s)", (now, refresh_digest(refresh_token)))
        return cur.rowcount > 0


async def revoke_all(conn: psycopg.AsyncConnection, account_id: int, now: dt.datetime) -> None:
    """End every session of an account (after a password change)."""
    await conn.execute("UPDATE refresh_tokens SET revoked_at = %s WHERE account_id = %s AND revoked_at IS NULL",
                       (now, account_id))


async def set_password(db: Database, passwords: Passwords, *, username: str, password: str,
                       now: dt.datetime) -> bool:
    """Administrative reset (CLI, demo): new password, lock lifted, every session ended. False when no
    such account."""
    hashed = await passwords.hash(password)
    async with db.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE accounts SET password_hash = %s, password_changed_at = %s, failed_logins = 0,"
            " locked_until = NULL WHERE username = %s RETURNING id", (hashed, now, username))
        row = await cur.fetchone()
        if row is None:
            return False
        await revoke_all(conn, row[0], now)
    return True
