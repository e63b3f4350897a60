"""Per-polygon cell rasters that answer most point-in-polygon tests with one array lookup, pure NumPy.

Each polygon fence gets an ``R × R`` grid of cells over its pre-grown shape's frame box (one cell of
padding on every side). A cell is *boundary* when an edge of the shape passes within ``EPS`` cells of it,
otherwise wholly *inside* or *outside*, decided by even-odd crossings on the line through the cell centres.
Two shapes share one raster (the pre-grown and the pre-shrunk polygon, see
:class:`geofence.shapes.FenceSet`), two bits each. A point in an inside or outside cell is at least ``EPS``
cells (well above rounding, far below a metre) from every edge, so the lookup gives exactly what shapely's
``contains_xy`` would; only points in boundary cells ask shapely. Everything is built for all polygons at
once: edges are walked column by column (each edge's cells, its supercover), crossings are tallied with
``bincount``; there is no loop over polygons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

OUT, IN, EDGE = 0, 1, 2
EPS = 1e-6                    # cells: the clearance an inside/outside cell keeps from every edge
BUDGET_CELLS = 1 << 25        # cells of all rasters together (1 byte each): 32 MB
MAX_SIZE = 80
_CHUNK = 1 << 16              # cells tallied at once while building (small: the int64 tally stays in cache)


@dataclass(frozen=True, slots=True, eq=False)
class Rasters:
    size: int                 # R: cells per side
    slot: np.ndarray          # int64 (n,): raster of each fence, -1 for circles
    origin: np.ndarray        # float (slots, 2): frame metres of the rasters' lower-left corners
    inv_cell: np.ndarray      # float (slots, 2): cells per metre, east and north
    codes: np.ndarray         # uint8 (R * slots * R,): grown code | shrunk code << 2, (east, slot, north)

    def lookup(self, fence, east, north) -> np.ndarray:
        """Per pair (polygon fences only): the raster code of the point (frame metres); ``OUT`` off the raster."""
        s = self.slot[fence]
        r = self.size
        o, inv = np.take(self.origin, s, axis=0), np.take(self.inv_cell, s, axis=0)
        u = (east - o[:, 0]) * inv[:, 0]
        v = (north - o[:, 1]) * inv[:, 1]
        ok = (u >= 0) & (u < r) & (v >= 0) & (v < r)
        cell = (np.where(ok, u, 0).astype(np.int64) * len(self.origin) + s) * r + np.where(ok, v, 0).astype(np.int64)
        return np.where(ok, self.codes[cell], OUT)


def budget_size(k: int) -> int:
    """Cells per raster side for ``k`` polygons: as many as the cell budget allows, within [8, MAX_SIZE]."""
    return int(np.clip(np.sqrt(BUDGET_CELLS / max(k, 1)), 8, MAX_SIZE))


def build(slot_shapes: list[np.ndarray], n: int, poly: np.ndarray, size: int | None = None) -> Rasters:
    """Rasters of the polygon fences ``poly`` (indices into n fences). ``slot_shapes``: object arrays (one per
    code, in bit order) of the shapes to classify, aligned with ``poly``; the first one's bounds set the box
    and must hold the others. ``size``: cells per side, by default :func:`budget_size`."""
    k = len(poly)
    slot = np.full(n, -1, np.int64)
    slot[poly] = np.arange(k)
    r = budget_size(k) if size is None else int(size)
    if k == 0:
        return Rasters(r, slot, np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, np.uint8))
    b = np.asarray(shapely.bounds(slot_shapes[0])).reshape(k, 4)
    cell = np.maximum(np.column_stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]]) / (r - 2), 1e-6)
    origin = b[:, :2] - cell
    inv = 1.0 / cell
    codes = np.zeros(k * r * r, np.uint8)
    for bit, shapes in enumerate(slot_shapes):
        codes |= (_classify(shapes, origin, inv, r) << (2 * bit)).astype(np.uint8)
    return Rasters(r, slot, origin, inv, codes)


def _edges(shapes, origin, inv):
    """Edges of every ring of ``shapes`` in cell units of their raster: (slot, ua, va, ub, vb)."""
    multi = shapely.get_type_id(shapes) != 3      # MultiPolygons (a shrunk shape may split) or empty ones
    single = np.flatnonzero(~multi)
    parts, part_of = shapes[single], single
    if multi.any():
        m = np.flatnonzero(multi)
        split, of = shapely.get_parts(shapes[m], return_index=True)
        parts, part_of = np.concatenate([parts, split]), np.concatenate([part_of, m[of]])
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    xy, vertex_ring = shapely.get_coordinates(rings, return_index=True)
    owner = part_of[ring_of[vertex_ring]]
    u = (xy[:, 0] - origin[owner, 0]) * inv[owner, 0]
    v = (xy[:, 1] - origin[owner, 1]) * inv[owner, 1]
    e = np.flatnonzero(vertex_ring[1:] == vertex_ring[:-1])       # rings are closed: consecutive vertices
    return owner[e], u[e], v[e], u[e + 1], v[e + 1]


def _classify(shapes, origin, inv, r: int) -> np.ndarray:
    """uint8 (r * k * r,) codes of one shape per slot: OUT, IN or EDGE, laid out (east cell, slot, north cell)."""
    k = len(shapes)
    slot, ua, va, ub, vb = _edges(shapes, origin, inv)
    rows = k * r
    # Parity at cell centres: crossings of the centre lines v = j + 0.5 (half-open rule), tallied at the
    # first column whose centre lies right of the crossing, then summed along the row. Laid out column-major
    # so the running sum adds whole contiguous columns.
    lo, hi = np.minimum(va, vb), np.maximum(va, vb)
    j0 = np.clip(np.ceil(lo - 0.5), 0, r).astype(np.int64)
    j1 = np.clip(np.ceil(hi - 0.5), 0, r).astype(np.int64)        # rows j0 .. j1 - 1
    e, j = _expand(j0, j1 - j0)
    vc = j + 0.5
    uc = ua[e] + (vc - va[e]) * (ub[e] - ua[e]) / (vb[e] - va[e])
    first = np.clip(np.floor(uc - 0.5) + 1, 0, r).astype(np.int64)
    at = np.sort(first * rows + slot[e] * r + j)
    total = (r + 1) * rows
    tally = np.empty(total, np.uint8)
    bounds = np.searchsorted(at, np.arange(0, total + _CHUNK, _CHUNK))
    for c, a in enumerate(range(0, total, _CHUNK)):
        z = min(a + _CHUNK, total)
        tally[a:z] = np.bincount(at[bounds[c]:bounds[c + 1]] - a, minlength=z - a)
    cols = tally.reshape(r + 1, rows)
    for c in range(1, r):           # the low bit of a running XOR is the parity of the running sum
        np.bitwise_xor(cols[c], cols[c - 1], out=cols[c])
    codes = tally[:r * rows]
    codes &= 1
    # Boundary: every cell an edge passes within EPS of. Most edges (a buffer's rounded corners) stay in
    # one column, where the cells are the edge's own north range; longer ones go column by column.
    c0 = _cell(np.minimum(ua, ub) - EPS, 0, r - 1)
    c1 = _cell(np.maximum(ua, ub) + EPS, -1, r - 1)
    one = np.flatnonzero(c1 == c0)
    _mark(codes, c0[one], slot[one], lo[one], hi[one], r, rows)
    many = np.flatnonzero(c1 > c0)
    e, i = _expand(c0[many], c1[many] - c0[many] + 1)
    e = many[e]
    xa, xb = np.minimum(ua[e], ub[e]), np.maximum(ua[e], ub[e])
    xl, xr = np.maximum(xa, i - EPS), np.minimum(xb, i + 1 + EPS)
    du = ub[e] - ua[e]
    steep = np.abs(du) < 1e-3       # nearly vertical: take the edge's whole north range in its column(s)
    slope = (vb[e] - va[e]) / np.where(steep, 1.0, du)
    yl = np.where(steep, np.minimum(va[e], vb[e]), va[e] + (xl - ua[e]) * slope)
    yr = np.where(steep, np.maximum(va[e], vb[e]), va[e] + (xr - ua[e]) * slope)
    _mark(codes, i, slot[e], np.minimum(yl, yr), np.maximum(yl, yr), r, rows)
    return codes


def _mark(codes, col, slot, lo, hi, r: int, rows: int) -> None:
    """Set EDGE on the cells of column ``col`` of raster ``slot`` from north ``lo`` to ``hi`` (cells), ± EPS."""
    r0 = _cell(lo - EPS, 0, r - 1)
    r1 = _cell(hi + EPS, -1, r - 1)
    base = col * rows + slot * r + r0
    count = r1 - r0 + 1
    for d in range(3):              # most edges touch one to three cells of a column
        codes[base[count > d] + d] = EDGE
    many = np.flatnonzero(count > 3)
    _, cells = _expand(base[many] + 3, count[many] - 3)
    codes[cells] = EDGE


def _cell(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """floor(x) as int64, clamped to [lo, hi] (np.clip on floats is several times slower)."""
    out = np.floor(x).astype(np.int64)
    np.maximum(out, lo, out=out)
    np.minimum(out, hi, out=out)
    return out


def _expand(start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(item, value) for every item ``t`` and value in ``start[t] .. start[t] + count[t] - 1``."""
    count = np.maximum(count, 0)
    item = np.repeat(np.arange(len(start)), count)
    total = int(count.sum())
    within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    return item, start[item] + within


