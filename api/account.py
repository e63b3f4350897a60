"""The caller's own account: who am I, and password or e-mail changes confirmed by a 6-digit code."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from accounts import confirm, service
from accounts.passwords import MAX_PASSWORD_LENGTH
from accounts.service import EMAIL_PATTERN
from accounts.tokens import Caller
from api import access
from api.access import problem_example
from vigil.errors import NotFound

router = APIRouter(prefix="/v1/account", tags=["account"])

REFUSED = problem_example(422, "weak-password", "request refused",
                          "a password has 10 to 128 characters", "the new value is refused (reason in `type`)")
LOCKED = problem_example(429, "too-many-attempts", "too many attempts", "too many wrong codes: ask for a new one",
                         "locked after repeated failures (Retry-After says for how long)")


class Account(BaseModel):
    id: int = Field(examples=[7])
    username: str = Field(examples=["alice"])
    email: str = Field(examples=["alice@example.org"])
    role: str = Field(examples=["customer"])
    customer_id: str | None = Field(examples=["cust-1"])
    created_at: dt.datetime
    password_changed_at: dt.datetime


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1024, examples=["correct horse battery"])
    new_password: str = Field(min_length=10, max_length=MAX_PASSWORD_LENGTH,
                              examples=["a longer horse battery staple"])


class EmailChange(BaseModel):
    new_email: str = Field(max_length=254, pattern=EMAIL_PATTERN, examples=["alice@example.com"])


class Code(BaseModel):
    code: str = Field(pattern=r"^[0-9]{6}$", examples=["042317"])


class ChallengeView(BaseModel):
    challenge_id: str = Field(description="send the code to POST /v1/account/confirmations/{challenge_id}",
                              examples=["p1Zt2Yw8c0a9LqkX"])
    purpose: str = Field(examples=["password"])
    channel: str = Field(examples=["email"])
    sent_to: str = Field(description="masked address the code was sent to", examples=["a***@example.org"])
    expires_at: dt.datetime


class Confirmed(BaseModel):
    confirmed: str = Field(description="what changed", examples=["password"])


def _view(c: confirm.Challenge) -> ChallengeView:
    return ChallengeView(challenge_id=c.id, purpose=c.purpose, channel=c.channel, sent_to=c.sent_to,
                         expires_at=c.expires_at)


@router.get("", response_model=Account, responses=access.RESPONSES, summary="The caller's account")
async def me(request: Request, caller: Caller = Depends(access.current_caller)) -> Account:
    row = await service.get_account(request.app.state.db, caller.account_id)
    if row is None:
        raise NotFound("account", str(caller.account_id))
    return Account(**row)


@router.post("/password", status_code=202, response_model=ChallengeView,
             responses=access.RESPONSES | REFUSED | LOCKED | problem_example(
                 403, "forbidden", "not allowed for this role", "the current password is wrong",
                 "wrong current password (counts toward the lockout)"),
             summary="Ask to change the password: a 6-digit code goes to the account's e-mail")
async def change_password(request: Request, body: PasswordChange,
                          caller: Caller = Depends(access.current_caller)) -> ChallengeView:
    s = request.app.state
    return _view(await confirm.request_password_change(
        s.db, s.passwords, s.auth, caller, current_password=body.current_password, new_password=body.new_password,
        now=s.now()))


@router.post("/email", status_code=202, response_model=ChallengeView,
             responses=access.RESPONSES | problem_example(422, "invalid-request", "request is invalid",
                                                          "see errors", "not an e-mail address"),
             summary="Ask to change the e-mail address: a 6-digit code goes to the new address")
async def change_email(request: Request, body: EmailChange,
                       caller: Caller = Depends(access.current_caller)) -> ChallengeView:
    s = request.app.state
    return _view(await confirm.request_email_change(s.db, s.auth, caller, new_email=body.new_email, now=s.now()))


@router.post("/confirmations/{challenge_id}", response_model=Confirmed,
             responses=access.RESPONSES | LOCKED | problem_example(
                 422, "wrong-code", "request refused", "wrong code, 4 attempts left",
                 "wrong, expired or already used code (reason in `type`)") | problem_example(
                 404, "not-found", "confirmation not found", "confirmation 'x' not found",
                 "no such pending change for this account"),
             summary="Confirm a pending change with its 6-digit code (5 minutes, 5 tries)")
async def confirm_change(request: Request, body: Code, challenge_id: str = Path(max_length=64),
                         caller: Caller = Depends(access.current_caller)) -> Confirmed:
    s = request.app.state
    purpose = await confirm.confirm(s.db, s.auth, caller, challenge_id=challenge_id, code=body.code, now=s.now())
    return Confirmed(confirmed=purpose)
