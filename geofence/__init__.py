"""geofence: pure, vectorised geofence core (no I/O, no clock).

Public API:

- shapes: :class:`CircleFence`, :class:`PolygonFence` (GeoJSON, holes), :class:`AntiFlap` (per fence, on by
  default), :data:`OFF`, :class:`FenceSet` (``FenceSet.compile(fences)``), :class:`PetFenceRules`,
  :func:`check_pet_fences`, :func:`add_pet_fence` (at most 5, radius 20 m – 50 km; ``RejectedInput``).
- membership: :func:`inside` ``(fence_set, lat, lon, margin_m) -> (fix_idx, fence_idx)``, :func:`near` (also
  signed distances, m), :func:`segment_crosses`.
- transitions: :class:`GeofenceState` (``to_bytes``/``from_bytes``), :func:`step`
  ``(state, fixes, fence_set, config) -> (state, Events)``, :class:`Events`, :class:`StepConfig`,
  kinds ``ENTER``, ``EXIT``, ``CROSS``.
"""

from geofence.membership import inside, near, segment_crosses
from geofence.shapes import (OFF, AntiFlap, CircleFence, FenceSet, PetFenceRules, PolygonFence,
                             add_pet_fence, check_pet_fences)
from geofence.transitions import CROSS, ENTER, EXIT, Events, GeofenceState, StepConfig, step

__all__ = [
    "AntiFlap", "CROSS", "CircleFence", "ENTER", "EXIT", "Events", "FenceSet", "GeofenceState", "OFF",
    "PetFenceRules", "PolygonFence", "StepConfig", "add_pet_fence", "check_pet_fences", "inside", "near",
    "segment_crosses", "step",
]
