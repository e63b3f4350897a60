"""The routable road graph as plain NumPy arrays, built from OSM way segments (pure: no I/O).

A *segment* joins two consecutive nodes of an OSM way, so its geometry is the straight line between its
end nodes and the graph needs no separate geometry arrays. Directed edges for the shortest-path search
are kept in CSR form (``indptr``/``indices``/``weight_m``) with the segment each edge came from
(``edge_segment``), so a path of nodes maps back to segments, their highway class, speed limit and way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from pyproj import Geod
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from roads import tags as road_tags

_GEOD = Geod(ellps="WGS84")
# Coincident nodes give zero-length segments; scipy's graph routines drop explicit zeros as non-edges.
_MIN_LENGTH_M = 0.01


@dataclass(frozen=True, slots=True)
class WaySegments:
    """What a loader extracts from a PBF. Nodes: OSM id and WGS84 degrees. Segments: OSM ids of their two
    nodes, the way id, and ``tags`` (key -> array of values, ``""`` when missing) for :mod:`roads.tags`."""

    node_id: np.ndarray
    node_lat: np.ndarray
    node_lon: np.ndarray
    u: np.ndarray
    v: np.ndarray
    way_id: np.ndarray
    tags: dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class RoadGraph:
    """Nodes (``lat``, ``lon`` degrees, ``osm_id``), segments (``seg_u``/``seg_v`` node indices,
    ``seg_length_m``, ``seg_forward``/``seg_backward`` travel permissions, ``seg_snap`` (may a point snap
    to it: street level), ``seg_highway`` class codes of
    :data:`roads.tags.HIGHWAY_CLASSES`, ``seg_maxspeed_kmh`` NaN when unknown, ``seg_way`` OSM way id),
    and the directed edges in CSR form (``indptr``, ``indices``, ``weight_m``, ``edge_segment``)."""

    mode: str
    lat: np.ndarray
    lon: np.ndarray
    osm_id: np.ndarray
    seg_u: np.ndarray
    seg_v: np.ndarray
    seg_length_m: np.ndarray
    seg_forward: np.ndarray
    seg_backward: np.ndarray
    seg_snap: np.ndarray
    seg_highway: np.ndarray
    seg_maxspeed_kmh: np.ndarray
    seg_way: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    weight_m: np.ndarray
    edge_segment: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.lat.shape[0])

    @property
    def n_segments(self) -> int:
        return int(self.seg_u.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])

    def matrix(self) -> csr_matrix:
        """The directed edges as a sparse matrix of metres (the input of scipy.sparse.csgraph)."""
        return csr_matrix((self.weight_m, self.indices, self.indptr), shape=(self.n_nodes, self.n_nodes))

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["mode"] = np.array(self.mode)
        return out

    @classmethod
    def from_arrays(cls, arrays) -> "RoadGraph":
        values = {f.name: arrays[f.name] for f in dataclasses.fields(cls)}
        values["mode"] = str(values["mode"])
        return cls(**values)


def build_graph(segments: WaySegments, mode: str = "walking", *, largest_component: bool = True) -> RoadGraph:
    """The graph of ``mode`` ("walking" or "driving") over the segments that mode may use.

    ``largest_component``: keep only the largest connected part (weakly connected for driving). A clipped
    extract leaves islands — a corridor inside a building, a path cut at the border — and snapping a
    walker to one would answer "unreachable" while the street next to them is fine.
    """
    if mode not in road_tags.MODES:
        raise ValueError(f"mode must be one of {road_tags.MODES}, got {mode!r}")
    n = len(segments.u)
    usable = road_tags.walkable(segments.tags, n) if mode == "walking" else road_tags.drivable(segments.tags, n)
    forward, backward = road_tags.directions(segments.tags, n, mode)
    keep = usable & (segments.u != segments.v)

    node_order = np.argsort(segments.node_id)
    sorted_ids = segments.node_id[node_order]
    pos_u = np.searchsorted(sorted_ids, segments.u).clip(0, max(len(sorted_ids) - 1, 0))
    pos_v = np.searchsorted(sorted_ids, segments.v).clip(0, max(len(sorted_ids) - 1, 0))
    if len(sorted_ids):
        keep &= (sorted_ids[pos_u] == segments.u) & (sorted_ids[pos_v] == segments.v)
    else:
        keep[:] = False
    src_u, src_v = node_order[pos_u[keep]], node_order[pos_v[keep]]
    seg = {
        "forward": forward[keep], "backward": backward[keep], "snap": road_tags.street_level(segments.tags, n)[keep],
        "highway": road_tags.highway_codes(np.asarray(segments.tags.get("highway", np.full(n, "")))[keep]),
        "maxspeed": road_tags.maxspeed_kmh(segments.tags.get("maxspeed"), n)[keep],
        "way": np.asarray(segments.way_id, dtype=np.int64)[keep],
    }
    # Dense node numbering over the nodes the kept segments use.
    used, inverse = np.unique(np.concatenate([src_u, src_v]), return_inverse=True)
    k = len(src_u)
    su, sv = inverse[:k], inverse[k:]
    lat = np.asarray(segments.node_lat, dtype=np.float64)[used]
    lon = np.asarray(segments.node_lon, dtype=np.float64)[used]
    osm_id = np.asarray(segments.node_id, dtype=np.int64)[used]
    length = segment_lengths_m(lat[su], lon[su], lat[sv], lon[sv])

    if largest_component and len(used):
        undirected = csr_matrix((np.ones(k), (su, sv)), shape=(len(used), len(used)))
        _, label = connected_components(undirected, directed=False)
        main = np.argmax(np.bincount(label))
        keep_seg = label[su] == main
        keep_node = label == main
        renumber = np.cumsum(keep_node) - 1
        su, sv = renumber[su[keep_seg]], renumber[sv[keep_seg]]
        lat, lon, osm_id, length = lat[keep_node], lon[keep_node], osm_id[keep_node], length[keep_seg]
        seg = {name: arr[keep_seg] for name, arr in seg.items()}

    indptr, indices, weight, edge_segment = _csr(len(lat), su, sv, length, seg["forward"], seg["backward"])
    return RoadGraph(
        mode=mode, lat=lat, lon=lon, osm_id=osm_id, seg_u=su.astype(np.int32), seg_v=sv.astype(np.int32),
        seg_length_m=length, seg_forward=seg["forward"], seg_backward=seg["backward"],
        seg_snap=seg["snap"], seg_highway=seg["highway"],
        seg_maxspeed_kmh=seg["maxspeed"], seg_way=seg["way"], indptr=indptr, indices=indices, weight_m=weight,
        edge_segment=edge_segment,
    )


def segment_lengths_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Geodesic length (WGS84 ellipsoid, metres) of each segment, at least 1 cm."""
    _, _, dist = _GEOD.inv(np.asarray(lon1), np.asarray(lat1), np.asarray(lon2), np.asarray(lat2))
    return np.maximum(np.asarray(dist, dtype=np.float64), _MIN_LENGTH_M)


def _csr(n_nodes: int, su, sv, length, forward, backward):
    """Directed edges u->v (forward) and v->u (backward) in CSR order; of parallel edges between the same
    two nodes only the shortest is kept (scipy would otherwise add their weights)."""
    seg_ids = np.arange(len(su), dtype=np.int32)
    tail = np.concatenate([su[forward], sv[backward]])
    head = np.concatenate([sv[forward], su[backward]])
    w = np.concatenate([length[forward], length[backward]])
    sid = np.concatenate([seg_ids[forward], seg_ids[backward]])
    order = np.lexsort((w, head, tail))
    tail, head, w, sid = tail[order], head[order], w[order], sid[order]
    first = np.ones(len(tail), dtype=bool)
    first[1:] = (tail[1:] != tail[:-1]) | (head[1:] != head[:-1])
    tail, head, w, sid = tail[first], head[first], w[first], sid[first]
    indptr = np.zeros(n_nodes + 1, dtype=np.int32)
    np.cumsum(np.bincount(tail, minlength=n_nodes), out=indptr[1:])
    return indptr, head.astype(np.int32), w, sid
