"""Response models of the public API (documented in OpenAPI with examples)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    # pydantic would also take a bare number as Unix time; the document promises RFC 3339 only.
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("expected an RFC 3339 date-time with its offset, e.g. 2026-05-04T09:00:00Z")
    return value


#: A moment given by a caller (query parameter): RFC 3339 with an explicit offset.
Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


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
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"device_id": "car-00001", "ts": "2026-05-04T09:00:00Z", "age_s": 4.2, "lat": 60.1699,
                   "lon": 24.9384, "accuracy_m": 5.0, "speed_kmh": 32.5, "heading_deg": 270.0, "ignition": True}],
        "limit": 50, "offset": 0, "next_offset": None}]})

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
    """RFC 9457 problem details; ``type`` is a stable URI per kind of problem. Some kinds add members:
    ``errors`` (invalid-request), ``error`` (invalid-grant, as RFC 6749), ``reason``, ``retry_after_s``."""
    type: str = Field(examples=["https://vigil.dev/problems/not-found"])
    title: str
    status: int
    detail: str = ""
