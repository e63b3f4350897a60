"""Customer profiles: a customer reads and replaces its own (shared by the logins of that customer);
the assistance centre reads and writes anyone's (onboarding, corrections)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from api import access
from api.access import Caller, customer_only, operator_only
from api.profile_schemas import ProfileIn, ProfileOut
from customers import as_json, from_json, get_profile, put_profile
from customers.model import CUSTOMER_ID_MAX, TEXT_PATTERN

router = APIRouter(tags=["customer profiles"])
NOT_FOUND = access.problem_example(404, "not-found", "customer profile not found",
                                   "customer profile 'cust-1' not found", "no profile was set for this customer yet")
REFUSED = access.problem_example(422, "invalid-phone", "request refused",
                                 "phone: an international number, e.g. +358 40 123 4567",
                                 "a field is refused (reason in `type`, or `errors` for a malformed body)")
CustomerId = Annotated[str, Path(min_length=1, max_length=CUSTOMER_ID_MAX, pattern=TEXT_PATTERN, examples=["cust-1"])]


async def _put(request: Request, customer_id: str, body: ProfileIn, actor: str) -> dict:
    s = request.app.state
    return as_json(await put_profile(s.db, from_json(customer_id, body.model_dump()), actor=actor, now=s.now()))


@router.get("/v1/account/profile", response_model=ProfileOut, responses=access.CUSTOMER_RESPONSES | NOT_FOUND,
            summary="My customer profile: address and the contacts the centre calls (customers)")
async def my_profile(request: Request, owner: str = Depends(customer_only)) -> dict:
    return as_json(await get_profile(request.app.state.db, customer_id=owner))


@router.put("/v1/account/profile", response_model=ProfileOut, responses=access.CUSTOMER_RESPONSES | REFUSED,
            summary="Set my customer profile (replaces it whole; customers)")
async def set_my_profile(request: Request, body: ProfileIn, owner: str = Depends(customer_only),
                         caller: Caller = Depends(access.current_caller)) -> dict:
    return await _put(request, owner, body, caller.username)


@router.get("/v1/operator/customers/{customer}/profile", response_model=ProfileOut,
            responses=access.OPERATOR_RESPONSES | NOT_FOUND, summary="A customer's profile")
async def customer_profile(request: Request, customer: CustomerId, caller: Caller = Depends(operator_only)) -> dict:
    return as_json(await get_profile(request.app.state.db, customer_id=customer))


@router.put("/v1/operator/customers/{customer}/profile", response_model=ProfileOut,
            responses=access.OPERATOR_RESPONSES | REFUSED,
            summary="Set a customer's profile (onboarding; replaces it whole)")
async def set_customer_profile(request: Request, body: ProfileIn, customer: CustomerId,
                               caller: Caller = Depends(operator_only)) -> dict:
    return await _put(request, customer, body, caller.username)
