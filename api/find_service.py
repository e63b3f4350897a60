"""Find-Vehicle walking route: the car's last fix and the shortest walk to it from the customer.

The walking graph loads once, in a background thread, when the API starts (:class:`WalkGraph`); until it
is ready, and wherever it does not cover both points, the answer is the straight-line geodesic distance
with a machine-readable ``reason``. Services take keyword arguments; ``owner=None`` means no scoping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from roads import Router, geodesic_m, load_graph
from storage import devices, fixes
from storage.db import Database
from vigil.errors import NotFound, RejectedInput

log = logging.getLogger(__name__)

#: 20 km (four hours on foot) bounds the search: on a country-sized graph an unbounded Dijkstra would
#: explore every street; beyond this the customer needs another answer than a walk anyway.
MAX_WALK_M = 20_000.0
OSM_WALKING = "osm_walking"
STRAIGHT_LINE = "straight_line"
_REASONS = {
    "graph_loading": "the walking graph is still loading; straight-line distance meanwhile",
    "graph_unavailable": "no walking graph is available",
    "outside_graph": "a point lies outside the area of the walking graph (no walkable way within reach)",
    "no_path": f"the walking graph has no walkable connection within {MAX_WALK_M / 1000:g} km between the points",
}


class WalkGraph:
    """The walking router behind the API and its state: ``loading``, ``ready``, ``failed`` or ``disabled``."""

    def __init__(self, status: str = "disabled", detail: str = "no walking graph configured") -> None:
        self.status = status
        self.detail = detail
        self.router: Router | None = None

    @classmethod
    def ready(cls, router: Router) -> "WalkGraph":
        holder = cls("ready", "")
        holder.router = router
        return holder

    async def load(self, pbf: Path, *, cache_dir: Path | None) -> None:
        """Build or read the graph and its index off the event loop; never raises (the API falls back)."""
        self.status, self.detail = "loading", f"loading {pbf.name}"
        try:
            graph, info = await asyncio.to_thread(load_graph, pbf, "walking", cache_dir=cache_dir)
            self.router = await asyncio.to_thread(Router, graph)
        except Exception as exc:  # any failure leaves the API answering with straight lines
            log.error("walking graph from %s unavailable: %r", pbf, exc)
            self.status, self.detail = "failed", f"{type(exc).__name__}: {exc}"
            return
        self.status = "ready"
        self.detail = f"{pbf.name}: {graph.n_nodes} nodes, {graph.n_segments} segments ({info.source})"


@dataclass(frozen=True, slots=True)
class WalkAnswer:
    """``coordinates``: [lon, lat] pairs (GeoJSON order); distance m; time s; snaps m (None: not snapped)."""

    method: str
    reason: str | None
    reason_detail: str | None
    distance_m: float
    walking_time_s: float
    coordinates: list[list[float]]
    from_snap_m: float | None
    to_snap_m: float | None


def check_point(lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise RejectedInput("invalid_coordinates", f"lat/lon must be finite numbers, got {lat}, {lon}")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise RejectedInput("invalid_coordinates", f"lat must be in [-90, 90] and lon in [-180, 180], got {lat}, {lon}")


def walking_answer(*, graph: WalkGraph, from_lat: float, from_lon: float, to_lat: float, to_lon: float,
                   speed_kmh: float) -> WalkAnswer:
    """The walking route (or the straight line, with why) between two points in degrees (CPU only)."""
    check_point(from_lat, from_lon)
    check_point(to_lat, to_lon)
    speed_ms = speed_kmh / 3.6
    if graph.router is None:
        reason = "graph_loading" if graph.status == "loading" else "graph_unavailable"
        return _straight(from_lat, from_lon, to_lat, to_lon, speed_ms, reason, None, None, graph.detail)
    route = graph.router.route(from_lat, from_lon, to_lat, to_lon, limit_m=MAX_WALK_M)
    if not route.found:
        snaps = [None if not math.isfinite(d) else round(d, 1) for d in (route.snap_from_m, route.snap_to_m)]
        return _straight(from_lat, from_lon, to_lat, to_lon, speed_ms, route.reason, *snaps)
    coords = [[round(x, 7), round(y, 7)] for x, y in zip(route.lon.tolist(), route.lat.tolist())]
    return WalkAnswer(OSM_WALKING, None, None, round(route.distance_m, 1), round(route.distance_m / speed_ms, 1),
                      coords, round(route.snap_from_m, 1), round(route.snap_to_m, 1))


def _straight(from_lat, from_lon, to_lat, to_lon, speed_ms, reason, from_snap, to_snap, detail=None) -> WalkAnswer:
    distance = float(geodesic_m(from_lat, from_lon, to_lat, to_lon))
    text = _REASONS[reason] + (f" ({detail})" if detail else "")
    return WalkAnswer(STRAIGHT_LINE, reason, text, round(distance, 1), round(distance / speed_ms, 1),
                      [[from_lon, from_lat], [to_lon, to_lat]], from_snap, to_snap)


@dataclass(frozen=True, slots=True)
class FoundVehicle:
    position: fixes.Position
    age_s: float
    walk: WalkAnswer


async def find_vehicle(*, db: Database, graph: WalkGraph, vehicle_id: str, from_lat: float, from_lon: float,
                       speed_kmh: float, now: dt.datetime, owner: str | None = None) -> FoundVehicle:
    """The car's last fix, its age (s) at ``now`` and the walk to it. NotFound when the car does not exist,
    is not ``owner``'s (unless ``owner`` is None) or has sent no fix."""
    check_point(from_lat, from_lon)
    device = (await devices.lookup(db, [vehicle_id])).get(vehicle_id)
    if device is None or device.kind != "car" or (owner is not None and device.owner != owner):
        raise NotFound("vehicle", vehicle_id)
    position = await fixes.last_position(db, vehicle_id, kind="car")
    if position is None:
        raise NotFound("vehicle position", vehicle_id)
    walk = await asyncio.to_thread(walking_answer, graph=graph, from_lat=from_lat, from_lon=from_lon,
                                   to_lat=position.lat, to_lon=position.lon, speed_kmh=speed_kmh)
    return FoundVehicle(position, round((now - position.ts).total_seconds(), 3), walk)
