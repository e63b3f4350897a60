"""Response models of Find-Vehicle with a walking route."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.schemas import VehiclePosition


class LineString(BaseModel):
    type: Literal["LineString"] = "LineString"
    coordinates: list[list[float]] = Field(description="[lon, lat] pairs, WGS84 degrees",
                                           examples=[[[24.9414, 60.171], [24.9431, 60.1712], [24.9525, 60.1695]]])


class WalkingRoute(BaseModel):
    method: Literal["osm_walking", "straight_line"] = Field(
        description="osm_walking: shortest walk over the OpenStreetMap pedestrian graph; straight_line: geodesic "
                    "distance because no graph covers both points (see reason)", examples=["osm_walking"])
    reason: Literal["graph_loading", "graph_unavailable", "outside_graph", "no_path"] | None = Field(
        None, description="why the answer is a straight line", examples=[None])
    reason_detail: str | None = Field(None, description="the reason in words")
    distance_m: float = Field(description="walking distance, m", examples=[1303.5])
    walking_time_s: float = Field(description="distance at walk_speed_kmh, s", examples=[938.5])
    walk_speed_kmh: float = Field(examples=[5.0])
    from_snap_m: float | None = Field(None, description="customer's distance from the nearest walkable way, m")
    to_snap_m: float | None = Field(None, description="car's distance from the nearest walkable way, m")
    geometry: LineString


class FindVehicleWalk(BaseModel):
    vehicle: VehiclePosition = Field(description="the car's last fix and its age")
    from_lat: float = Field(examples=[60.171])
    from_lon: float = Field(examples=[24.9414])
    route: WalkingRoute
