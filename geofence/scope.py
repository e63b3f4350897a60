"""Which fences apply to which devices, and fence records → core fences (pure, vectorised, no I/O).

A customer's car fences (scope ``customer``) apply to every car of that customer; a ``vehicle`` fence to
one car; a ``pet`` fence to its pet. The processor runs one :class:`geofence.FenceSet` over every active
fence and keeps only the events :meth:`FenceScope.allowed` accepts: one membership pass for the whole
fleet, instead of one fence set and one ``step`` per customer (100k devices of 50k customers would mean
tens of thousands of Python-level steps a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from geofence.shapes import AntiFlap, CircleFence, PolygonFence
from vigil.errors import RejectedInput

SCOPES = ("customer", "vehicle", "pet")
ANTI_FLAP_FIELDS = ("enabled", "hysteresis_m", "min_fixes", "min_dwell_ms", "max_accuracy_m")


def anti_flap_of(overrides: Mapping | None) -> AntiFlap:
    """The core's defaults with ``overrides`` applied; unknown keys are refused (``invalid_anti_flap``)."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(ANTI_FLAP_FIELDS)
    if unknown:
        raise RejectedInput("invalid_anti_flap", f"unknown anti-flap settings {sorted(unknown)}")
    return AntiFlap(**overrides)


def fence_of(*, fence_id: int, kind: str, geometry: dict, radius_m: float | None, name: str,
             anti_flap: Mapping | None) -> CircleFence | PolygonFence:
    """A core fence from a stored or submitted record: ``geometry`` a GeoJSON Point (circle centre, with
    ``radius_m`` in m) or Polygon (lon, lat degrees; each ring closed)."""
    af = anti_flap_of(anti_flap)
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if kind == "circle":
        if geometry.get("type") != "Point" or not isinstance(coords, (list, tuple)) or len(coords) < 2:
            raise RejectedInput("invalid_geometry", "a circle needs a GeoJSON Point centre [lon, lat]")
        lon, lat = (float(c) for c in coords[:2])
        if not (np.isfinite(lat) and np.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
            raise RejectedInput("invalid_geometry", f"centre [{lon}, {lat}] is not a WGS84 position")
        if radius_m is None or not np.isfinite(radius_m) or radius_m <= 0:
            raise RejectedInput("radius_out_of_range", f"radius {radius_m} m must be a positive number")
        return CircleFence(fence_id, lat, lon, float(radius_m), name, af)
    if kind == "polygon":
        if geometry.get("type") != "Polygon" or not isinstance(coords, (list, tuple)) or not coords:
            raise RejectedInput("invalid_geometry", "expected a GeoJSON Polygon")
        for ring in coords:
            try:
                arr = np.asarray(ring, float)
            except (TypeError, ValueError) as exc:
                raise RejectedInput("invalid_geometry", "a ring is not a list of [lon, lat] positions") from exc
            if arr.ndim != 2 or arr.shape[0] < 4 or arr.shape[1] < 2:
                raise RejectedInput("invalid_geometry", "a ring needs at least 4 [lon, lat] positions")
            # GeoJSON (RFC 7946 §3.1.6) rings are closed; an open one is a truncated or mistyped shape.
            if not np.array_equal(arr[0, :2], arr[-1, :2]):
                raise RejectedInput("invalid_geometry", "a ring must end at its first position (unclosed ring)")
            if np.isfinite(arr).all() and (np.abs(arr[:, 0]) > 180).any():
                raise RejectedInput("invalid_geometry", "longitude beyond ±180")
        return PolygonFence(fence_id, {"type": "Polygon", "coordinates": coords}, name, af)
    raise RejectedInput("invalid_geometry", f"unknown fence kind {kind!r}")


@dataclass(frozen=True, slots=True, eq=False)
class FenceScope:
    """Fence → device applicability as arrays. Build with :meth:`build`."""
    fence_id: np.ndarray       # int64, sorted
    f_device: np.ndarray       # int64 device code for vehicle/pet fences, -1 for customer fences
    f_owner: np.ndarray        # int64 owner code
    device: np.ndarray         # int64 device codes, sorted
    d_owner: np.ndarray        # int64 owner code, -1 without owner
    d_car: np.ndarray          # bool
    d_relevant: np.ndarray     # bool: some fence applies to the device
    lut: np.ndarray | None     # int64 row of each device code (-1 unknown) when codes are dense, else None
    relevant_lut: np.ndarray | None  # bool per device code, with ``lut``

    @classmethod
    def build(cls, *, fence_id: Sequence[int], scope: Sequence[str], fence_owner: Sequence[str],
              fence_device: Sequence[int | None], device: Sequence[int], device_is_car: Sequence[bool],
              device_owner: Sequence[str | None]) -> "FenceScope":
        codes: dict[str, int] = {}
        f_owner = np.array([codes.setdefault(o, len(codes)) for o in fence_owner], np.int64)
        d_owner = np.array([-1 if o is None else codes.setdefault(o, len(codes)) for o in device_owner], np.int64)
        fid = np.asarray(fence_id, np.int64)
        f_dev = np.array([-1 if s == "customer" or d is None else d for s, d in zip(scope, fence_device)], np.int64)
        fo = np.argsort(fid)
        dev = np.asarray(device, np.int64)
        do = np.argsort(dev)
        dev, d_owner, d_car = dev[do], d_owner[do], np.asarray(device_is_car, bool)[do]
        car_owners = np.unique(f_owner[f_dev < 0])
        relevant = (d_car & (d_owner >= 0) & np.isin(d_owner, car_owners)) | np.isin(dev, f_dev[f_dev >= 0])
        lut = relevant_lut = None
        # Device codes are a bigserial, so nearly dense: a direct table beats a binary search per fix.
        if len(dev) and dev[0] >= 0 and dev[-1] <= 8 * len(dev) + 1024:
            lut = np.full(dev[-1] + 1, -1, np.int64)
            lut[dev] = np.arange(len(dev))
            relevant_lut = np.zeros(dev[-1] + 1, bool)
            relevant_lut[dev] = relevant
        return cls(fid[fo], f_dev[fo], f_owner[fo], dev, d_owner, d_car, relevant, lut, relevant_lut)

    def _device_rows(self, device) -> tuple[np.ndarray, np.ndarray]:
        """(row in the device table, known) per device code."""
        device = np.asarray(device, np.int64)
        if len(self.device) == 0:
            return np.zeros(len(device), np.int64), np.zeros(len(device), bool)
        if self.lut is not None:
            inside = (device >= 0) & (device < len(self.lut))
            row = np.where(inside, self.lut[np.where(inside, device, 0)], -1)
            return np.maximum(row, 0), row >= 0
        pos = np.minimum(np.searchsorted(self.device, device), len(self.device) - 1)
        return pos, self.device[pos] == device

    def known(self, device) -> np.ndarray:
        """Whether each device code is in the device table this scope was built from."""
        return self._device_rows(device)[1]

    def relevant(self, device) -> np.ndarray:
        """Per device code: does any fence apply to it (bool)? Fixes of other devices need no step."""
        if self.relevant_lut is not None:
            device = np.asarray(device, np.int64)
            ok = (device >= 0) & (device < len(self.relevant_lut))
            return self.relevant_lut[np.where(ok, device, 0)] & ok
        pos, hit = self._device_rows(device)
        return hit & self.d_relevant[pos] if len(self.device) else hit

    def allowed(self, device, fence_id) -> np.ndarray:
        """Per (device code, fence_id) pair: does that fence apply to that device (bool)?"""
        device, fence_id = np.asarray(device, np.int64), np.asarray(fence_id, np.int64)
        if len(self.fence_id) == 0 or len(self.device) == 0:
            return np.zeros(len(device), bool)
        fp = np.minimum(np.searchsorted(self.fence_id, fence_id), len(self.fence_id) - 1)
        fhit = self.fence_id[fp] == fence_id
        dp, dhit = self._device_rows(device)
        own_fence = self.f_device[fp] == device
        customer = ((self.f_device[fp] < 0) & dhit & self.d_car[dp] & (self.d_owner[dp] >= 0)
                    & (self.d_owner[dp] == self.f_owner[fp]))
        return fhit & (own_fence | customer)
