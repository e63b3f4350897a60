"""Find-Vehicle, second part: the walking route from the customer to the car."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from api import access, find_service
from api.find_schemas import FindVehicleWalk, LineString, WalkingRoute
from api.vehicles import _shape

router = APIRouter(prefix="/v1/vehicles", tags=["vehicles"])


@router.get(
    "/{vehicle_id}/find",
    response_model=FindVehicleWalk,
    summary="Find-Vehicle: the car's last fix and the shortest walking route to it",
    responses=access.RESPONSES | access.problem_example(
        404, "not-found", "vehicle not found", "vehicle 'car-00001' not found",
        "no such car, not the caller's, or it has sent no fix yet") | {
        422: {"description": "from_lat/from_lon missing, not finite or out of range"}},
)
async def find_vehicle(
    request: Request, vehicle_id: access.DeviceId, owner: str | None = Depends(access.customer_scope),
    from_lat: float = Query(..., ge=-90, le=90, allow_inf_nan=False, description="customer's latitude, degrees"),
    from_lon: float = Query(..., ge=-180, le=180, allow_inf_nan=False, description="customer's longitude, degrees"),
) -> FindVehicleWalk:
    state = request.app.state
    now = state.now()
    found = await find_service.find_vehicle(
        db=state.db, graph=state.walk_graph, vehicle_id=vehicle_id, from_lat=from_lat, from_lon=from_lon,
        speed_kmh=state.walk_speed_kmh, now=now, owner=owner)
    walk = found.walk
    return FindVehicleWalk(
        vehicle=_shape(found.position, now), from_lat=from_lat, from_lon=from_lon,
        route=WalkingRoute(method=walk.method, reason=walk.reason, reason_detail=walk.reason_detail,
                           distance_m=walk.distance_m, walking_time_s=walk.walking_time_s,
                           walk_speed_kmh=state.walk_speed_kmh, from_snap_m=walk.from_snap_m,
                           to_snap_m=walk.to_snap_m, geometry=LineString(coordinates=walk.coordinates)),
    )
