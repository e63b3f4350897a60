"""Request and response models of the geofence, pet-fence and geofence-event routes (GeoJSON Features).

Geometry is taken as a free mapping and checked by the geofence core, so degenerate shapes are refused
with the core's machine-readable reason (``invalid_geometry``, ``radius_out_of_range`` …) rather than a
schema error.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_POLYGON = {"type": "Polygon", "coordinates": [[[9.18, 45.46], [9.2, 45.46], [9.2, 45.475], [9.18, 45.475],
                                                [9.18, 45.46]]]}
_FENCE = {"type": "Feature", "id": 7, "geometry": _POLYGON, "properties": {
    "name": "ZTL Milano", "scope": "customer", "owner": "cust-1",
    "anti_flap": {"enabled": True, "hysteresis_m": 25.0, "min_fixes": 3, "min_dwell_ms": 0, "max_accuracy_m": 200.0},
    "created": "2026-01-01T10:00:00+00:00", "updated": "2026-01-01T10:00:00+00:00"}}
_EVENT = {"id": 1, "device": "car-00001", "fence_id": 7, "fence_name": "ZTL Milano", "kind": "enter",
          "ts": "2026-01-01T10:00:09Z", "since": "2026-01-01T10:00:00Z", "lat": 45.4642, "lon": 9.19,
          "notified": True}


def _json_number(value: object) -> object:
    # pydantic would take ``false`` as 0 and "3" as 3; the document promises JSON numbers (3.0 is an integer).
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError("expected a JSON number")
    return value


Integer = Annotated[int, BeforeValidator(_json_number)]


# strict: a JSON number must be a number, a string a string, a boolean a boolean.
class AntiFlapIn(BaseModel):
    """Overrides of the anti-flap defaults (docs/geofences.md); omitted fields keep the default."""
    model_config = ConfigDict(extra="forbid", strict=True)
    enabled: bool | None = None
    hysteresis_m: float | None = Field(None, description="m beyond the boundary before a fix counts as outside, and deeper than it before it counts as inside")
    min_fixes: Integer | None = Field(None, strict=False, description="consecutive fixes on the new side to confirm a transition")
    min_dwell_ms: Integer | None = Field(None, strict=False, description="time on the new side to confirm, ms")
    max_accuracy_m: float | None = Field(None, description="fixes less accurate than this are ignored, m")


class FenceProperties(BaseModel):
    model_config = ConfigDict(strict=True)
    name: str = Field("", max_length=200, examples=["ZTL Milano"])
    radius_m: float | None = Field(None, description="circle radius, m (with a Point geometry)")
    vehicle_id: str | None = Field(None, description="only this car; omitted: all the customer's cars")
    owner: str | None = Field(None, description="customer id; only in operator scope (no customer given)")
    anti_flap: AntiFlapIn | None = None


class FenceIn(BaseModel):
    """A GeoJSON Feature: a Polygon (lon, lat; holes allowed), or a Point with ``radius_m`` for a circle."""
    type: Literal["Feature"] = "Feature"
    geometry: dict = Field(examples=[_POLYGON])
    properties: FenceProperties = Field(default_factory=FenceProperties)


class PetFenceProperties(BaseModel):
    model_config = ConfigDict(strict=True)
    name: str = Field(max_length=200, examples=["Garden"])
    radius_m: float = Field(description="m, 20 m – 50 km", examples=[200.0])
    anti_flap: AntiFlapIn | None = None


class PetFenceIn(BaseModel):
    """A GeoJSON Feature: a Point (the centre, [lon, lat]) with a name and a radius."""
    type: Literal["Feature"] = "Feature"
    geometry: dict = Field(examples=[{"type": "Point", "coordinates": [24.9384, 60.1699]}])
    properties: PetFenceProperties


class FenceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_FENCE]})
    type: Literal["Feature"] = "Feature"
    id: int
    geometry: dict
    properties: dict = Field(description="name, radius_m, scope, owner, vehicle_id or pet_id, anti_flap "
                                         "(effective settings), created, updated")


class FenceCollection(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"type": "FeatureCollection", "features": [_FENCE], "limit": 100, "offset": 0, "next_offset": None}]})
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[FenceOut]
    limit: int
    offset: int
    next_offset: int | None


class GeofenceEvent(BaseModel):
    id: int
    device: str = Field(examples=["car-00001"])
    fence_id: int
    fence_name: str
    kind: Literal["enter", "exit", "cross"]
    ts: dt.datetime = Field(description="time of the fix that confirmed the transition, UTC")
    since: dt.datetime = Field(description="first fix on the new side (enter/exit) or the fix before (cross)")
    lat: float
    lon: float
    notified: bool = Field(description="false: stored only (late data, notice suppressed)")


class GeofenceEventPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [_EVENT], "limit": 100, "offset": 0, "next_offset": None}]})
    items: list[GeofenceEvent]
    limit: int
    offset: int
    next_offset: int | None


class PetPosition(BaseModel):
    pet_id: str = Field(examples=["pet-0001"])
    ts: dt.datetime = Field(description="time of the fix, UTC")
    age_s: float = Field(description="seconds between the fix and the answer")
    lat: float
    lon: float
    accuracy_m: float | None = Field(description="reported horizontal accuracy, m")
    speed_kmh: float | None
