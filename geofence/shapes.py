"""Fence definitions, validation, and the compiled :class:`FenceSet` the membership core queries.

A fence is a circle (centre + radius, m) or a GeoJSON polygon (with holes), each with a stable integer
``fence_id`` and its own anti-flap settings. ``FenceSet.compile`` validates them and builds:

- lon/lat bounding boxes (a box crossing the antimeridian is stored as two boxes, a box reaching a pole spans
  every longitude), used only as prefilters: an STRtree for arbitrary query boxes (long segments, large
  margins) and, for the hot path, a :class:`geofence.grid.GridIndex` over the boxes grown by ``pad_m``
  (the usual anti-flap margin) and another over the boxes grown by ``seg_pad`` (segment midpoints, for
  ``cross``);
- per fence, a local east/north tangent frame at its centre (:mod:`geofence.frames`): exact at any latitude
  and across the antimeridian; polygons are stored in its metres, circles measure geodesic distance;
- circle radii, polygon boundaries and boxes in frame metres, and the anti-flap parameters as arrays;
- per polygon, its edges as flat arrays (:mod:`geofence.edges`, for ``cross``) and a cell raster of its
  pre-grown and pre-shrunk shapes (:mod:`geofence.raster`), which answers most point tests of the hot path.

Invalid input raises :class:`vigil.errors.RejectedInput` with reason ``invalid_geometry``,
``radius_out_of_range``, ``too_many_fences`` or ``duplicate_fence_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import shapely
from geofence.frames import ecef, east_north, frame_params
from geofence.clear import Clearance
from geofence.edges import Edges
from geofence.grid import GridIndex
from geofence.raster import Rasters
from geofence.raster import build as build_rasters
from vigil.errors import RejectedInput

M_PER_DEG_LAT = 110_574.0   # the smallest metres per degree of latitude (equator), so boxes err large
M_PER_DEG_LON = 111_320.0   # metres per degree of longitude at the equator
SEG_HALF_M = 200.0          # segments up to this half extent (m per axis) ask ``seg_grid``: 40 m/s for 10 s
CIRCLE, POLYGON = 0, 1


@dataclass(frozen=True, slots=True)
class AntiFlap:
    """Per-fence hysteresis. Defaults: on, because GPS drift of tens of metres is the normal case.

    With margin ``max(accuracy_m, hysteresis_m)``, a fix counts as outside only beyond the boundary plus the
    margin and as inside only deeper than the margin (capped for small fences, see ``FenceSet.inner_cap_m``);
    within the band it is no evidence and interrupts a pending change. A side change is confirmed once
    ``min_fixes`` consecutive fixes on the new side span at least ``min_dwell_ms``. A fix whose reported
    accuracy exceeds ``max_accuracy_m`` is ignored and starts no ``cross``.

    Defaults sized for a parked car: with 15 m (σ per axis) jitter and the car 5 m inside the edge, a fix
    lands beyond 30 m outside with p ≈ 1 %, three in a row p ≈ 1e-6 — about one false exit in 2,000 days
    of a fix a minute.
    """
    enabled: bool = True
    hysteresis_m: float = 30.0       # two to three typical consumer-GPS CEPs
    min_fixes: int = 3               # stray fixes never confirm a transition
    min_dwell_ms: int = 0            # time on the new side; 0 leaves it to min_fixes
    max_accuracy_m: float = 200.0    # worse than this is a cell/Wi-Fi guess, not a position

    def __post_init__(self) -> None:
        if self.hysteresis_m < 0 or self.min_fixes < 1 or self.min_dwell_ms < 0 or not self.max_accuracy_m > 0:
            raise RejectedInput("invalid_anti_flap", repr(self))


OFF = AntiFlap(enabled=False)


@dataclass(frozen=True, slots=True)
class CircleFence:
    fence_id: int
    lat: float          # centre, degrees WGS84
    lon: float
    radius_m: float
    name: str = ""
    anti_flap: AntiFlap = field(default_factory=AntiFlap)


@dataclass(frozen=True, slots=True)
class PolygonFence:
    """``geometry``: a GeoJSON Polygon mapping (lon, lat order; first ring the shell, the rest holes)."""
    fence_id: int
    geometry: dict
    name: str = ""
    anti_flap: AntiFlap = field(default_factory=AntiFlap)


Fence = CircleFence | PolygonFence


@dataclass(frozen=True, slots=True)
class PetFenceRules:
    """Limits on a pet's fences. 20 m: below a consumer tracker's accuracy; 50 km: a region, not a garden."""
    max_fences: int = 5
    min_radius_m: float = 20.0
    max_radius_m: float = 50_000.0


def check_pet_fences(fences: Sequence[CircleFence], rules: PetFenceRules = PetFenceRules()) -> None:
    """Raise ``RejectedInput`` unless ``fences`` (all of one pet) are acceptable: named circles, count, radii."""
    if len(fences) > rules.max_fences:
        raise RejectedInput("too_many_fences", f"a pet may have at most {rules.max_fences} fences, got {len(fences)}")
    for f in fences:
        if not isinstance(f, CircleFence):
            raise RejectedInput("invalid_geometry", f"pet fence {f.fence_id} must be a circle")
        if not f.name.strip():
            raise RejectedInput("missing_name", f"pet fence {f.fence_id} needs a name")
        if not rules.min_radius_m <= f.radius_m <= rules.max_radius_m:
            raise RejectedInput("radius_out_of_range",
                                f"radius {f.radius_m} m outside [{rules.min_radius_m}, {rules.max_radius_m}] m")


def add_pet_fence(existing: Sequence[CircleFence], new: CircleFence,
                  rules: PetFenceRules = PetFenceRules()) -> list[CircleFence]:
    """The pet's fences with ``new`` added; a fence beyond ``rules.max_fences`` is refused (``too_many_fences``)."""
    out = [*existing, new]
    check_pet_fences(out, rules)
    return out


