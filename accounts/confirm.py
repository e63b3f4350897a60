"""Sensitive changes confirmed by a 6-digit code sent through the notification outbox.

A change (new password, new e-mail) is validated and stored as pending; a random 6-digit code goes out as a
notice; the change applies only when the same account sends that code back within ``code_ttl_s`` (5 min)
and within ``code_attempts`` guesses. The code is kept as an HMAC under the server key, never in clear
(except in the outbox row that delivers it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

import notify
from accounts import service
from accounts.config import AuthConfig
from accounts.passwords import Passwords
from accounts.tokens import Caller
from storage.db import Database
from vigil.errors import Forbidden, NotFound, RejectedInput, TooManyAttempts, Unauthenticated

PURPOSES = ("password", "email")


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    purpose: str
    channel: str
    sent_to: str            # masked address the code went to
    expires_at: dt.datetime


def _mac(config: AuthConfig, challenge_id: str, code: str) -> bytes:
    return hmac.new(config.secret, f"confirm:{challenge_id}:{code}".encode(), hashlib.sha256).digest()


def _mask(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


async def request_password_change(db: Database, passwords: Passwords, config: AuthConfig, caller: Caller, *,
                                  current_password: str, new_password: str, now: dt.datetime) -> Challenge:
    """Check the current password (a wrong one counts toward the lockout and is :class:`Forbidden`), hash
    the new one and send a code to the account's e-mail."""
    try:
        await service.authenticate(db, passwords, config, username=caller.username, password=current_password,
                                   now=now)
    except Unauthenticated as exc:
        raise Forbidden("the current password is wrong") from exc
    new_hash = await passwords.hash(new_password)
    account = await _account(db, caller)
    return await _start(db, config, caller, purpose="password", change={"password_hash": new_hash},
                        send_to=account["email"], now=now)


async def request_email_change(db: Database, config: AuthConfig, caller: Caller, *, new_email: str,
                               now: dt.datetime) -> Challenge:
    """Send a code to the new address: confirming it proves the caller reads that mailbox."""
    service.check_email(new_email)
    return await _start(db, config, caller, purpose="email", change={"email": new_email}, send_to=new_email,
                        now=now)


async def _account(db: Database, caller: Caller) -> dict:
    account = await service.get_account(db, caller.account_id)
    if account is None:
        raise NotFound("account", str(caller.account_id))
    return account


async def _start(db: Database, config: AuthConfig, caller: Caller, *, purpose: str, change: dict, send_to: str,
                 now: dt.datetime) -> Challenge:
    challenge_id = secrets.token_urlsafe(12)
    code = f"{secrets.randbelow(1_000_000):06d}"
    expires = now + dt.timedelta(seconds=config.code_ttl_s)
    async with db.connection() as conn, conn.transaction():
        # One pending change per purpose: asking again retires the previous code.
        await conn.execute("UPDATE confirmations SET expires_at = LEAST(expires_at, %s)"
                           " WHERE account_id = %s AND purpose = %s AND confirmed_at IS NULL",
                           (now, caller.account_id, purpose))
        await conn.execute(
            "INSERT INTO confirmations (id, account_id, purpose, change, code_mac, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (challenge_id, caller.account_id, purpose, Jsonb(change), _mac(config, challenge_id, code), now, expires),
        )
    what = {"password": "change your password", "email": "change your e-mail address"}[purpose]
    await notify.enqueue(db, [notify.Notice(
        dedup_key=f"confirm:{challenge_id}", recipient=send_to, channel="email",
        subject="Your Vigil confirmation code",
        body=f"Your code to {what} is {code}. It expires in {config.code_ttl_s // 60} minutes."
             " If you did not ask for it, ignore this message and change your password.",
        event_ts=now)], now=now, max_age=dt.timedelta(seconds=config.code_ttl_s))
    return Challenge(id=challenge_id, purpose=purpose, channel="email", sent_to=_mask(send_to), expires_at=expires)


async def confirm(db: Database, config: AuthConfig, caller: Caller, *, challenge_id: str, code: str,
                  now: dt.datetime) -> str:
    """Apply the pending change if ``code`` is right; returns its purpose. Another account's challenge is
    :class:`NotFound`; a wrong, expired or spent code is :class:`RejectedInput`; the guess after the last
    allowed one is :class:`TooManyAttempts`. A confirmed password change ends every session."""
    async with db.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM confirmations WHERE id = %s AND account_id = %s FOR UPDATE",
                          (challenge_id, caller.account_id))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("confirmation", challenge_id)
        if row["confirmed_at"] is not None:
            raise RejectedInput("code_used", "this change was already confirmed")
        if row["expires_at"] <= now:
            raise RejectedInput("code_expired", "the code has expired: ask for a new one")
        if row["attempts"] >= config.code_attempts:
            refusal: Exception = TooManyAttempts("too many wrong codes: ask for a new one",
                                                 max(1, int((row["expires_at"] - now).total_seconds())))
        elif not hmac.compare_digest(bytes(row["code_mac"]), _mac(config, challenge_id, code)):
            # Counted in this transaction, refused after it commits.
            await conn.execute("UPDATE confirmations SET attempts = attempts + 1 WHERE id = %s", (challenge_id,))
            left = config.code_attempts - row["attempts"] - 1
            refusal = RejectedInput("wrong_code", f"wrong code, {left} attempts left")
        else:
            refusal = None
            await _apply(conn, row, now)
    if refusal is not None:
        raise refusal
    return row["purpose"]


async def _apply(conn, row: dict, now: dt.datetime) -> None:
    change = row["change"]
    if row["purpose"] == "password":
        await conn.execute("UPDATE accounts SET password_hash = %s, password_changed_at = %s WHERE id = %s",
                           (change["password_hash"], now, row["account_id"]))
        await service.revoke_all(conn, row["account_id"], now)
    else:
        await conn.execute("UPDATE accounts SET email = %s WHERE id = %s", (change["email"], row["account_id"]))
    await conn.execute("UPDATE confirmations SET confirmed_at = %s WHERE id = %s", (now, row["id"]))
