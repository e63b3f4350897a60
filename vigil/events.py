"""The columnar device-event batch: home-kit sensor events, pet SOS presses, heartbeats, arm/disarm.

Events are rare next to fixes, so string columns (sensor, event id) are NumPy object arrays.
Times are UTC ms; ``value`` carries the event's number (battery %, for instance) or NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import msgspec
import numpy as np

from vigil.errors import BusError

#: Event types by code (the ``type`` column). Order is part of the wire format: append only.
EVENT_TYPES = (
    "heartbeat",
    "water_leak",
    "water_restored",
    "smoke",
    "smoke_cleared",
    "motion",
    "power_loss",
    "power_restored",
    "tamper",
    "low_battery",
    "armed",
    "disarmed",
    "sos",
    "crash",  # detected by the trip processor from the accelerometer (or device-reported)
)
EVENT_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}

_NUMERIC = (
    ("device", np.dtype("<i8")),
    ("ts_ms", np.dtype("<i8")),
    ("type", np.dtype("<u1")),
    ("value", np.dtype("<f4")),
    ("lat", np.dtype("<f8")),
    ("lon", np.dtype("<f8")),
    ("accuracy_m", np.dtype("<f4")),
    ("seq", np.dtype("<i8")),
    ("received_ms", np.dtype("<i8")),
    ("late", np.dtype("<i1")),
)
_TEXT = ("sensor", "event_id")
_MAGIC = b"VEB1"


@dataclass(slots=True)
class EventBatch:
    device: np.ndarray
    ts_ms: np.ndarray
    type: np.ndarray
    value: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    accuracy_m: np.ndarray
    seq: np.ndarray
    received_ms: np.ndarray
    late: np.ndarray
    sensor: np.ndarray     # str or None per event: which sensor of a home kit
    event_id: np.ndarray   # str or None: the device's id of the event, for de-duplication

    def __post_init__(self) -> None:
        n = len(self.device)
        for name, dtype in _NUMERIC:
            setattr(self, name, np.asarray(getattr(self, name), dtype=dtype))
        for name in _TEXT:
            arr = np.empty(n, dtype=object)
            arr[:] = list(getattr(self, name))
            setattr(self, name, arr)
        for name in (*(n for n, _ in _NUMERIC), *_TEXT):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"column {name} must have length {n}")

    def __len__(self) -> int:
        return int(self.device.shape[0])

    @classmethod
    def empty(cls) -> "EventBatch":
        return cls(**{name: np.empty(0, dtype) for name, dtype in _NUMERIC}, sensor=[], event_id=[])

    @classmethod
    def concat(cls, batches: Sequence["EventBatch"]) -> "EventBatch":
        if not batches:
            return cls.empty()
        names = (*(n for n, _ in _NUMERIC), *_TEXT)
        return cls(**{name: np.concatenate([getattr(b, name) for b in batches]) for name in names})

    def take(self, index) -> "EventBatch":
        names = (*(n for n, _ in _NUMERIC), *_TEXT)
        return EventBatch(**{name: getattr(self, name)[index] for name in names})

    def split(self, part: np.ndarray, parts: int) -> list["EventBatch"]:
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(parts + 1))
        return [self.take(order[bounds[i]:bounds[i + 1]]) for i in range(parts)]

    def type_names(self) -> list[str]:
        return [EVENT_TYPES[c] for c in self.type]

    def to_bytes(self) -> bytes:
        body = {name: getattr(self, name).tobytes() for name, _ in _NUMERIC}
        body.update({name: list(getattr(self, name)) for name in _TEXT})
        return _MAGIC + msgspec.msgpack.encode({"n": len(self), **body})

    @classmethod
    def from_bytes(cls, data: bytes) -> "EventBatch":
        if data[:4] != _MAGIC:
            raise BusError("not an event batch frame")
        try:
            body = msgspec.msgpack.decode(data[4:])
            n = body["n"]
            cols = {name: np.frombuffer(body[name], dtype=dtype, count=n) for name, dtype in _NUMERIC}
            return cls(**cols, sensor=body["sensor"], event_id=body["event_id"])
        except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            raise BusError(f"malformed event batch frame: {exc}") from exc
