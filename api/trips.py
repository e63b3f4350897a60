"""Trips and driving style of a car: each trip once processed, with its line, events and score."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from api import access
from api.schemas import Moment
from api.trip_schemas import DrivingStyle, SubScores, TripDetail, TripPage, TripSummary
from storage import trips as trip_store
from trips import TripConfig
from trips.period import period_style
from vigil.errors import NotFound

router = APIRouter(tags=["trips"])
NOT_FOUND = access.RESPONSES | access.problem_example(
    404, "not-found", "vehicle not found", "vehicle 'car-00001' not found",
    "no such car or trip, or not the caller's")
#: Trip ids are PostgreSQL bigints.
TripId = Annotated[int, Path(ge=1, le=2**63 - 1, examples=[1])]


def _summary(row: dict) -> TripSummary:
    return TripSummary(
        id=row["id"], vehicle_id=row["device_id"], start=row["start_ts"], end=row["end_ts"],
        start_lat=row["start_lat"], start_lon=row["start_lon"], end_lat=row["end_lat"], end_lon=row["end_lon"],
        distance_m=round(row["distance_m"], 1), duration_s=row["duration_s"], moving_s=row["moving_s"],
        idle_s=row["idle_s"], max_speed_kmh=round(row["max_speed_kmh"], 1),
        mean_speed_kmh=round(row["mean_speed_kmh"], 1),
        night_share=round(row["night_m"] / row["distance_m"], 4) if row["distance_m"] else 0.0,
        distance_by_road_class_m={"urban": row["urban_m"], "extra_urban": row["extra_urban_m"],
                                  "highway": row["highway_m"]},
        road_class_source=row["road_class_source"], events=row["event_counts"],
        score=round(row["score"], 1),
        sub_scores=SubScores(smoothness=round(row["score_smoothness"], 1), speed=round(row["score_speed"], 1),
                             time_of_day=round(row["score_time_of_day"], 1)),
        processed_at=row["processed_at"],
    )


async def _require_car(request: Request, vehicle_id: str, owner: str | None) -> None:
    async with request.app.state.db.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s AND kind = 'car'"
                                 " AND (%s::text IS NULL OR owner = %s)", (vehicle_id, owner, owner))
        if await cur.fetchone() is None:
            raise NotFound("vehicle", vehicle_id)


@router.get("/v1/vehicles/{vehicle_id}/trips", response_model=TripPage, responses=NOT_FOUND,
            summary="A car's processed trips, oldest first")
async def list_trips(
    request: Request, vehicle_id: access.DeviceId, start: Moment | None = Query(None, alias="from"),
    end: Moment | None = Query(None, alias="to"), limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000), owner: str | None = Depends(access.customer_scope),
) -> TripPage:
    await _require_car(request, vehicle_id, owner)
    rows = await trip_store.list_trips(request.app.state.db, vehicle_id, start=start, end=end,
                                       limit=limit + 1, offset=offset)
    return TripPage(items=[_summary(r) for r in rows[:limit]], limit=limit, offset=offset,
                    next_offset=offset + limit if len(rows) > limit else None)


@router.get("/v1/trips/{trip_id}", response_model=TripDetail, responses=NOT_FOUND,
            summary="One trip: metrics, GeoJSON line and driving events")
async def get_trip(request: Request, trip_id: TripId,
                   owner: str | None = Depends(access.customer_scope)) -> TripDetail:
    found = await trip_store.get_trip(request.app.state.db, trip_id, owner=owner)
    if found is None:
        raise NotFound("trip", str(trip_id))
    row, events, line = found
    return TripDetail(
        **_summary(row).model_dump(),
        line={"type": "LineString", "coordinates": [list(p) for p in line]},
        driving_events=[{"ts": e["ts"], "lat": e["lat"], "lon": e["lon"], "type": e["type"],
                         "severity": e["severity"], "value": e["value"], "duration_s": e["duration_s"]}
                        for e in events],
    )


@router.get("/v1/vehicles/{vehicle_id}/driving-style", response_model=DrivingStyle, responses=NOT_FOUND,
            summary="Driving-style score of a period, with sub-scores and rates")
async def driving_style(
    request: Request, vehicle_id: access.DeviceId, start: Moment | None = Query(None, alias="from"),
    end: Moment | None = Query(None, alias="to"), owner: str | None = Depends(access.customer_scope),
) -> DrivingStyle:
    await _require_car(request, vehicle_id, owner)
    rows = await trip_store.list_trips(request.app.state.db, vehicle_id, start=start, end=end,
                                       limit=100_000, offset=0)
    return DrivingStyle(vehicle_id=vehicle_id, start=start, end=end, **period_style(rows, TripConfig()))
