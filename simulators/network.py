"""The driving network the city simulator's cars use: places, shortest paths between them, and per-vertex
speeds of a path (pure: arrays in, arrays out; the graph comes from :mod:`roads`).

*Places* are graph nodes of the largest strongly connected part of the street-level driving graph
(tunnels left out), so every place can reach every other one (one-way streets and dead ends cut off the
rest): the nodes nearest to the map's points of interest (shops, cafés, car parks; see
:mod:`simulators.places`), and random ones when those are too few. One ``scipy`` Dijkstra per place
gives a shortest-path tree; a trip from place ``a`` to ``b`` follows the tree of ``a`` back from ``b``.
Paths are cached per (a, b) pair.

Speeds (m/s inside): a segment's limit is its ``maxspeed`` tag, else :data:`CLASS_SPEED_KMH` by highway
class. A vertex caps the speed by the turn it makes (:data:`TURN_CAP`) and by being a junction (at least
three segments meet: :data:`JUNCTION_FACTOR` of the limit, the slow-down of looking both ways).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from roads.graph import RoadGraph
from roads.tags import HIGHWAY_CLASSES

#: km/h by highway class where ``maxspeed`` is missing: Finnish defaults (50 in built-up areas) lowered
#: for the minor classes, which in a city centre are narrow and full of parked cars.
CLASS_SPEED_KMH = {
    "motorway": 100.0, "motorway_link": 60.0, "trunk": 80.0, "trunk_link": 50.0, "primary": 50.0,
    "primary_link": 40.0, "secondary": 50.0, "secondary_link": 40.0, "tertiary": 40.0, "tertiary_link": 30.0,
    "unclassified": 40.0, "residential": 30.0, "living_street": 20.0, "service": 20.0, "road": 30.0,
}
DEFAULT_SPEED_KMH = 30.0
#: Turn angle (degrees between incoming and outgoing direction) -> speed cap at the vertex (m/s). A 90°
#: corner at ~20 km/h keeps lateral acceleration near 3 m/s² on a 10 m radius.
TURN_CAP = ((20.0, 45.0, 90.0, 135.0, 180.0), (14.0, 9.0, 5.5, 4.0, 3.0))
JUNCTION_FACTOR = 0.8


@dataclass
class Network:
    """A driving graph prepared for the simulator; build with :func:`prepare`."""

    graph: RoadGraph
    places: np.ndarray          # node indices, shape (P,)
    place_names: np.ndarray     # object (P,): name of the point of interest, or "node <osm id>"
    pred: np.ndarray            # int32 (P, n_nodes): predecessor rows of each place's tree
    seg_speed_ms: np.ndarray    # float64 (n_segments,): limit of each segment, m/s
    degree: np.ndarray          # int (n_nodes,): segments meeting at each node
    _edge_key: np.ndarray
    _paths: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @property
    def n_places(self) -> int:
        return int(self.places.shape[0])

    def path(self, a: int, b: int) -> np.ndarray:
        """Node indices of the shortest path from place index ``a`` to place index ``b`` (a != b)."""
        key = (int(a), int(b))
        found = self._paths.get(key)
        if found is None:
            row, target, source = self.pred[a], int(self.places[b]), int(self.places[a])
            nodes = [target]
            while nodes[-1] != source:
                nodes.append(int(row[nodes[-1]]))
            found = self._paths[key] = np.asarray(nodes[::-1], dtype=np.int64)
        return found

    def segments_of(self, nodes: np.ndarray) -> np.ndarray:
        """Segment id of each directed edge between consecutive ``nodes``."""
        keys = nodes[:-1] * self.graph.n_nodes + nodes[1:]
        return self.graph.edge_segment[np.searchsorted(self._edge_key, keys)].astype(np.int64)

    def route_arrays(self, nodes: np.ndarray) -> dict[str, np.ndarray]:
        """Per vertex of a path: ``lat``/``lon`` (degrees), ``cum_m`` (metres from the start), ``limit_ms``
        (limit of the segment leaving the vertex; the last repeats the one before), ``cap_ms`` (speed cap at
        the vertex: turns and junctions; 0 at the end, where the car parks), ``junction`` (bool),
        ``segment`` (graph segment leaving the vertex; the last repeats) and ``bearing_deg`` of it."""
        g = self.graph
        segs = self.segments_of(nodes)
        length = g.seg_length_m[segs]
        limit = self.seg_speed_ms[segs]
        lat, lon = g.lat[nodes], g.lon[nodes]
        bearing = _bearing_deg(lat[:-1], lon[:-1], lat[1:], lon[1:])
        turn = np.abs((np.diff(bearing) + 180.0) % 360.0 - 180.0)
        cap = np.full(len(nodes), np.inf)
        cap[1:-1] = np.interp(turn, *TURN_CAP, left=np.inf)
        junction = self.degree[nodes] >= 3
        junction[[0, -1]] = False
        both = np.minimum(limit[:-1], limit[1:])
        cap[1:-1] = np.where(junction[1:-1], np.minimum(cap[1:-1], JUNCTION_FACTOR * both), cap[1:-1])
        cap[-1] = 0.0
        return {
            "lat": lat, "lon": lon, "cum_m": np.concatenate([[0.0], np.cumsum(length)]),
            "limit_ms": np.append(limit, limit[-1]), "cap_ms": cap, "junction": junction,
            "segment": np.append(segs, segs[-1]), "bearing_deg": np.append(bearing, bearing[-1]),
        }


def _bearing_deg(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Initial bearing, degrees clockwise from north in [0, 360) (local flat approximation: short segments)."""
    dn = np.radians(lat2 - lat1)
    de = np.radians(lon2 - lon1) * np.cos(np.radians(lat1))
    return np.degrees(np.arctan2(de, dn)) % 360.0


