"""Response models of the public API (documented in OpenAPI with examples)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class VehiclePosition(BaseModel):
    device_id: str = Field(examples=["car-00001"])
    ts: dt.datetime = Field(description="time of the fix, UTC")
    age_s: float = Field(description="seconds between the fix and the answer", examples=[4.2])
    lat: float = Field(examples=[60.1699])
    lon: float = Field(examples=[24.9384])
    accuracy_m: float | None = Field(description="reported horizontal accuracy, m", examples=[5.0])
    speed_kmh: float | None = Field(examples=[32.5])
    heading_deg: float | None = Field(description="0 = north, clockwise", examples=[270.0])
    ignition: bool | None = None


class VehiclePage(BaseModel):
    items: list[VehiclePosition]
    limit: int
    offset: int
    next_offset: int | None


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    database: str
    fixes_storage: str = Field(description="timescaledb or native", examples=["native"])
    dead_letters: dict[str, int] = Field(description="stored dead letters by reason")
    counters: dict[str, dict[str, float]] = Field(description="this process's counters and gauges")


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str = ""