def wrap_lon(dlon):
    """Longitude difference(s) wrapped to [-180, 180) degrees."""
    x = np.asarray(dlon, dtype=float) + 180.0
    if x.ndim == 0 or x.size == 0 or x.min() < 0.0 or x.max() >= 360.0:   # the modulo is the costly part
        x = x % 360.0
    x -= 180.0
    return x


def _ring(coords, fence_id) -> np.ndarray:
    try:
        arr = np.asarray(coords, dtype=float)
    except (TypeError, ValueError) as exc:
        raise RejectedInput("invalid_geometry", f"fence {fence_id}: ring is not numeric") from exc
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.shape[0] < 4 or not np.isfinite(arr).all():
        raise RejectedInput("invalid_geometry", f"fence {fence_id}: a ring needs >= 4 [lon, lat] positions")
    if (np.abs(arr[:, 1]) > 90).any():
        raise RejectedInput("invalid_geometry", f"fence {fence_id}: latitude beyond ±90")
    return arr[:, :2]


def _polygon_rings(f: PolygonFence) -> list[np.ndarray]:
    g = f.geometry
    if not isinstance(g, dict) or g.get("type") != "Polygon" or not g.get("coordinates"):
        raise RejectedInput("invalid_geometry", f"fence {f.fence_id}: expected a GeoJSON Polygon")
    return [_ring(r, f.fence_id) for r in g["coordinates"]]