def segment_speeds_ms(graph: RoadGraph) -> np.ndarray:
    """Speed limit of every segment, m/s: ``maxspeed`` where tagged, else the class default."""
    by_class = np.array([CLASS_SPEED_KMH.get(name, DEFAULT_SPEED_KMH) for name in HIGHWAY_CLASSES])
    kmh = np.where(np.isnan(graph.seg_maxspeed_kmh), by_class[graph.seg_highway], graph.seg_maxspeed_kmh)
    return np.clip(kmh, 10.0, 130.0) / 3.6


def prepare(graph: RoadGraph, *, n_places: int, seed: int, pois: dict[str, np.ndarray] | None = None,
            max_poi_m: float = 150.0) -> Network:
    """Pick ``n_places`` places (seeded) and build their shortest-path trees.

    ``pois`` (``lat``, ``lon`` degrees and ``name`` arrays: shops, cafés, car parks… of the map): each
    becomes the usable node nearest to it (within ``max_poi_m``), so cars drive between real places;
    random usable nodes make up the rest of ``n_places``. Raises ValueError when the graph is not a
    driving graph or has fewer than two usable nodes."""
    if graph.mode != "driving":
        raise ValueError(f"the city simulator drives on a driving graph, got {graph.mode!r}")
    # Cars stay at street level: no tunnels (central Helsinki's underground lorry roads have no GPS).
    street_edge = graph.seg_snap[graph.edge_segment]
    tail_all = np.repeat(np.arange(graph.n_nodes), np.diff(graph.indptr))
    matrix = csr_matrix((graph.weight_m[street_edge], (tail_all[street_edge], graph.indices[street_edge])),
                        shape=(graph.n_nodes, graph.n_nodes))
    _, label = connected_components(matrix, directed=True, connection="strong")
    main = np.argmax(np.bincount(label))
    street = np.zeros(graph.n_nodes, dtype=bool)
    street[graph.seg_u[graph.seg_snap]] = True
    street[graph.seg_v[graph.seg_snap]] = True
    candidates = np.flatnonzero((label == main) & street)
    if len(candidates) < 2:
        raise ValueError("the driving graph has fewer than two mutually reachable street-level nodes")
    rng = np.random.default_rng([seed, 7])
    names: dict[int, str] = {}
    if pois is not None and len(pois["lat"]):
        node, dist = _nearest(graph, candidates, np.asarray(pois["lat"]), np.asarray(pois["lon"]))
        near = dist <= max_poi_m
        for n_i, name in zip(node[near].tolist(), np.asarray(pois["name"])[near].tolist()):
            names.setdefault(n_i, name)
    named = np.array(sorted(names), dtype=np.int64)
    if len(named) > n_places:
        named = rng.choice(named, size=n_places, replace=False)
    rest = np.setdiff1d(candidates, named)
    extra = rng.choice(rest, size=min(max(n_places - len(named), 0), len(rest)), replace=False)
    places = np.sort(np.concatenate([named, extra]).astype(np.int64))
    if len(places) < 2:
        places = np.sort(rng.choice(candidates, size=2, replace=False))
    place_names = np.array([names.get(int(p), f"node {graph.osm_id[p]}") for p in places], dtype=object)
    _, pred = dijkstra(matrix, directed=True, indices=places, return_predecessors=True)
    degree = np.bincount(np.concatenate([graph.seg_u, graph.seg_v]), minlength=graph.n_nodes)
    tail = np.repeat(np.arange(graph.n_nodes, dtype=np.int64), np.diff(graph.indptr))
    return Network(graph=graph, places=places, place_names=place_names, pred=pred.astype(np.int32),
                   seg_speed_ms=segment_speeds_ms(graph), degree=degree, _edge_key=tail * graph.n_nodes + graph.indices)


def _nearest(graph: RoadGraph, nodes: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest of ``nodes`` to each point and its distance (m, local flat approximation), in blocks so
    the distance matrix stays small."""
    lat0 = np.radians(np.mean(graph.lat[nodes]))
    nx = np.radians(graph.lon[nodes]) * np.cos(lat0) * 6_371_008.8
    ny = np.radians(graph.lat[nodes]) * 6_371_008.8
    px = np.radians(lon) * np.cos(lat0) * 6_371_008.8
    py = np.radians(lat) * 6_371_008.8
    best = np.empty(len(lat), dtype=np.int64)
    dist = np.empty(len(lat))
    for i in range(0, len(lat), 512):
        d2 = (px[i:i + 512, None] - nx[None, :]) ** 2 + (py[i:i + 512, None] - ny[None, :]) ** 2
        j = d2.argmin(axis=1)
        best[i:i + 512] = nodes[j]
        dist[i:i + 512] = np.sqrt(d2[np.arange(len(j)), j])
    return best, dist
