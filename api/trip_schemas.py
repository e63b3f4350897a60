"""Response models of the trips and driving-style routes."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


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
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [], "limit": 50, "offset": 0,
                                                               "next_offset": None}]})

    items: list[TripSummary]
    limit: int
    offset: int
    next_offset: int | None


class TripDetail(TripSummary):
    line: dict = Field(description="GeoJSON LineString of the trip's fixes")
    driving_events: list[dict]


class DrivingStyle(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "vehicle_id": "car-00001", "start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z", "trips": 42,
        "distance_km": 512.3, "score": 87.0, "sub_scores": {"smoothness": 92.5, "speed": 81.0, "time_of_day": 100.0},
        "events": {"harsh_acceleration": 3, "harsh_braking": 2, "harsh_cornering": 1, "speeding": 4, "crash": 0},
        "events_per_100km": {"harsh_acceleration": 0.59, "harsh_braking": 0.39, "harsh_cornering": 0.2,
                             "speeding": 0.78, "crash": 0.0},
        "km_by_road_class": {"urban": 301.2, "extra_urban": 160.0, "highway": 51.1},
        "road_class_source": "speed_bands", "night_share": 0.02}]})

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
