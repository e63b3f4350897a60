"""Which decoder handles a topic, and how each decoder's output becomes FixBatch columns or events.

Every protocol ends in the same shapes: fix columns (a dict of NumPy arrays named like the
:class:`~vigil.batch.FixBatch` fields) or event rows. Row-shaped decoders (JSON) hand over their structs;
their columns are built once per protocol per batch, not per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ingest import home_json, owntracks, pet_json, teltonika, vigil_json
from ingest.topics import MAX_DEVICE_ID_LEN
from vigil.errors import RejectedInput

#: Fix columns with their fill value when a protocol does not carry them.
FIX_DEFAULTS: dict[str, tuple[np.dtype, float]] = {
    "ts_ms": (np.dtype(np.int64), 0),
    "lat": (np.dtype(np.float64), np.nan),
    "lon": (np.dtype(np.float64), np.nan),
    "speed_kmh": (np.dtype(np.float32), np.nan),
    "heading_deg": (np.dtype(np.float32), np.nan),
    "accuracy_m": (np.dtype(np.float32), np.nan),
    "ignition": (np.dtype(np.int8), -1),
    "accel_x": (np.dtype(np.float32), np.nan),
    "accel_y": (np.dtype(np.float32), np.nan),
    "accel_z": (np.dtype(np.float32), np.nan),
    "battery_pct": (np.dtype(np.float32), np.nan),
    "odometer_m": (np.dtype(np.float64), np.nan),
}


@dataclass(frozen=True, slots=True)
class EventRow:
    ts_ms: int
    type: str
    event_id: str | None = None
    sensor: str | None = None
    value: float = float("nan")
    lat: float = float("nan")
    lon: float = float("nan")
    accuracy_m: float = float("nan")


@dataclass(slots=True)
class Decoded:
    """One message's content: fix rows (with a column builder) or fix columns, or events."""

    seq: int = -1
    device: str | None = None
    rows: list[Any] = field(default_factory=list)
    columns: dict[str, np.ndarray] | None = None
    #: Index in the message of each fix (rows or column rows).
    positions: list[int] = field(default_factory=list)
    #: (index in the message, reason, detail) of fixes refused by the decoder.
    bad: list[tuple[int, str, str]] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    decode: Callable[[bytes], Decoded]
    to_columns: Callable[[list[Any]], dict[str, np.ndarray]] | None = None


@dataclass(frozen=True, slots=True)
class Route:
    device_id: str
    kind: str | None  # the kind the device must be provisioned as; None: any (a phone is a car or a pet)
    handler: Handler


def _floats(rows: list[Any], attr: str) -> np.ndarray:
    return np.array([getattr(r, attr) for r in rows], dtype=np.float64)


def _vigil_columns(rows: list[vigil_json.Fix]) -> dict[str, np.ndarray]:
    n = len(rows)
    accel = np.array([r.accel_g or (np.nan, np.nan, np.nan) for r in rows], dtype=np.float64).reshape(n, 3)
    ignition = _floats(rows, "ignition")
    return {
        "ts_ms": np.fromiter((r.ts for r in rows), np.int64, n),
        "lat": np.fromiter((r.lat for r in rows), np.float64, n),
        "lon": np.fromiter((r.lon for r in rows), np.float64, n),
        "speed_kmh": _floats(rows, "speed_kmh"),
        "heading_deg": _floats(rows, "heading_deg"),
        "accuracy_m": _floats(rows, "accuracy_m"),
        "ignition": np.where(np.isnan(ignition), -1, ignition),
        "accel_x": accel[:, 0], "accel_y": accel[:, 1], "accel_z": accel[:, 2],
    }


def _position_columns(rows: list[Any], ts_attr: str) -> dict[str, np.ndarray]:
    n = len(rows)
    return {
        "ts_ms": np.fromiter((getattr(r, ts_attr) for r in rows), np.int64, n),
        "lat": np.fromiter((r.lat for r in rows), np.float64, n),
        "lon": np.fromiter((r.lon for r in rows), np.float64, n),
        "speed_kmh": _floats(rows, "speed_kmh"),
        "heading_deg": _floats(rows, "heading_deg"),
        "accuracy_m": _floats(rows, "accuracy_m"),
        "battery_pct": _floats(rows, "battery_pct"),
    }


def _decode_vigil(payload: bytes) -> Decoded:
    d = vigil_json.decode(payload)
    return Decoded(seq=d.seq, device=d.device, rows=d.fixes, positions=d.positions, bad=d.bad)


