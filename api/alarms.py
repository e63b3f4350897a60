"""Assistance-centre routes: the queue, one alarm, actions, histories and the live stream (SSE).

Operators only (``access.operator_only``; a customer gets 403). The operator recorded in the audit trail is
the logged-in caller's username, never a name from the request: an ``operator`` field an older client still
sends is ignored.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from alarms import operations
from alarms.feed import AlarmFeed
from api import access
from api.access import Caller, operator_only, stream_operator
from api.alarm_schemas import (AlarmDetail, AlarmOut, AssignRequest, CustomerAlarms, DeviceAlarms, NoteRequest,
                               ResolveRequest)

router = APIRouter(prefix="/v1/operator", tags=["assistance centre"])
NOT_FOUND = access.problem_example(404, "not-found", "alarm not found", "alarm '42' not found",
                                   "no such alarm (or, on a customer route, not the caller's)")
ERRORS = NOT_FOUND | access.problem_example(
    409, "alarm-claimed", "conflict with the current state", "alarm 42 is held by op-2",
    "the alarm's state forbids it (resolved, claimed by another); `reason` says which")
OPERATOR = access.OPERATOR_RESPONSES | ERRORS
#: An alarm id (a PostgreSQL bigint: larger values can name no alarm and are refused as invalid).
AlarmId = Annotated[int, Path(ge=1, le=2**63 - 1, examples=[42])]
#: A stream ends after this long, s: 15 min, the life of an access token (see api/pets.py); the client
#: reconnects with a fresh token and ``Last-Event-ID`` (or ``?after=``) and misses nothing.
STREAM_MAX_S = 900.0


def _now(request: Request):
    return request.app.state.now()


QUEUE_EXAMPLE = [{"id": 42, "device_id": "home-0001", "kind": "home", "owner": "cust-1", "type": "water_leak",
                  "severity": "major", "state": "active_unack", "active": True, "acknowledged": False, "count": 1,
                  "first_ts": "2026-05-04T09:00:00Z", "last_ts": "2026-05-04T09:00:00Z",
                  "raised_at": "2026-05-04T09:00:01Z", "escalation_level": 0, "stale": False,
                  "customer_name": "Aino Virtanen", "address": {"street": "Unioninkatu 29", "postal_code": "00170",
                                                                "city": "Helsinki", "country": "FI",
                                                                "location": {"lat": 60.1712, "lon": 24.9507}}}]


@router.get("/alarms", response_model=list[AlarmOut],
            responses=access.OPERATOR_RESPONSES | {200: {"content": {"application/json": {"example": QUEUE_EXAMPLE}}}},
            summary="The queue: open alarms, most severe then oldest first")
async def queue(request: Request, include_resolved: bool = False, limit: int = Query(100, ge=1, le=1000),
                offset: int = Query(0, ge=0, le=1_000_000), caller: Caller = Depends(operator_only)) -> list[dict]:
    return await operations.queue(db=request.app.state.db, include_resolved=include_resolved, limit=limit,
                                  offset=offset)


@router.get("/alarms/stream", response_class=StreamingResponse,
            responses=access.OPERATOR_RESPONSES | {200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}, "example":
                            'id: 7\nevent: alarm\ndata: {"alarm_id": 42, "kind": "raised"}\n\n'}},
                "description": "the event stream; ends after 15 min (reconnect)"}},
            summary="Live stream (Server-Sent Events) of new and changed alarms; the token may also come as "
                    "?access_token= (EventSource sends no headers)",
            description="Each event's `id` is an audit id. Reconnect with `Last-Event-ID` (or `?after=`) to resume "
                        "with nothing missed; without either, the stream starts with changes from now on.")
async def stream(request: Request, last_event_id: str | None = Header(None),
                 after: int | None = Query(None, ge=0, le=2**63 - 1),
                 caller: Caller = Depends(stream_operator)) -> StreamingResponse:
    db = request.app.state.db
    feed: AlarmFeed = request.app.state.alarm_feed
    feed.start()
    # An audit id is a bigint: 18 digits always fit.
    if after is None and last_event_id is not None and re.fullmatch(r"[0-9]{1,18}", last_event_id):
        after = int(last_event_id)
    cursor = await operations.last_audit_id(db=db) if after is None else after

    async def events():
        nonlocal cursor
        yield ": vigil alarm stream\n\n"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_MAX_S
        while loop.time() < deadline and not await request.is_disconnected():
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


@router.get("/alarms/{alarm_id}", response_model=AlarmDetail, responses=OPERATOR,
            summary="One alarm with its audit trail")
async def get_alarm(request: Request, alarm_id: AlarmId, caller: Caller = Depends(operator_only)) -> dict:
    return await operations.get(db=request.app.state.db, alarm_id=alarm_id)


@router.post("/alarms/{alarm_id}/claim", response_model=AlarmOut, responses=OPERATOR, summary="Take the alarm")
async def claim(request: Request, alarm_id: AlarmId, caller: Caller = Depends(operator_only)) -> dict:
    return await operations.claim(db=request.app.state.db, alarm_id=alarm_id, operator=caller.username,
                                  now=_now(request))


@router.post("/alarms/{alarm_id}/assign", response_model=AlarmOut, responses=OPERATOR,
             summary="Give it to an operator")
async def assign(request: Request, alarm_id: AlarmId, body: AssignRequest,
                 caller: Caller = Depends(operator_only)) -> dict:
    return await operations.assign(db=request.app.state.db, alarm_id=alarm_id, operator=caller.username,
                                   assignee=body.assignee, now=_now(request))


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmOut, responses=OPERATOR,
             summary="Acknowledge: the centre has it in charge; escalation stops")
async def acknowledge(request: Request, alarm_id: AlarmId, caller: Caller = Depends(operator_only)) -> dict:
    return await operations.acknowledge(db=request.app.state.db, alarm_id=alarm_id, operator=caller.username,
                                        now=_now(request))


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmOut, responses=OPERATOR,
             summary="Clear: the condition is over; escalation stops")
async def clear(request: Request, alarm_id: AlarmId, caller: Caller = Depends(operator_only)) -> dict:
    return await operations.clear(db=request.app.state.db, alarm_id=alarm_id, operator=caller.username,
                                  now=_now(request))


@router.post("/alarms/{alarm_id}/notes", response_model=AlarmOut, responses=OPERATOR, summary="Add a note")
async def add_note(request: Request, alarm_id: AlarmId, body: NoteRequest,
                   caller: Caller = Depends(operator_only)) -> dict:
    return await operations.add_note(db=request.app.state.db, alarm_id=alarm_id, operator=caller.username,
                                     text=body.text, now=_now(request))


@router.post("/alarms/{alarm_id}/resolve", response_model=AlarmOut, responses=OPERATOR,
             summary="Resolve with an outcome (real emergency, false alarm, test, no answer)")
async def resolve(request: Request, alarm_id: AlarmId, body: ResolveRequest,
                  caller: Caller = Depends(operator_only)) -> dict:
    return await operations.resolve(db=request.app.state.db, alarm_id=alarm_id, operator=caller.username,
                                    outcome=body.outcome, note=body.note, now=_now(request))


@router.get("/devices/{device_id}/alarms", response_model=DeviceAlarms, responses=OPERATOR,
            summary="A device's alarm history, arming state and last contact")
async def device_history(request: Request, device_id: access.DeviceId, limit: int = Query(200, ge=1, le=5000),
                         caller: Caller = Depends(operator_only)) -> dict:
    return await operations.device_history(db=request.app.state.db, device_id=device_id, limit=limit)


@router.get("/customers/{customer}/alarms", response_model=CustomerAlarms, responses=OPERATOR,
            summary="A customer's profile (address, contacts), devices and alarm history")
async def customer_history(request: Request, customer: Annotated[str, Path(min_length=1, max_length=64,
                                                                            examples=["cust-1"])],
                           limit: int = Query(200, ge=1, le=5000), caller: Caller = Depends(operator_only)) -> dict:
    return await operations.customer_history(db=request.app.state.db, owner=customer, limit=limit)
