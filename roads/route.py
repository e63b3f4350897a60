"""Snapping points to the nearest usable street-level segment and shortest paths between snapped points (pure CPU).

Snapping projects the graph once into an azimuthal equidistant projection centred on it (metres, true
distances from the centre, small distortion across a city) and indexes the segments in a shapely STRtree.
A point snaps to the nearest segment within ``max_snap_m``; the segment is split at the projection, so a
route starts and ends exactly where the walker and the car are closest to the network, not at a node.

The search is ``scipy.sparse.csgraph.dijkstra`` (compiled) from the one or two ends of the start segment
the walker can reach, with ``limit`` bounding how far it explores; the best of the reachable ends of the
target segment closes the route. Only the nodes of the answer's path are visited in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Geod, Transformer
from scipy.sparse.csgraph import dijkstra

from roads.graph import RoadGraph

_GEOD = Geod(ellps="WGS84")
#: 250 m: a customer further than this from any walkable way is not "in" the mapped area (beyond a city
#: block the route's first leg would be a guess through buildings or water).
DEFAULT_MAX_SNAP_M = 250.0


@dataclass(frozen=True, slots=True)
class Snap:
    """Per input point: nearest segment (-1 when none within reach), position along it (0 at ``seg_u``,
    1 at ``seg_v``), the snapped point (degrees) and its geodesic distance from the input (m)."""

    segment: np.ndarray
    fraction: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    distance_m: np.ndarray


@dataclass(frozen=True, slots=True)
class Route:
    """A shortest route, or why there is none (``reason``: ``outside_graph`` or ``no_path``).

    ``lat``/``lon``: the polyline from the snapped start to the snapped end (degrees); ``segments``:
    the graph segments it runs along in order (the first and last possibly in part); ``distance_m``
    along the network; ``snap_from_m``/``snap_to_m``: how far each input point lies from the network."""

    found: bool
    reason: str | None
    distance_m: float
    lat: np.ndarray
    lon: np.ndarray
    segments: np.ndarray
    snap_from_m: float
    snap_to_m: float


class Router:
    """Routes on one :class:`RoadGraph`. Building the spatial index costs ~10 ms per 10k segments."""

    def __init__(self, graph: RoadGraph) -> None:
        self.graph = graph
        self._matrix = graph.matrix()
        lat0, lon0 = float(np.mean(graph.lat)), float(np.mean(graph.lon))
        self._to_xy = Transformer.from_crs(
            "EPSG:4326", f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m", always_xy=True)
        x, y = self._to_xy.transform(graph.lon, graph.lat)
        coords = np.stack([np.stack([x[graph.seg_u], y[graph.seg_u]], -1),
                           np.stack([x[graph.seg_v], y[graph.seg_v]], -1)], axis=1)
        self._lines = shapely.linestrings(coords)
        self._snappable = np.flatnonzero(graph.seg_snap)
        self._tree = shapely.STRtree(self._lines[self._snappable])
        tail = np.repeat(np.arange(graph.n_nodes, dtype=np.int64), np.diff(graph.indptr))
        self._edge_key = tail * graph.n_nodes + graph.indices  # sorted: CSR rows are ordered by head

    def snap(self, lat, lon, *, max_distance_m: float = DEFAULT_MAX_SNAP_M) -> Snap:
        """Snap arrays of points (degrees) to their nearest segment; see :class:`Snap`."""
        lat, lon = np.atleast_1d(np.asarray(lat, dtype=np.float64)), np.atleast_1d(np.asarray(lon, dtype=np.float64))
        n = len(lat)
        segment = np.full(n, -1, dtype=np.int64)
        fraction = np.full(n, np.nan)
        x, y = self._to_xy.transform(lon, lat)
        points = shapely.points(x, y)
        # The projection's scale error stays far below 1 % within a city; the final distance is geodesic.
        found = self._tree.query_nearest(points, max_distance=max_distance_m * 1.01, all_matches=False)
        segment[found[0]] = self._snappable[found[1]]
        hit = segment >= 0
        fraction[hit] = shapely.line_locate_point(self._lines[segment[hit]], points[hit], normalized=True)
        g = self.graph
        u, v = g.seg_u[segment[hit]], g.seg_v[segment[hit]]
        t = fraction[hit]
        snap_lat, snap_lon = np.full(n, np.nan), np.full(n, np.nan)
        snap_lat[hit] = g.lat[u] + t * (g.lat[v] - g.lat[u])
        snap_lon[hit] = g.lon[u] + t * (g.lon[v] - g.lon[u])
        distance = np.full(n, np.inf)
        if hit.any():
            distance[hit] = _GEOD.inv(lon[hit], lat[hit], snap_lon[hit], snap_lat[hit])[2]
        miss = distance > max_distance_m
        segment[miss] = -1
        return Snap(segment, fraction, snap_lat, snap_lon, distance)

    def route(self, from_lat: float, from_lon: float, to_lat: float, to_lon: float, *,
              max_snap_m: float = DEFAULT_MAX_SNAP_M, limit_m: float = np.inf) -> Route:
        """Shortest route between two points (degrees); ``limit_m`` bounds the search (metres)."""
        snap = self.snap([from_lat, to_lat], [from_lon, to_lon], max_distance_m=max_snap_m)
        snap_from, snap_to = float(snap.distance_m[0]), float(snap.distance_m[1])
        if (snap.segment < 0).any():
            return _none("outside_graph", snap_from, snap_to)
        g = self.graph
        s_seg, t_seg = int(snap.segment[0]), int(snap.segment[1])
        s_frac, t_frac = float(snap.fraction[0]), float(snap.fraction[1])
        s_nodes, s_off = self._ends(s_seg, s_frac, leaving=True)
        t_nodes, t_off = self._ends(t_seg, t_frac, leaving=False)
        dist = dijkstra(self._matrix, directed=True, indices=s_nodes, return_predecessors=True, limit=limit_m)
        table, pred = dist
        totals = s_off[:, None] + table[:, t_nodes] + t_off[None, :]
        i, j = np.unravel_index(np.argmin(totals), totals.shape)
        best = float(totals[i, j])
        direct = self._same_segment(s_seg, s_frac, t_seg, t_frac)
        pts_lat = [snap.lat[0]]
        pts_lon = [snap.lon[0]]
        if np.isfinite(direct) and direct <= best:
            segs = np.array([s_seg], dtype=np.int64)
            best = direct
        elif not np.isfinite(best) or best > limit_m:
            return _none("no_path", snap_from, snap_to)
        else:
            path = _walk_back(pred[i], int(s_nodes[i]), int(t_nodes[j]))
            pts_lat.extend(g.lat[path])
            pts_lon.extend(g.lon[path])
            segs = np.concatenate([[s_seg], self._segments_of(path), [t_seg]])
        pts_lat.append(snap.lat[1])
        pts_lon.append(snap.lon[1])
        lat, lon = np.asarray(pts_lat), np.asarray(pts_lon)
        # A point snapped onto a node repeats it; a polyline needs each vertex once, and two at least.
        keep = np.ones(len(lat), dtype=bool)
        keep[1:] = (np.diff(lat) != 0) | (np.diff(lon) != 0)
        keep[-1] |= keep.sum() < 2
        return Route(True, None, best, lat[keep], lon[keep], segs, snap_from, snap_to)

    def _ends(self, seg: int, frac: float, *, leaving: bool) -> tuple[np.ndarray, np.ndarray]:
        """Nodes of a segment reachable from (``leaving``) or leading to a point on it, with the metres
        between the point and each node, honouring one-way segments."""
        g = self.graph
        length = g.seg_length_m[seg]
        to_v, to_u = (g.seg_forward[seg], g.seg_backward[seg]) if leaving else (g.seg_backward[seg], g.seg_forward[seg])
        nodes, offsets = [], []
        if to_v:
            nodes.append(g.seg_v[seg])
            offsets.append((1.0 - frac) * length)
        if to_u:
            nodes.append(g.seg_u[seg])
            offsets.append(frac * length)
        return np.asarray(nodes, dtype=np.int32), np.asarray(offsets, dtype=np.float64)

    def _same_segment(self, s_seg: int, s_frac: float, t_seg: int, t_frac: float) -> float:
        """Metres straight along one segment when both points lie on it (in an allowed direction)."""
        g = self.graph
        if s_seg != t_seg:
            return np.inf
        along = (t_frac - s_frac) * g.seg_length_m[s_seg]
        if (along >= 0 and g.seg_forward[s_seg]) or (along <= 0 and g.seg_backward[s_seg]):
            return abs(float(along))
        return np.inf

    def _segments_of(self, path: np.ndarray) -> np.ndarray:
        """Segment ids of the edges between consecutive nodes of ``path`` (vectorised CSR look-up)."""
        keys = path[:-1].astype(np.int64) * self.graph.n_nodes + path[1:]
        return self.graph.edge_segment[np.searchsorted(self._edge_key, keys)].astype(np.int64)


def _walk_back(pred: np.ndarray, source: int, target: int) -> np.ndarray:
    """Node indices from ``source`` to ``target`` following scipy's predecessor row."""
    path = [target]
    node = target
    while node != source:
        node = int(pred[node])
        path.append(node)
    return np.asarray(path[::-1], dtype=np.int64)


def _none(reason: str, snap_from: float, snap_to: float) -> Route:
    empty = np.empty(0)
    return Route(False, reason, float("nan"), empty, empty, np.empty(0, dtype=np.int64), snap_from, snap_to)


def geodesic_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Geodesic distance on the WGS84 ellipsoid, metres (arrays or scalars)."""
    return np.asarray(_GEOD.inv(lon1, lat1, lon2, lat2)[2])