def _decode_avl(payload: bytes) -> Decoded:
    rec = teltonika.decode(payload)
    # HDOP (IO 182, in 0.1) × 5 m: the usual rule of thumb for a consumer GNSS receiver's 1σ error.
    hdop = rec.io.get(182)
    accuracy = hdop / 10 * 5.0 if hdop is not None else np.full(len(rec.ts_ms), np.nan)
    columns = {
        "ts_ms": rec.ts_ms, "lat": rec.lat, "lon": rec.lon, "speed_kmh": rec.speed_kmh,
        "heading_deg": rec.heading_deg, "accuracy_m": accuracy, "ignition": rec.ignition,
        "accel_x": rec.accel_x, "accel_y": rec.accel_y, "accel_z": rec.accel_z, "odometer_m": rec.odometer_m,
    }
    valid = np.asarray(rec.gps_valid, dtype=bool)
    # Records without a GNSS fix repeat an old position (or 0, 0): refused as fixes, kept as dead letters.
    bad = [(int(i), "gps_invalid", "record without a GNSS fix") for i in np.flatnonzero(~valid)]
    keep = np.flatnonzero(valid)
    return Decoded(columns={k: np.asarray(v)[keep] for k, v in columns.items()}, positions=keep.tolist(), bad=bad)


def _decode_owntracks(payload: bytes) -> Decoded:
    return Decoded(rows=[owntracks.decode(payload)], positions=[0])


def _decode_pet_fix(payload: bytes) -> Decoded:
    d = pet_json.decode_fix(payload)
    return Decoded(seq=d.seq, device=d.device, rows=d.fixes, positions=d.positions, bad=d.bad)


def _decode_pet_sos(payload: bytes) -> Decoded:
    s = pet_json.decode_sos(payload)
    nan = float("nan")
    row = EventRow(
        ts_ms=s.ts, type="sos", event_id=s.event_id,
        value=nan if s.battery_pct is None else s.battery_pct,
        lat=nan if s.lat is None else s.lat, lon=nan if s.lon is None else s.lon,
        accuracy_m=nan if s.accuracy_m is None else s.accuracy_m,
    )
    return Decoded(seq=s.seq, device=s.device, events=[row])


def _decode_pet_heartbeat(payload: bytes) -> Decoded:
    h = pet_json.decode_heartbeat(payload)
    return Decoded(seq=h.seq, device=h.device, events=[EventRow(h.ts, "heartbeat", f"hb-{h.seq}", value=h.battery_pct)])


def _home(decode: Callable[[bytes], home_json.DecodedEvents]) -> Callable[[bytes], Decoded]:
    def run(payload: bytes) -> Decoded:
        d = decode(payload)
        rows = [
            EventRow(e.ts, e.type, e.event_id, e.sensor, float("nan") if e.battery_pct is None else e.battery_pct)
            for e in d.events
        ]
        return Decoded(seq=d.seq, device=d.device, events=rows)

    return run


VIGIL_CAR_FIX = Handler("vigil_json", _decode_vigil, _vigil_columns)
TELTONIKA = Handler("teltonika", _decode_avl)
OWNTRACKS = Handler("owntracks", _decode_owntracks, lambda rows: _position_columns(rows, "ts_ms"))
PET_FIX = Handler("pet_json", _decode_pet_fix, lambda rows: _position_columns(rows, "ts"))
PET_SOS = Handler("pet_sos", _decode_pet_sos)
PET_HEARTBEAT = Handler("pet_heartbeat", _decode_pet_heartbeat)
HOME_EVENT = Handler("home_event", _home(home_json.decode_events))
HOME_HEARTBEAT = Handler("home_heartbeat", _home(home_json.decode_heartbeat))

#: (kind, stream) → handler for ``vigil/v1/{kind}/{device_id}/{stream}``.
VIGIL_STREAMS: dict[tuple[str, str], Handler] = {
    ("car", "fix"): VIGIL_CAR_FIX,
    ("car", "avl"): TELTONIKA,
    ("pet", "fix"): PET_FIX,
    ("pet", "sos"): PET_SOS,
    ("pet", "heartbeat"): PET_HEARTBEAT,
    ("home", "event"): HOME_EVENT,
    ("home", "heartbeat"): HOME_HEARTBEAT,
}


def owntracks_device_id(user: str, device: str) -> str:
    """Registry id of an OwnTracks phone: the topic's user and device joined by ':'."""
    return f"{user}:{device}"


def route(topic: str) -> Route:
    """The route of a topic, or :class:`RejectedInput` ``unknown_topic``."""
    if topic.startswith("owntracks/"):
        user, device = owntracks.parse_topic(topic)
        return Route(owntracks_device_id(user, device), None, OWNTRACKS)
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "vigil" or parts[1] != "v1":
        raise RejectedInput("unknown_topic", f"expected vigil/v1/{{kind}}/{{device_id}}/{{stream}}, got {topic[:200]!r}")
    _, _, kind, device_id, stream = parts
    if not device_id or len(device_id) > MAX_DEVICE_ID_LEN:
        raise RejectedInput("unknown_topic", "device id must be 1-64 characters")
    handler = VIGIL_STREAMS.get((kind, stream))
    if handler is None:
        raise RejectedInput("unknown_topic", f"no stream {stream[:32]!r} for device kind {kind[:32]!r}")
    return Route(device_id, kind, handler)
