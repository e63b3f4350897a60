"""Road graphs from OpenStreetMap for routing: walking now (Find-Vehicle), driving for the city simulator.

Public API:
  * :func:`load_graph` (PBF or npz cache -> :class:`RoadGraph`), :func:`bundled_pbf` (the sample region);
  * :func:`build_graph` over :class:`WaySegments` (pure), the tag rules in :mod:`roads.tags`;
  * :class:`Router` (snap to the nearest usable segment, shortest :class:`Route`), :func:`geodesic_m`.
"""

from roads.graph import RoadGraph, WaySegments, build_graph
from roads.loader import LoadInfo, bundled_pbf, load_graph
from roads.route import DEFAULT_MAX_SNAP_M, Route, Router, Snap, geodesic_m
from roads.tags import HIGHWAY_CLASSES, MODES

__all__ = [
    "DEFAULT_MAX_SNAP_M", "HIGHWAY_CLASSES", "LoadInfo", "MODES", "RoadGraph", "Route", "Router", "Snap",
    "WaySegments", "build_graph", "bundled_pbf", "geodesic_m", "load_graph",
]
