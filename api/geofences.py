"""Car geofences (CRUD, GeoJSON Features in and out) and the geofence events of a customer's devices."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from api import access
from api import fence_service as service
from api.access import customer_scope
from api.geofence_schemas import FenceCollection, FenceIn, FenceOut, GeofenceEvent, GeofenceEventPage
from api.schemas import Moment
from geofence.scope import anti_flap_of

router = APIRouter(tags=["geofences"])
#: A fence id (a PostgreSQL bigint: larger values can name no fence and are refused as invalid).
FenceId = Annotated[int, Path(ge=1, le=2**63 - 1, examples=[1])]
NOT_FOUND = access.problem_example(404, "not-found", "geofence not found", "geofence '7' not found",
                                   "no such fence, car or pet, or not the caller's")
ERRORS = access.RESPONSES | NOT_FOUND | access.problem_example(
    422, "invalid-geometry", "request refused", "geometry must be a GeoJSON Polygon, or a Point with radius_m",
    "refused input; `reason` says why (e.g. invalid_geometry)")


def feature(row: dict) -> FenceOut:
    """A stored fence as a GeoJSON Feature; ``anti_flap`` shows the effective settings."""
    af = anti_flap_of(row["anti_flap"])
    props = {"name": row["name"], "scope": row["scope"], "owner": row["owner"],
             "anti_flap": dataclasses.asdict(af),
             "created": row["created_at"].isoformat(), "updated": row["updated_at"].isoformat()}
    if row["radius_m"] is not None:
        props["radius_m"] = row["radius_m"]
    if row["scope"] == "vehicle":
        props["vehicle_id"] = row["device"]
    if row["scope"] == "pet":
        props["pet_id"] = row["device"]
    return FenceOut(id=row["id"], geometry=row["geometry"], properties=props)


@router.post("/v1/geofences", response_model=FenceOut, status_code=201, responses=ERRORS,
             summary="Create a car geofence (Polygon, or Point + radius_m)")
async def create(request: Request, body: FenceIn, owner: str | None = Depends(customer_scope)) -> FenceOut:
    return feature(await service.create_fence(db=request.app.state.db, owner=owner, feature=body))


@router.get("/v1/geofences", response_model=FenceCollection, responses=access.RESPONSES,
            summary="The customer's car geofences")
async def list_all(request: Request, owner: str | None = Depends(customer_scope),
                   limit: int = Query(100, ge=1, le=1000),
                   offset: int = Query(0, ge=0, le=1_000_000)) -> FenceCollection:
    rows = await service.list_fences(db=request.app.state.db, owner=owner, limit=limit + 1, offset=offset)
    return FenceCollection(features=[feature(r) for r in rows[:limit]], limit=limit, offset=offset,
                           next_offset=offset + limit if len(rows) > limit else None)


@router.get("/v1/geofences/{fence_id}", response_model=FenceOut, responses=ERRORS, summary="One car geofence")
async def get(request: Request, fence_id: FenceId, owner: str | None = Depends(customer_scope)) -> FenceOut:
    return feature(await service.get_fence(db=request.app.state.db, owner=owner, fence_id=fence_id))


@router.put("/v1/geofences/{fence_id}", response_model=FenceOut, responses=ERRORS,
            summary="Replace a car geofence's shape, name, scope or anti-flap settings")
async def replace(request: Request, fence_id: FenceId, body: FenceIn,
                  owner: str | None = Depends(customer_scope)) -> FenceOut:
    return feature(await service.update_fence(db=request.app.state.db, owner=owner, fence_id=fence_id, feature=body))


@router.delete("/v1/geofences/{fence_id}", status_code=204, responses=ERRORS, summary="Delete a car geofence")
async def delete(request: Request, fence_id: FenceId, owner: str | None = Depends(customer_scope)) -> Response:
    await service.delete_fence(db=request.app.state.db, owner=owner, fence_id=fence_id)
    return Response(status_code=204)


@router.get("/v1/geofence-events", response_model=GeofenceEventPage, responses=access.RESPONSES | NOT_FOUND,
            summary="Enter, exit and cross events of the customer's fences, oldest first; naming a device or "
                    "fence that is not the caller's is 404")
async def events(
    request: Request, owner: str | None = Depends(customer_scope),
    device: str | None = Query(None, min_length=1, max_length=64, description="only this device's events"),
    fence: int | None = Query(None, ge=1, le=2**63 - 1, description="only this fence's events"),
    start: Moment | None = Query(None, alias="from"), end: Moment | None = Query(None, alias="to"),
    limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=1_000_000),
) -> GeofenceEventPage:
    rows = await service.events(db=request.app.state.db, owner=owner, device=device, fence_id=fence, start=start,
                                end=end, limit=limit + 1, offset=offset)
    return GeofenceEventPage(items=[GeofenceEvent(**r) for r in rows[:limit]], limit=limit, offset=offset,
                             next_offset=offset + limit if len(rows) > limit else None)