def splice(a: Rasters, b: Rasters, src: np.ndarray) -> Rasters:
    """The rasters of fences ``src`` (indices into a's fences followed by b's), both of one size: slots are
    renumbered in fence order, as :func:`build` numbers them, and the codes copied, not rebuilt."""
    if a.size != b.size:
        raise ValueError(f"raster sizes differ: {a.size} and {b.size}")
    r, ka, kb = a.size, len(a.origin), len(b.origin)
    slot_ab = np.concatenate([a.slot, np.where(b.slot >= 0, b.slot + ka, -1)])[src]
    poly = np.flatnonzero(slot_ab >= 0)
    used = slot_ab[poly]
    k = len(used)
    slot = np.full(len(src), -1, np.int64)
    slot[poly] = np.arange(k)
    codes = np.empty((r, k, r), np.uint8)
    from_a = used < ka
    codes[:, from_a, :] = a.codes.reshape(r, ka, r)[:, used[from_a], :]
    codes[:, ~from_a, :] = b.codes.reshape(r, kb, r)[:, used[~from_a] - ka, :]
    return Rasters(r, slot, np.concatenate([a.origin, b.origin]).reshape(-1, 2)[used],
                   np.concatenate([a.inv_cell, b.inv_cell]).reshape(-1, 2)[used], codes.reshape(-1))
