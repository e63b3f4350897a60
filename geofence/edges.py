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

    @classmethod
    def build(cls, shapes, n: int, poly: np.ndarray) -> "Edges":
        """Edges of the polygons ``shapes`` (object array aligned with the fence indices ``poly``)."""
        rings, ring_of = shapely.get_rings(shapes, return_index=True)
        xy, vertex_ring = shapely.get_coordinates(rings, return_index=True)
        e = np.flatnonzero(vertex_ring[1:] == vertex_ring[:-1])      # rings are closed
        owner = np.asarray(poly, np.int64)[ring_of[vertex_ring[e]]]
        count = np.bincount(owner, minlength=n) if n else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
        return cls(offsets, np.column_stack([xy[e], xy[e + 1]]).reshape(-1, 4))


def outside_segment_hits(edges: Edges, shape, fence, ea, na, eb, nb) -> np.ndarray:
    """Per pair: does the segment a→b (frame metres) meet polygon ``fence``, both ends being outside it?

    ``shape``: the fences' shapely polygons (for the pairs whose signs are too close to call).
    """
    k = len(fence)
    start, count = edges.offsets[fence], edges.offsets[fence + 1] - edges.offsets[fence]
    pair = np.repeat(np.arange(k), count)
    row = np.repeat(start - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
    ed = edges.xy[row]
    ax, ay, bx, by = ea[pair], na[pair], eb[pair], nb[pair]
    px, py, qx, qy = ed[:, 0], ed[:, 1], ed[:, 2], ed[:, 3]
    sx, sy, tx, ty = bx - ax, by - ay, qx - px, qy - py
    d1 = sx * (py - ay) - sy * (px - ax)
    d2 = sx * (qy - ay) - sy * (qx - ax)
    d3 = tx * (ay - py) - ty * (ax - px)
    d4 = tx * (by - py) - ty * (bx - px)
    scale = np.maximum(np.maximum(np.abs(ax), np.abs(ay)), np.maximum(np.abs(bx), np.abs(by)))
    scale = np.maximum(scale, np.maximum(np.maximum(np.abs(px), np.abs(py)), np.maximum(np.abs(qx), np.abs(qy))))
    tol = _TOL * (4.0 * scale + 1.0) ** 2
    unsure = (np.abs(d1) <= tol) | (np.abs(d2) <= tol) | (np.abs(d3) <= tol) | (np.abs(d4) <= tol)
    cross = (d1 * d2 < 0) & (d3 * d4 < 0)
    hit = np.bincount(pair, cross, minlength=k) > 0
    ask = np.flatnonzero(np.bincount(pair, unsure, minlength=k) > 0)
    if len(ask):
        coords = np.stack([np.column_stack([ea[ask], na[ask]]), np.column_stack([eb[ask], nb[ask]])], axis=1)
        hit[ask] = shapely.intersects(shapely.linestrings(coords), shape[fence[ask]])
    return hit
