"""Assistance-centre routes: the queue, one alarm, actions, histories and the live stream (SSE).

The operator id comes from the request body for now; the accounts work (issue 7) will take it from the
logged-in caller instead.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from alarms import operations
from alarms.feed import AlarmFeed
from api.alarm_schemas import (AlarmDetail, AlarmOut, AssignRequest, CustomerAlarms, DeviceAlarms, NoteRequest,
                               OperatorAction, ResolveRequest)
from api.schemas import Problem

router = APIRouter(prefix="/v1/operator", tags=["assistance centre"])
ERRORS = {404: {"model": Problem, "description": "no such alarm"},
          409: {"model": Problem, "description": "the alarm's state forbids it (resolved, claimed by another)"}}


def _now(request: Request):
    return request.app.state.now()


@router.get("/alarms", response_model=list[AlarmOut], summary="The queue: open alarms, most severe then oldest first")
async def queue(request: Request, include_resolved: bool = False, limit: int = Query(100, ge=1, le=1000),
                offset: int = Query(0, ge=0)) -> list[dict]:
    return await operations.queue(db=request.app.state.db, include_resolved=include_resolved, limit=limit,
                                  offset=offset)


@router.get("/alarms/stream", summary="Live stream (Server-Sent Events) of new and changed alarms",
            description="Each event's `id` is an audit id. Reconnect with `Last-Event-ID` (or `?after=`) to resume "
                        "with nothing missed; without either, the stream starts with changes from now on.")
async def stream(request: Request, last_event_id: str | None = Header(None),
                 after: int | None = Query(None, ge=0)) -> StreamingResponse:
    db = request.app.state.db
    feed: AlarmFeed = request.app.state.alarm_feed
    feed.start()
    if after is None and last_event_id is not None and last_event_id.isdigit():
        after = int(last_event_id)
    cursor = await operations.last_audit_id(db=db) if after is None else after

    async def events():
        nonlocal cursor
        yield ": vigil alarm stream\n\n"
        while not await request.is_disconnected():
            seen = feed.version
            rows = await operations.audit_after(db=db, cursor=cursor)
            for audit_id, body in rows:
                cursor = audit_id
                yield f"id: {audit_id}\nevent: alarm\ndata: {json.dumps(body, default=str)}\n\n"
            if not rows:
                await feed.wait(seen)
                yield ": keep-alive\n\n" if feed.version == seen else ""

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/alarms/{alarm_id}", response_model=AlarmDetail, responses=ERRORS, summary="One alarm with its audit trail")
async def get_alarm(request: Request, alarm_id: int) -> dict:
    return await operations.get(db=request.app.state.db, alarm_id=alarm_id)


@router.post("/alarms/{alarm_id}/claim", response_model=AlarmOut, responses=ERRORS, summary="Take the alarm")
async def claim(request: Request, alarm_id: int, body: OperatorAction) -> dict:
    return await operations.claim(db=request.app.state.db, alarm_id=alarm_id, operator=body.operator, now=_now(request))


@router.post("/alarms/{alarm_id}/assign", response_model=AlarmOut, responses=ERRORS, summary="Give it to an operator")
async def assign(request: Request, alarm_id: int, body: AssignRequest) -> dict:
    return await operations.assign(db=request.app.state.db, alarm_id=alarm_id, operator=body.operator,
                                   assignee=body.assignee, now=_now(request))


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmOut, responses=ERRORS,
             summary="Acknowledge: the centre has it in charge; escalation stops")
async def acknowledge(request: Request, alarm_id: int, body: OperatorAction) -> dict:
    return await operations.acknowledge(db=request.app.state.db, alarm_id=alarm_id, operator=body.operator,
                                        now=_now(request))


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmOut, responses=ERRORS,
             summary="Clear: the condition is over; escalation stops")
async def clear(request: Request, alarm_id: int, body: OperatorAction) -> dict:
    return await operations.clear(db=request.app.state.db, alarm_id=alarm_id, operator=body.operator, now=_now(request))


@router.post("/alarms/{alarm_id}/notes", response_model=AlarmOut, responses=ERRORS, summary="Add a note")
async def add_note(request: Request, alarm_id: int, body: NoteRequest) -> dict:
    return await operations.add_note(db=request.app.state.db, alarm_id=alarm_id, operator=body.operator,
                                     text=body.text, now=_now(request))


@router.post("/alarms/{alarm_id}/resolve", response_model=AlarmOut, responses=ERRORS,
             summary="Resolve with an outcome (real emergency, false alarm, test, no answer)")
async def resolve(request: Request, alarm_id: int, body: ResolveRequest) -> dict:
    return await operations.resolve(db=request.app.state.db, alarm_id=alarm_id, operator=body.operator,
                                    outcome=body.outcome, note=body.note, now=_now(request))


@router.get("/devices/{device_id}/alarms", response_model=DeviceAlarms, responses=ERRORS,
            summary="A device's alarm history, arming state and last contact")
async def device_history(request: Request, device_id: str, limit: int = Query(200, ge=1, le=5000)) -> dict:
    return await operations.device_history(db=request.app.state.db, device_id=device_id, limit=limit)


@router.get("/customers/{customer}/alarms", response_model=CustomerAlarms, responses=ERRORS,
            summary="A customer's devices and alarm history")
async def customer_history(request: Request, customer: str, limit: int = Query(200, ge=1, le=5000)) -> dict:
    return await operations.customer_history(db=request.app.state.db, owner=customer, limit=limit)