@dataclass(frozen=True, slots=True, eq=False)
class FenceSet:
    """Compiled fences; index ``i`` everywhere refers to ``fences[i]``. Build with :meth:`compile`."""
    fences: tuple[Fence, ...]
    fence_id: np.ndarray        # int64 (n,)
    id_order: np.ndarray        # int64 (n,): argsort of fence_id
    sorted_ids: np.ndarray      # int64 (n,): fence_id sorted
    kind: np.ndarray            # int8 (n,): CIRCLE or POLYGON
    radius_m: np.ndarray        # float (n,); NaN for polygons
    shape: np.ndarray           # object (n,): shapely Polygon in frame metres (prepared), None for circles
    boundary: np.ndarray        # object (n,): its boundary, None for circles
    frame_box: np.ndarray       # float (n, 4): polygon xmin, ymin, xmax, ymax in frame metres (NaN circles)
    centre: np.ndarray          # float (n, 2): lat, lon of each fence's frame centre (deg)
    frame: np.ndarray           # float (n, 9): frame parameters (geofence.frames.frame_params)
    box_lat: np.ndarray         # float (n, 2): lat min, max (deg)
    box_lon: np.ndarray         # float (n, 2): lon centre, half width (deg)
    af_on: np.ndarray           # bool (n,)
    hysteresis_m: np.ndarray    # float (n,)
    min_fixes: np.ndarray       # int64 (n,)
    min_dwell_ms: np.ndarray    # int64 (n,)
    max_accuracy_m: np.ndarray  # float (n,)
    inner_cap_m: np.ndarray     # float (n,): most depth asked of an "inside" fix: r/2, polygons area/perimeter
    inner0_m: np.ndarray        # float (n,): the usual depth asked, min(hysteresis, cap); 0 without anti-flap
    shrunk: np.ndarray          # object (n,): polygons shrunk by inner0_m (frame metres), None for circles
    outer0_m: np.ndarray        # float (n,): the usual outside margin, the hysteresis; 0 without anti-flap
    grown: np.ndarray           # object (n,): polygons grown by outer0_m (frame metres), None for circles
    pad_m: np.ndarray           # float (n,): margin the grid boxes are grown by (m)
    grown_box: np.ndarray       # float (n, 4): lat min, lat max, lon centre, lon half width, grown by pad_m
    tree: shapely.STRtree
    tree_fence: np.ndarray      # int64: fence index of each tree box
    grid: GridIndex             # over boxes grown by pad_m
    seg_pad: np.ndarray         # float (n, 2): lat, lon half extents (deg) the seg_grid boxes are grown by
    seg_grid: GridIndex         # over boxes grown by seg_pad: a segment's midpoint finds every box its box meets
    clear: Clearance            # cells' distance to the grown boxes: fixes and segments with nothing near
    sure_in_m: np.ndarray       # float (n,): frame points nearer the origin are inside ``shrunk`` (polygons; 0)
    sure_out_m: np.ndarray      # float (n,): frame points farther from the origin are outside ``grown`` (inf)
    id_table: np.ndarray        # int64: fence index per fence_id when ids are small non-negative, else empty
    edges: Edges                # every ring's edges of ``shape``, per fence (segment tests)
    rasters: Rasters            # per polygon: cells wholly inside/outside ``grown`` (bits 0-1) and ``shrunk`` (2-3)

    def __len__(self) -> int:
        return len(self.fences)

    def index_of(self, fence_id) -> np.ndarray:
        """Fence indices of ``fence_id`` (int64 array-like); -1 where unknown."""
        fid = np.asarray(fence_id, dtype=np.int64)
        if len(self.fence_id) == 0:
            return np.full(fid.shape, -1, np.int64)
        if len(self.id_table):
            top = len(self.id_table) - 1
            return np.where((fid >= 0) & (fid <= top), self.id_table[np.clip(fid, 0, top)], -1)
        pos = np.minimum(np.searchsorted(self.sorted_ids, fid), len(self.sorted_ids) - 1)
        return np.where(self.sorted_ids[pos] == fid, self.id_order[pos], -1)

    @staticmethod
    def _boxes(fences, kind, radius, centre, box_lat, box_lon, polys) -> None:
        """Validate each fence and fill its kind, radius, frame centre and lon/lat box; polygons' rings are
        collected in ``polys``. Raises ``RejectedInput`` at the first bad fence (the boxes before it filled)."""
        circles: list[tuple[int, float, float, float]] = []
        try:
            for i, f in enumerate(fences):
                if isinstance(f, CircleFence):
                    if not (np.isfinite(f.radius_m) and f.radius_m > 0 and abs(f.lat) <= 90 and np.isfinite(f.lon)):
                        raise RejectedInput("radius_out_of_range" if abs(f.lat) <= 90 else "invalid_geometry",
                                            f"fence {f.fence_id}")
                    circles.append((i, f.lat, f.lon, f.radius_m))
                elif isinstance(f, PolygonFence):
                    kind[i] = POLYGON
                    polys.append((i, _polygon_rings(f)))
                else:
                    raise RejectedInput("invalid_geometry", f"unknown fence type {type(f).__name__}")
        finally:
            _circle_boxes(circles, radius, centre, box_lat, box_lon)
            _polygon_boxes(polys, centre, box_lat, box_lon)

    @classmethod
    def compile(cls, fences: Sequence[Fence], *, raster_size: int | None = None) -> "FenceSet":
        """Validate and compile ``fences`` (indices follow their order). ``raster_size``: cells per raster side,
        by default from the cell budget (:func:`geofence.raster.build`); a splice passes the set's own."""
        fences = tuple(fences)
        n = len(fences)
        ids = np.array([f.fence_id for f in fences], dtype=np.int64)
        if len(np.unique(ids)) != n:
            raise RejectedInput("duplicate_fence_id", "fence ids must be unique within a fence set")
        kind = np.zeros(n, np.int8)
        radius = np.full(n, np.nan)
        shapes = np.empty(n, dtype=object)
        centre = np.zeros((n, 2))
        box_lat = np.zeros((n, 2))
        box_lon = np.zeros((n, 2))
        polys: list[tuple[int, list[np.ndarray]]] = []      # (fence index, rings): built together below
        try:
            cls._boxes(fences, kind, radius, centre, box_lat, box_lon, polys)
        except RejectedInput:
            _polygons_in_frames(fences, polys, centre, shapes)      # an earlier invalid polygon comes first
            raise
        _polygons_in_frames(fences, polys, centre, shapes)
        af = [f.anti_flap for f in fences]
        af_on = np.array([a.enabled for a in af], bool)
        hyst = np.array([a.hysteresis_m for a in af], float)
        max_acc = np.array([a.max_accuracy_m for a in af], float)
        pad = np.where(af_on, hyst, 0.0) + 1.0    # the usual margin; fixes with a larger one use the STRtree
        grown_lat = np.column_stack([box_lat[:, 0] - pad / M_PER_DEG_LAT, box_lat[:, 1] + pad / M_PER_DEG_LAT])
        grown_half = box_lon[:, 1] + pad / M_PER_DEG_LON / np.cos(np.radians(np.minimum(
            np.abs(grown_lat).max(axis=1) if n else np.zeros(0), 89.9)))
        # Segment boxes of half extent up to SEG_HALF_M (see segment_half_fits) meet a box only if their
        # midpoint is in the box grown by seg_pad; longitude degrees taken at the box's highest latitude.
        worst = np.minimum(np.abs(box_lat).max(axis=1) if n else np.zeros(0), 90.0)
        with np.errstate(divide="ignore"):
            seg_lon = np.where(worst >= 89.9, 180.0, SEG_HALF_M / (M_PER_DEG_LON * np.cos(np.radians(worst))))
        seg_pad = np.column_stack([np.full(n, SEG_HALF_M / M_PER_DEG_LAT), seg_lon]).reshape(n, 2)
        frame_box = np.full((n, 4), np.nan)
        poly = kind == POLYGON
        inner_cap = radius / 2
        if poly.any():
            frame_box[poly] = shapely.bounds(shapes[poly])
            inner_cap[poly] = shapely.area(shapes[poly]) / shapely.length(shapes[poly])
        inner0 = np.where(af_on, np.minimum(hyst, inner_cap), 0.0)
        shrunk = np.full(n, None, dtype=object)
        if poly.any():
            shrunk[poly] = shapely.buffer(shapes[poly], -inner0[poly], quad_segs=8)
            shapely.prepare(shrunk[poly])
        outer0 = np.where(af_on, hyst, 0.0)
        grown = np.full(n, None, dtype=object)
        if poly.any():
            # quad_segs=8: rounded corners as chords, at most 2 % of the margin inside the true buffer.
            grown[poly] = shapely.buffer(shapes[poly], outer0[poly], quad_segs=8)
            shapely.prepare(grown[poly])
        sure_in, sure_out = _sure_radii(poly, shrunk, grown, n)
        grown_box = np.column_stack([grown_lat, box_lon[:, 0], np.minimum(grown_half, 180.0)]).reshape(n, 4)
        return cls(
            fences=fences, fence_id=ids, kind=kind, radius_m=radius, shape=shapes,
            boundary=np.where(poly, shapely.boundary(np.where(poly, shapes, None)), None),
            frame_box=frame_box, centre=centre, frame=frame_params(centre[:, 0], centre[:, 1]).reshape(n, 9),
            box_lat=box_lat, box_lon=box_lon, af_on=af_on, hysteresis_m=hyst,
            min_fixes=np.array([a.min_fixes for a in af], np.int64),
            min_dwell_ms=np.array([a.min_dwell_ms for a in af], np.int64),
            max_accuracy_m=max_acc, pad_m=pad, inner_cap_m=inner_cap, inner0_m=inner0, shrunk=shrunk,
            outer0_m=outer0, grown=grown,
            grown_box=grown_box, seg_pad=seg_pad, sure_in_m=sure_in, sure_out_m=sure_out,
            edges=Edges.build(shapes[poly], n, np.flatnonzero(poly)),
            rasters=build_rasters([grown[poly], shrunk[poly]], n, np.flatnonzero(poly), size=raster_size),
            **indices(ids, box_lat, box_lon, grown_box, seg_pad),
        )


