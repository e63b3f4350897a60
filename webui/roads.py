"""The base map: street lines of the walking graph as GeoJSON (no tile server, no internet).

The API already loads the road graph from the OSM PBF for Find-Vehicle (:class:`api.find_service.WalkGraph`);
its segments are straight lines between two nodes, so a bounding box query is a vectorised mask over the
node coordinates, and the answer groups segments into one MultiLineString per street class for the
pages to draw as line layers.
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends, Query, Request

from api import access
from roads import HIGHWAY_CLASSES

router = APIRouter(prefix="/v1/map", tags=["map"])

#: Street classes drawn as which layer: main roads, streets, and footways (only when zoomed in).
GROUPS = {
    "main": ("motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
             "secondary_link", "busway"),
    "street": ("tertiary", "tertiary_link", "unclassified", "residential", "living_street", "road", "service"),
    "path": ("pedestrian", "footway", "path", "steps", "cycleway", "track", "trail", "bridleway", "corridor"),
}
_GROUP_OF_CODE = np.full(len(HIGHWAY_CLASSES), "", dtype=object)
for _group, _classes in GROUPS.items():
    _GROUP_OF_CODE[[HIGHWAY_CLASSES.index(c) for c in _classes]] = _group
_EXAMPLE = {"type": "FeatureCollection", "status": "ready", "paths_dropped": False, "features": [
    {"type": "Feature", "properties": {"class": "street", "segments": 1},
     "geometry": {"type": "MultiLineString", "coordinates": [[[24.94451, 60.16749], [24.94502, 60.16757]]]}}]}
#: At most this many segments per answer (a few MB of JSON); beyond it footways are left out.
MAX_SEGMENTS = 60_000


def road_features(graph, bbox: tuple[float, float, float, float], paths: bool) -> tuple[list[dict], bool]:
    """GeoJSON features (one per group with segments) of the segments with an end in ``bbox``; and whether
    footways were dropped to stay under :data:`MAX_SEGMENTS`."""
    west, south, east, north = bbox
    lat, lon = graph.lat, graph.lon
    inside = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
    seg = np.flatnonzero(inside[graph.seg_u] | inside[graph.seg_v])
    group = _GROUP_OF_CODE[graph.seg_highway[seg]]
    dropped = paths and int((group != "").sum()) > MAX_SEGMENTS
    keep = (group != "") & ((group != "path") | (paths and not dropped))
    seg, group = seg[keep], group[keep]
    seg, group = seg[:MAX_SEGMENTS], group[:MAX_SEGMENTS]
    u, v = graph.seg_u[seg], graph.seg_v[seg]
    # (n, 2 ends, lon/lat), rounded to ~1 m: the JSON stays small and the line is still on the street
    lines = np.round(np.stack([np.stack([lon[u], lat[u]], 1), np.stack([lon[v], lat[v]], 1)], 1), 5)
    features = []
    for name in GROUPS:
        mask = group == name
        if mask.any():
            features.append({"type": "Feature", "properties": {"class": name, "segments": int(mask.sum())},
                             "geometry": {"type": "MultiLineString", "coordinates": lines[mask].tolist()}})
    return features, dropped


def _degrees(limit: float, what: str):
    return Query(..., ge=-limit, le=limit, allow_inf_nan=False, description=f"{what}, degrees")


@router.get("/roads", summary="Street lines inside a bounding box, from the OSM road graph (GeoJSON)",
            responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}} | access.RESPONSES,
            dependencies=[Depends(access.current_caller)],  # like every /v1 route; the pages log in first
            description="One MultiLineString feature per class: `main`, `street`, `path` (footways, only with "
                        "`paths=true`). An empty box (west >= east or south >= north) has no streets. `status` is "
                        "the road graph's: `loading` answers no features yet.")
async def roads(request: Request, west: float = _degrees(180, "western edge"),
                south: float = _degrees(90, "southern edge"), east: float = _degrees(180, "eastern edge"),
                north: float = _degrees(90, "northern edge"),
                paths: bool = Query(False, description="include footways and paths")) -> dict:
    holder = request.app.state.walk_graph
    if holder.status != "ready" or holder.router is None:
        return {"type": "FeatureCollection", "features": [], "status": holder.status, "detail": holder.detail}
    features, dropped = road_features(holder.router.graph, (west, south, east, north), paths)
    return {"type": "FeatureCollection", "features": features, "status": "ready", "paths_dropped": dropped}
