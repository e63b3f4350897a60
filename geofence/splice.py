"""Incremental recompiles: a :class:`FenceSet` of a changed fence list that reuses what an older set compiled.

``FenceSet.compile`` of 100k fences takes seconds, most of it in shapely buffers and rasters, all per fence.
:func:`splice` compiles only the fences that are new or changed (by ``fence_id`` and value) and copies every
other fence's rows (frames, boxes, shapes, edges, raster codes) out of the older set; only the set-wide
lookup structures (id tables, STRtree, grids: :func:`geofence.shapes.indices`) are rebuilt from the
per-fence boxes, the grids by renumbering the older set's registrations (when fences keep their order, as
the processor's list, ordered by id, does) and registering the new boxes alone. The result is the set ``FenceSet.compile(fences)`` gives, fence
for fence in the same order, except possibly the raster size (see :func:`raster_size`); rasters answer
exactly what shapely would, so memberships and events are the same.

Nothing here keys state: :class:`geofence.state.GeofenceState` is keyed by ``fence_id``, and the step maps
ids to the current set's indices (``FenceSet.index_of``) on every call, so indices moving between sets
never move state to another fence. A fence changed under the same id keeps its state, as with a full
compile.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Sequence

import numpy as np

from geofence import edges as edges_mod
from geofence import raster
from geofence.shapes import POLYGON, Fence, FenceSet, PolygonFence, indices
from vigil.errors import RejectedInput

#: Fields rebuilt set-wide or spliced by their own module; every other field is one row per fence.
_SET_WIDE = frozenset({"fences", "id_order", "sorted_ids", "id_table", "tree", "tree_fence", "grid", "seg_grid",
                       "clear", "edges", "rasters"})
_ROWS = tuple(f.name for f in fields(FenceSet) if f.name not in _SET_WIDE)


def raster_size(current: int, polygons: int, had_polygons: bool) -> int:
    """Cells per raster side after a splice to ``polygons`` polygons: the current size while it stays within
    1.5× the cell budget and at least 2/3 of the budget's size (so a set growing or shrinking a little does
    not rebuild every raster), else the budget's size."""
    ideal = raster.budget_size(polygons)
    if had_polygons and polygons * current * current <= 1.5 * raster.BUDGET_CELLS and 1.5 * current >= ideal:
        return current
    return ideal


def splice(base: FenceSet, fences: Sequence[Fence]) -> FenceSet:
    """``FenceSet.compile(fences)``, compiling only the fences ``base`` does not hold unchanged (all of them
    when the raster size has to change, see :func:`raster_size`).

    Raises ``RejectedInput`` as ``compile`` does for the new and changed fences (``duplicate_fence_id`` for
    the whole list)."""
    fences = tuple(fences)
    n = len(fences)
    ids = np.fromiter((f.fence_id for f in fences), np.int64, n)
    if len(np.unique(ids)) != n:
        raise RejectedInput("duplicate_fence_id", "fence ids must be unique within a fence set")
    at = base.index_of(ids)
    old = base.fences
    same = np.fromiter((j >= 0 and (f is old[j] or f == old[j]) for f, j in zip(fences, at.tolist())), bool, n)
    fresh = [f for f, s in zip(fences, same.tolist()) if not s]
    kept_poly = int((base.kind[at[same]] == POLYGON).sum())
    polygons = kept_poly + sum(isinstance(f, PolygonFence) for f in fresh)
    size = raster_size(base.rasters.size, polygons, kept_poly > 0)
    if kept_poly and size != base.rasters.size:
        return FenceSet.compile(fences, raster_size=size)
    new = FenceSet.compile(fresh, raster_size=size)
    src = np.empty(n, np.int64)
    src[same] = at[same]
    src[~same] = len(base) + np.arange(len(fresh))
    new_of_old = np.full(len(base), -1, np.int64)
    new_of_old[at[same]] = np.flatnonzero(same)
    rows = {name: np.concatenate([getattr(base, name), getattr(new, name)])[src] for name in _ROWS}
    # With no polygon of base kept its raster size may differ from the new one's; it gives no codes then.
    old_rasters = base.rasters if kept_poly else _empty_like(new.rasters, len(base))
    return FenceSet(
        fences=fences, **rows,
        edges=edges_mod.splice(base.edges, new.edges, src),
        rasters=raster.splice(old_rasters, new.rasters, src),
        **indices(ids, rows["box_lat"], rows["box_lon"], rows["grown_box"], rows["seg_pad"],
                  reuse=(base, new_of_old, ~same)),
    )


def _empty_like(r: raster.Rasters, n: int) -> raster.Rasters:
    """Rasters of ``n`` fences none of which is a polygon, of ``r``'s size."""
    return raster.Rasters(r.size, np.full(n, -1, np.int64), np.zeros((0, 2)), np.zeros((0, 2)),
                          np.zeros(0, np.uint8))