def indices(ids, box_lat, box_lon, grown_box, seg_pad, reuse=None) -> dict:
    """The set-wide lookup structures of ``FenceSet`` (fields by name), from its per-fence boxes: the id
    tables, the STRtree over the plain boxes, the grid over the grown ones, the segment grid and the clearance map.

    ``reuse``: (older set, new index of each of its fences (-1: gone), bool per fence: not in the older set)
    lets the grids renumber the older set's registrations rather than build anew (``GridIndex.build``)."""
    n = len(ids)
    boxes, owner = lonlat_boxes(box_lat[:, 0], box_lat[:, 1], box_lon[:, 0], box_lon[:, 1])
    g_x0, g_y0, g_x1, g_y1, gowner = lonlat_ranges(grown_box[:, 0], grown_box[:, 1], grown_box[:, 2], grown_box[:, 3])
    s_x0, s_y0, s_x1, s_y1, sowner = lonlat_ranges(box_lat[:, 0] - seg_pad[:, 0], box_lat[:, 1] + seg_pad[:, 0],
                                                   box_lon[:, 0], np.minimum(box_lon[:, 1] + seg_pad[:, 1], 180.0))
    id_table = np.zeros(0, np.int64)
    if n and ids.min() >= 0 and ids.max() < 4 * n + 4096:
        id_table = np.full(int(ids.max()) + 1, -1, np.int64)
        id_table[ids] = np.arange(n)
    g_reuse = s_reuse = None
    if reuse is not None:
        old, new_of_old, fresh = reuse
        g_reuse, s_reuse = (old.grid, new_of_old, fresh[gowner]), (old.seg_grid, new_of_old, fresh[sowner])
    return dict(id_order=np.argsort(ids), sorted_ids=np.sort(ids), id_table=id_table,
                tree=shapely.STRtree(boxes), tree_fence=owner,
                grid=GridIndex.build(g_y0, g_y1, g_x0, g_x1, gowner, reuse=g_reuse),
                seg_grid=GridIndex.build(s_y0, s_y1, s_x0, s_x1, sowner, reuse=s_reuse),
                clear=Clearance.build(grown_box))


