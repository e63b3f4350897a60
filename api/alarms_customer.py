"""Customer routes: their alarms and "it was me / false alarm".

The customer id is in the path for now; the accounts work (issue 7) replaces it with the logged-in caller.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from alarms import operations
from api.alarm_schemas import AlarmDetail, AlarmOut, CustomerAlarms, FeedbackRequest
from api.alarms import ERRORS

router = APIRouter(prefix="/v1/customers/{customer}", tags=["customer alarms"])


@router.get("/alarms", response_model=CustomerAlarms, responses=ERRORS, summary="My devices and their alarms")
async def my_alarms(request: Request, customer: str, limit: int = Query(200, ge=1, le=5000)) -> dict:
    return await operations.customer_history(db=request.app.state.db, owner=customer, limit=limit)


@router.get("/alarms/{alarm_id}", response_model=AlarmDetail, responses=ERRORS, summary="One of my alarms")
async def my_alarm(request: Request, customer: str, alarm_id: int) -> dict:
    return await operations.get(db=request.app.state.db, alarm_id=alarm_id, owner=customer)


@router.post("/alarms/{alarm_id}/feedback", response_model=AlarmOut, responses=ERRORS,
             summary="\"It was me\" / \"false alarm\": recorded and shown to the centre")
async def feedback(request: Request, customer: str, alarm_id: int, body: FeedbackRequest) -> dict:
    return await operations.feedback(db=request.app.state.db, alarm_id=alarm_id, owner=customer, kind=body.feedback,
                                     text=body.text, now=request.app.state.now())
