"""Pets: their virtual fences (at most 5 named circles), last position, and live tracking over SSE.

Live tracking polls rather than subscribing to the bus: the API may run in another process than the
bus consumers, and a Kafka consumer group per open browser tab would be far heavier than one primary-key
read of ``device_last_fix`` per stream per second; only when that moves are the new fixes read, through
the fixes table's (device_id, ts) index.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from api import fence_service as service
from api.access import customer_scope, stream_scope
from api.geofence_schemas import FenceCollection, FenceOut, PetFenceIn, PetPosition
from api.geofences import ERRORS, FenceId, feature
from storage import fixes
from storage import geofences as store
from vigil.errors import NotFound

router = APIRouter(prefix="/v1/pets/{pet_id}", tags=["pets"])
#: A pet tracker's device id (64 = ingest.topics.MAX_DEVICE_ID_LEN).
PetId = Annotated[str, Path(min_length=1, max_length=64, examples=["pet-0001"])]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: Poll period of the live stream, s; and a comment line this often keeps proxies from closing it.
STREAM_POLL_S = 1.0
STREAM_KEEPALIVE_S = 15.0
#: A stream ends after this long, s: 15 min, the life of an access token, so a stream outlives the
#: credential that opened it by at most that. The client reconnects with a fresh token and the last
#: event id (header, or ``?last_event_id=`` from a new EventSource) and misses nothing.
STREAM_MAX_S = 900.0


@router.get("/fences", response_model=FenceCollection, responses=ERRORS, summary="A pet's fences")
async def list_fences(request: Request, pet_id: PetId, owner: str | None = Depends(customer_scope)) -> FenceCollection:
    rows = await service.list_pet_fences(db=request.app.state.db, owner=owner, pet_id=pet_id)
    return FenceCollection(features=[feature(r) for r in rows], limit=len(rows), offset=0, next_offset=None)


@router.post("/fences", response_model=FenceOut, status_code=201, responses=ERRORS,
             summary="Add a fence (a named circle, 20 m – 50 km); a sixth is refused (too_many_fences)")
async def add_fence(request: Request, pet_id: PetId, body: PetFenceIn,
                    owner: str | None = Depends(customer_scope)) -> FenceOut:
    return feature(await service.add_pet_fence(db=request.app.state.db, owner=owner, pet_id=pet_id, feature=body))


@router.get("/fences/{fence_id}", response_model=FenceOut, responses=ERRORS, summary="One of a pet's fences")
async def get_fence(request: Request, pet_id: PetId, fence_id: FenceId,
                    owner: str | None = Depends(customer_scope)) -> FenceOut:
    return feature(await service.get_pet_fence(db=request.app.state.db, owner=owner, pet_id=pet_id,
                                               fence_id=fence_id))


@router.put("/fences/{fence_id}", response_model=FenceOut, responses=ERRORS, summary="Replace a pet's fence")
async def replace_fence(request: Request, pet_id: PetId, fence_id: FenceId, body: PetFenceIn,
                        owner: str | None = Depends(customer_scope)) -> FenceOut:
    return feature(await service.update_pet_fence(db=request.app.state.db, owner=owner, pet_id=pet_id,
                                                  fence_id=fence_id, feature=body))


@router.delete("/fences/{fence_id}", status_code=204, responses=ERRORS, summary="Delete a pet's fence")
async def delete_fence(request: Request, pet_id: PetId, fence_id: FenceId,
                       owner: str | None = Depends(customer_scope)) -> Response:
    await service.delete_pet_fence(db=request.app.state.db, owner=owner, pet_id=pet_id, fence_id=fence_id)
    return Response(status_code=204)


@router.get("/position", response_model=PetPosition, responses=ERRORS, summary="A pet's last known position")
async def position(request: Request, pet_id: PetId, owner: str | None = Depends(customer_scope)) -> PetPosition:
    db = request.app.state.db
    await service.pet(db=db, owner=owner, pet_id=pet_id)
    pos = await fixes.last_position(db, pet_id, kind="pet")
    if pos is None:
        raise NotFound("pet position", pet_id)
    return PetPosition(pet_id=pet_id, ts=pos.ts, age_s=round((request.app.state.now() - pos.ts).total_seconds(), 3),
                       lat=pos.lat, lon=pos.lon, accuracy_m=pos.accuracy_m, speed_kmh=pos.speed_kmh)


SSE_EXAMPLE = ': tracking\n\nid: 1767261600000\nevent: fix\ndata: {"ts": "2026-01-01T10:00:00+00:00", ' \
              '"lat": 45.5, "lon": 9.2, "accuracy_m": 8.0, "speed_kmh": 3.1}\n\n'


@router.get("/track/stream", response_class=StreamingResponse,
            responses={**ERRORS, 200: {"content": {"text/event-stream": {"schema": {"type": "string"},
                                                                          "example": SSE_EXAMPLE}},
                                       "description": "the event stream; ends after 15 min (reconnect)"}},
            summary="Live tracking: the pet's new fixes as server-sent events (event: fix); the token may "
                    "also come as ?access_token= (EventSource sends no headers)")
async def track(request: Request, pet_id: PetId, owner: str | None = Depends(stream_scope),
                last_event_id: str | None = Header(None, description="resume after this fix (its ts, UTC ms)"),
                resume_after: str | None = Query(None, alias="last_event_id", max_length=32, description=(
                    "the same as the Last-Event-ID header, for a new EventSource (which cannot send it)"))
                ) -> StreamingResponse:
    db = request.app.state.db
    found = await service.pet(db=db, owner=owner, pet_id=pet_id)
    last_event_id = last_event_id or resume_after
    # An id is a fix's ts in UTC ms; 14 ASCII digits reach year 5138, so the datetime cannot overflow.
    if last_event_id is not None and re.fullmatch(r"[0-9]{1,14}", last_event_id):
        cursor = _EPOCH + dt.timedelta(milliseconds=int(last_event_id))
    else:
        cursor = await store.last_fix_ts(db, found.id) or _EPOCH
    return StreamingResponse(_fix_events(request, found.id, cursor), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _fix_events(request: Request, code: int, cursor: dt.datetime):
    db = request.app.state.db
    yield ": tracking\n\n"
    idle = 0.0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_MAX_S
    while loop.time() < deadline and not await request.is_disconnected():
        newest = await store.last_fix_ts(db, code)
        rows = await store.fixes_after(db, code, cursor) if newest is not None and newest > cursor else []
        for ts, lat, lon, accuracy_m, speed_kmh in rows:
            ms = (ts - _EPOCH) // dt.timedelta(milliseconds=1)
            data = json.dumps({"ts": ts.isoformat(), "lat": lat, "lon": lon, "accuracy_m": accuracy_m,
                               "speed_kmh": speed_kmh})
            yield f"id: {ms}\nevent: fix\ndata: {data}\n\n"
            cursor = ts
        if rows:
            idle = 0.0
            continue
        await asyncio.sleep(max(0.0, min(STREAM_POLL_S, deadline - loop.time())))
        idle += STREAM_POLL_S
        if idle >= STREAM_KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"