def _circle_boxes(circles, radius, centre, box_lat, box_lon) -> None:
    """Circles' radius, centre and lon/lat box (their radius in degrees, 1 % generous)."""
    if not circles:
        return
    i, lat, lon, r = (np.array(c) for c in zip(*circles))
    i = i.astype(np.int64)
    radius[i] = r
    centre[i] = np.column_stack([lat, lon])
    half = r / M_PER_DEG_LAT * 1.01 + 1e-6
    box_lat[i] = np.column_stack([lat - half, lat + half])
    worst = np.maximum(np.abs(lat - half), np.abs(lat + half))
    with np.errstate(divide="ignore"):
        half_lon = np.minimum(180.0, r / (M_PER_DEG_LON * np.cos(np.radians(worst))) * 1.01 + 1e-6)
    box_lon[i] = np.column_stack([wrap_lon(lon), np.where(worst >= 89.9, 180.0, half_lon)])


def _polygon_boxes(polys, centre, box_lat, box_lon) -> None:
    """Polygons' lon/lat box from the shell, unwrapped around its first vertex (1 % + 1e-4 deg generous),
    and frame centre (the box's middle)."""
    if not polys:
        return
    idx = np.array([i for i, _ in polys])
    shells = [rs[0] for _, rs in polys]
    size = np.array([len(r) for r in shells])
    first = np.cumsum(size) - size
    xy = np.concatenate(shells)
    lon0 = xy[first, 0]
    rel = wrap_lon(xy[:, 0] - np.repeat(lon0, size))
    r_lo, r_hi = np.minimum.reduceat(rel, first), np.maximum.reduceat(rel, first)
    lat_lo, lat_hi = np.minimum.reduceat(xy[:, 1], first), np.maximum.reduceat(xy[:, 1], first)
    c_lon = lon0 + (r_lo + r_hi) / 2
    pad_lat = 0.01 * (lat_hi - lat_lo) + 1e-4
    pad_lon = 0.01 * (r_hi - r_lo) + 1e-4
    box_lat[idx] = np.column_stack([lat_lo - pad_lat, lat_hi + pad_lat])
    box_lon[idx] = np.column_stack([wrap_lon(c_lon), (r_hi - r_lo) / 2 + pad_lon])
    centre[idx] = np.column_stack([(lat_lo + lat_hi) / 2, wrap_lon(c_lon)])


