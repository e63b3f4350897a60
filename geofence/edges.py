"""Polygon edges as flat arrays, and a vectorised segment test for segments that start and end outside.

A segment whose two ends are both outside a polygon meets it exactly when it meets an edge of one of its
rings, so the test is orientation signs over (segment, edge) pairs: no shapely geometry per segment. Where a
sign is too close to zero to trust in floating point (a segment through a vertex, along an edge, or touching
one), the pair is left to shapely's exact ``intersects``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

_TOL = 1e-12      # relative: orientation values this small (of the coordinates' scale squared) ask shapely


@dataclass(frozen=True, slots=True, eq=False)
class Edges:
    offsets: np.ndarray       # int64 (n + 1,): edges of fence i are rows offsets[i] .. offsets[i + 1] - 1
    xy: np.ndarray            # float (E, 4): x0, y0, x1, y1 in the fence's frame metres (every ring)
    scale: np.ndarray         # float (n,): largest absolute vertex coordinate per fence (m), 0 for circles

    @classmethod
    def build(cls, shapes, n: int, poly: np.ndarray) -> "Edges":
        """Edges of the polygons ``shapes`` (object array aligned with the fence indices ``poly``)."""
        rings, ring_of = shapely.get_rings(shapes, return_index=True)
        xy, vertex_ring = shapely.get_coordinates(rings, return_index=True)
        e = np.flatnonzero(vertex_ring[1:] == vertex_ring[:-1])      # rings are closed
        owner = np.asarray(poly, np.int64)[ring_of[vertex_ring[e]]]
        count = np.bincount(owner, minlength=n) if n else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
        scale = np.zeros(n)
        np.maximum.at(scale, owner, np.abs(xy[e]).max(axis=1))
        return cls(offsets, np.column_stack([xy[e], xy[e + 1]]).reshape(-1, 4), scale)


def outside_segment_hits(edges: Edges, shape, fence, ea, na, eb, nb) -> np.ndarray:
    """Per pair: does the segment a→b (frame metres) meet polygon ``fence``, both ends being outside it?

    ``shape``: the fences' shapely polygons (for the pairs whose signs are too close to call).
    """
    k = len(fence)
    start, count = edges.offsets[fence], edges.offsets[fence + 1] - edges.offsets[fence]
    pair = np.repeat(np.arange(k), count)
    row = np.repeat(start - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
    # Orientation values err by a few ulps of the coordinates' scale squared; below this they ask shapely.
    scale = np.maximum(np.maximum(np.abs(ea), np.abs(na)), np.maximum(np.abs(eb), np.abs(nb)))
    tol = (_TOL * (4.0 * np.maximum(scale, edges.scale[fence]) + 1.0) ** 2)[pair]
    ed = np.take(edges.xy, row, axis=0)      # np.take: row gathers far faster than fancy indexing
    px, py, qx, qy = ed[:, 0], ed[:, 1], ed[:, 2], ed[:, 3]
    ax, ay = ea[pair], na[pair]
    sx, sy = (eb - ea)[pair], (nb - na)[pair]
    d1 = sx * (py - ay) - sy * (px - ax)
    d2 = sx * (qy - ay) - sy * (qx - ax)
    unsure = (np.abs(d1) <= tol) | (np.abs(d2) <= tol)
    # Only edges whose ends straddle the segment's line (or nearly) can cross it.
    s = np.flatnonzero((d1 * d2 < 0) | unsure)
    tx, ty = qx[s] - px[s], qy[s] - py[s]
    d3 = tx * (ay[s] - py[s]) - ty * (ax[s] - px[s])
    ps = pair[s]
    d4 = tx * (nb[ps] - py[s]) - ty * (eb[ps] - px[s])
    ts = tol[s]
    unsure_s = unsure[s] | (np.abs(d3) <= ts) | (np.abs(d4) <= ts)
    cross = (d1[s] * d2[s] < 0) & (d3 * d4 < 0)
    hit = np.bincount(ps, cross, minlength=k) > 0
    ask = np.flatnonzero(np.bincount(ps, unsure_s, minlength=k) > 0)
    if len(ask):
        coords = np.stack([np.column_stack([ea[ask], na[ask]]), np.column_stack([eb[ask], nb[ask]])], axis=1)
        hit[ask] = shapely.intersects(shapely.linestrings(coords), shape[fence[ask]])
    return hit



def splice(a: Edges, b: Edges, src: np.ndarray) -> Edges:
    """The edges of fences ``src`` (indices into a's fences followed by b's), copied in that order."""
    ea = int(a.offsets[-1])
    start = np.concatenate([a.offsets[:-1], b.offsets[:-1] + ea])[src]
    count = np.concatenate([np.diff(a.offsets), np.diff(b.offsets)])[src]
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    rows = np.repeat(start - offsets[:-1], count) + np.arange(int(offsets[-1]))
    xy = np.empty((len(rows), 4))
    in_a = rows < ea
    xy[in_a] = a.xy[rows[in_a]]
    xy[~in_a] = b.xy[rows[~in_a] - ea]
    return Edges(offsets, xy, np.concatenate([a.scale, b.scale])[src])
