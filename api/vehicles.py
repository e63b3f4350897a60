"""Find-Vehicle, first part: the last known position of a car."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request

from api import access
from api.schemas import VehiclePage, VehiclePosition
from storage import fixes
from vigil.errors import NotFound

router = APIRouter(prefix="/v1/vehicles", tags=["vehicles"])


def _shape(pos: fixes.Position, now: dt.datetime) -> VehiclePosition:
    return VehiclePosition(
        device_id=pos.device_id,
        ts=pos.ts,
        age_s=round((now - pos.ts).total_seconds(), 3),
        lat=pos.lat,
        lon=pos.lon,
        accuracy_m=pos.accuracy_m,
        speed_kmh=pos.speed_kmh,
        heading_deg=pos.heading_deg,
        ignition=pos.ignition,
    )


@router.get("", response_model=VehiclePage, responses=access.RESPONSES,
            summary="Cars with their last known position (a customer's own; every car for an operator)")
async def list_vehicles(
    request: Request, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000),
    owner: str | None = Depends(access.customer_scope),
) -> VehiclePage:
    rows = await fixes.last_positions(request.app.state.db, kind="car", limit=limit + 1, offset=offset, owner=owner)
    now = request.app.state.now()
    items = [_shape(p, now) for p in rows[:limit]]
    return VehiclePage(items=items, limit=limit, offset=offset, next_offset=offset + limit if len(rows) > limit else None)


@router.get(
    "/{vehicle_id}/position",
    response_model=VehiclePosition,
    summary="Last known position of a car (Find-Vehicle)",
    responses=access.RESPONSES | access.problem_example(
        404, "not-found", "vehicle position not found", "vehicle position 'car-00001' not found",
        "no such car, not the caller's, or it has sent no fix yet"),
)
async def position(request: Request, vehicle_id: access.DeviceId,
                   owner: str | None = Depends(access.customer_scope)) -> VehiclePosition:
    pos = await fixes.last_position(request.app.state.db, vehicle_id, kind="car", owner=owner)
    if pos is None:
        raise NotFound("vehicle position", vehicle_id)
    return _shape(pos, request.app.state.now())