def _polygons_in_frames(fences, polys, centre, shapes) -> None:
    """Polygons in their fences' frames (metres), validated and prepared, into ``shapes``; all at once.

    Raises ``RejectedInput`` (``invalid_geometry``) for the first invalid one, in fence order."""
    if not polys:
        return
    idx = np.array([i for i, _ in polys])
    rings = [r for _, rs in polys for r in rs]
    ring_poly = np.repeat(np.arange(len(polys)), [len(rs) for _, rs in polys])
    size = np.array([len(r) for r in rings])
    coords = np.concatenate(rings)
    vertex_poly = np.repeat(ring_poly, size)
    par = frame_params(centre[idx, 0], centre[idx, 1]).reshape(-1, 9)[vertex_poly]
    xy = np.column_stack(east_north(par, ecef(coords[:, 1], coords[:, 0])))
    try:
        built = shapely.polygons(shapely.linearrings(xy, indices=np.repeat(np.arange(len(rings)), size)),
                                 indices=ring_poly)
    except shapely.errors.GEOSException:
        built = None
    start = 0 if built is None else len(polys)
    if built is not None:
        finite = np.bincount(vertex_poly, ~np.isfinite(xy).all(axis=1), minlength=len(polys)) == 0
        ok = finite & shapely.is_valid(built) & ~shapely.is_empty(built)
        start = len(polys) if ok.all() else int(np.flatnonzero(~ok)[0])
    slow = []
    for j in range(start, len(polys)):      # one by one, as the reasons are named
        xy_j = xy[vertex_poly == j]
        parts = np.split(xy_j, np.cumsum(size[ring_poly == j])[:-1])
        poly = shapely.Polygon(parts[0], parts[1:])
        if not poly.is_valid or poly.is_empty or not np.isfinite(xy_j).all():
            raise RejectedInput("invalid_geometry", f"fence {fences[idx[j]].fence_id}: {shapely.is_valid_reason(poly)}")
        slow.append(poly)
    if built is None:
        built = np.empty(len(polys), dtype=object)
    built[start:] = slow
    shapely.prepare(built)
    shapes[idx] = built


