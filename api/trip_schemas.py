"""Response models of the trips and driving-style routes."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class SubScores(BaseModel):
    smoothness: float = Field(description="0-100, from harsh acceleration, braking, cornering", examples=[92.5])
    speed: float = Field(description="0-100, from speeding excess", examples=[100.0])
    time_of_day: float = Field(description="0-100, from the share driven at night", examples=[100.0])


class TripSummary(BaseModel):
    id: int
    vehicle_id: str = Field(examples=["car-00001"])
    start: dt.datetime
    end: dt.datetime
    start_lat: float
    start_lon: float
    end_lat: float
    end_lon: float
    distance_m: float = Field(description="geodesic, m", examples=[5230.4])
    duration_s: float
    moving_s: float
    idle_s: float
    max_speed_kmh: float
    mean_speed_kmh: float = Field(description="distance / moving time")
    night_share: float = Field(description="share of distance driven 23:00-05:00 local time")
    distance_by_road_class_m: dict[str, float]
    road_class_source: str = Field(description="speed_bands: estimated from speed, no road graph",
                                   examples=["speed_bands"])
    events: dict[str, int] = Field(description="driving events by kind")
    score: float = Field(description="0-100, docs/driving-score.md", examples=[87.0])
    sub_scores: SubScores
    processed_at: dt.datetime = Field(description="when the trip was stored, i.e. appeared in the API")


class TripPage(BaseModel):
    items: list[TripSummary]
    limit: int
    offset: int
    next_offset: int | None


class TripDetail(TripSummary):
    line: dict = Field(description="GeoJSON LineString of the trip's fixes")
    driving_events: list[dict]


class DrivingStyle(BaseModel):
    vehicle_id: str
    start: dt.datetime | None
    end: dt.datetime | None
    trips: int
    distance_km: float
    score: float | None = Field(description="0-100 on the period's summed distance and events; null without trips")
    sub_scores: SubScores | None
    events: dict[str, int]
    events_per_100km: dict[str, float]
    km_by_road_class: dict[str, float]
    road_class_source: str
    night_share: float
