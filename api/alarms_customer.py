"""Customer routes: their alarms and "it was me / false alarm", scoped to the logged-in caller's devices.

Another customer's alarm is 404, exactly like a missing one. Operators may read one alarm (everything is
theirs) but not give feedback, which is the customer's word (403).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from alarms import operations
from api import access
from api.access import customer_only, customer_scope
from api.alarm_schemas import AlarmDetail, AlarmOut, CustomerAlarms, FeedbackRequest
from api.alarms import ERRORS, NOT_FOUND, AlarmId

router = APIRouter(prefix="/v1/alarms", tags=["customer alarms"])


@router.get("", response_model=CustomerAlarms, responses=access.CUSTOMER_RESPONSES | NOT_FOUND,
            summary="My devices and their alarms, newest first (customers; 404 without any device)")
async def my_alarms(request: Request, limit: int = Query(200, ge=1, le=5000),
                    owner: str = Depends(customer_only)) -> dict:
    return await operations.customer_history(db=request.app.state.db, owner=owner, limit=limit)


@router.get("/{alarm_id}", response_model=AlarmDetail, responses=access.RESPONSES | NOT_FOUND,
            summary="One of my alarms")
async def my_alarm(request: Request, alarm_id: AlarmId, owner: str | None = Depends(customer_scope)) -> dict:
    return await operations.get(db=request.app.state.db, alarm_id=alarm_id, owner=owner)


@router.post("/{alarm_id}/feedback", response_model=AlarmOut, responses=access.CUSTOMER_RESPONSES | ERRORS,
             summary="\"It was me\" / \"false alarm\": recorded and shown to the centre (customers)")
async def feedback(request: Request, alarm_id: AlarmId, body: FeedbackRequest,
                   owner: str = Depends(customer_only)) -> dict:
    return await operations.feedback(db=request.app.state.db, alarm_id=alarm_id, owner=owner, kind=body.feedback,
                                     text=body.text, now=request.app.state.now())