def _sure_radii(poly, shrunk, grown, n) -> tuple[np.ndarray, np.ndarray]:
    """Per polygon, disks about its frame origin that spare shapely tests: inside the shrunk polygon (the
    distance from the origin to its boundary, 0 when the origin is not inside) and holding the grown one
    (its farthest vertex). Each is pulled in by a micrometre-scale safety margin."""
    sure_in, sure_out = np.zeros(n), np.full(n, np.inf)
    if not poly.any():
        return sure_in, sure_out
    p = np.flatnonzero(poly)
    origin = shapely.points(np.zeros(len(p)), np.zeros(len(p)))
    inside = shapely.contains(shrunk[p], origin)
    depth = shapely.distance(origin, shapely.boundary(shrunk[p]))
    sure_in[p] = np.where(inside & np.isfinite(depth), np.maximum(depth * (1 - 1e-9) - 1e-6, 0.0), 0.0)
    xy, owner = shapely.get_coordinates(grown[p], return_index=True)
    far = np.zeros(len(p))
    np.maximum.at(far, owner, np.hypot(xy[:, 0], xy[:, 1]))
    sure_out[p] = far * (1 + 1e-9) + 1e-6
    return sure_in, sure_out


def segment_half_fits(half_lat, half_lon, cos_low) -> np.ndarray:
    """Per segment box (deg: half extents; ``cos_low``: cosine of its latitude nearest the equator, 1 if it
    spans the equator): small enough for ``FenceSet.seg_grid``?

    Any box it meets reaches its latitude range, where a degree of longitude is at least as long as at the
    box's highest latitude, so ``half_lon`` within SEG_HALF_M there is within that box's ``seg_pad``.
    """
    limit = 0.999 * SEG_HALF_M
    return (half_lat * M_PER_DEG_LAT <= limit) & (half_lon * M_PER_DEG_LON * cos_low <= limit)


def lonlat_boxes(lat_lo, lat_hi, lon_c, lon_half):
    """Shapely boxes (lon, lat) of :func:`lonlat_ranges`, and their ``owner``."""
    lon_lo, lat_lo, lon_hi, lat_hi, owner = lonlat_ranges(lat_lo, lat_hi, lon_c, lon_half)
    return shapely.box(lon_lo, lat_lo, lon_hi, lat_hi), owner


def lonlat_ranges(lat_lo, lat_hi, lon_c, lon_half):
    """Boxes (lon, lat) for ranges given as lat [lo, hi] and lon centre ± half width (deg, arrays).

    Ranges crossing ±180 become two boxes; a half width >= 180 spans all longitudes. Returns (lon_lo, lat_lo,
    lon_hi, lat_hi, owner) where ``owner[k]`` is the input row of box ``k``.
    """
    lat_lo = np.clip(np.asarray(lat_lo, float), -90, 90)
    lat_hi = np.clip(np.asarray(lat_hi, float), -90, 90)
    lon_c = wrap_lon(lon_c)
    half = np.minimum(np.asarray(lon_half, float), 180.0)
    lo, hi = lon_c - half, lon_c + half
    full = half >= 180.0
    lo = np.where(full, -180.0, lo)
    hi = np.where(full, 180.0, hi)
    rows = np.arange(len(lat_lo))
    under, over = (lo < -180) & ~full, (hi > 180) & ~full
    main_lo, main_hi = np.maximum(lo, -180), np.minimum(hi, 180)
    extra = under | over
    ex_lo = np.where(under, lo + 360, -180.0)[extra]
    ex_hi = np.where(under, 180.0, hi - 360)[extra]
    return (np.concatenate([main_lo, ex_lo]), np.concatenate([lat_lo, lat_lo[extra]]),
            np.concatenate([main_hi, ex_hi]), np.concatenate([lat_hi, lat_hi[extra]]),
            np.concatenate([rows, rows[extra]]).astype(np.int64))
