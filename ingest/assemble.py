"""Stage: turn a list of raw MQTT messages into one columnar FixBatch plus dead letters.

Pure: the device registry snapshot and ``now_ms`` are passed in. Every message either contributes all
its fixes, some of them (the rest dead-lettered with reasons), or none (dead-lettered whole).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ingest import topics, validate, vigil_json
from storage.deadletters import DeadLetter
from storage.devices import Device
from vigil.batch import FixBatch
from vigil.errors import RejectedInput

_NAN3 = (np.nan, np.nan, np.nan)


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    payload: bytes
    received_ms: int
    #: MQTT packet id and QoS, acknowledged once the message's fixes are durable.
    mid: int = 0
    qos: int = 0
    #: Which broker connection delivered it: a packet id is only meaningful on its own connection.
    connection: int = 0


@dataclass(slots=True)
class Assembled:
    batch: FixBatch
    dead_letters: list[DeadLetter] = field(default_factory=list)
    accepted_messages: int = 0


def device_ids(messages: list[RawMessage]) -> set[str]:
    """Device ids named by well-formed topics, for the registry look-up before :func:`assemble`."""
    ids = set()
    for m in messages:
        parts = m.topic.split("/")
        if len(parts) == 5:
            ids.add(parts[3])
    return ids


def assemble(
    messages: list[RawMessage],
    registry: dict[str, Device],
    *,
    now_ms: int,
    max_payload_bytes: int,
    max_future_ms: int,
) -> Assembled:
    letters: list[DeadLetter] = []
    fixes: list[vigil_json.Fix] = []
    owner: list[int] = []        # per fix: index into ``kept``
    position: list[int] = []     # per fix: index inside its message
    kept: list[tuple[RawMessage, Device, int]] = []
    partial: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))

    for msg in messages:
        try:
            device, decoded = _admit(msg, registry, max_payload_bytes)
        except RejectedInput as exc:
            letters.append(DeadLetter(msg.topic, exc.reason, exc.detail, msg.payload))
            continue
        k = len(kept)
        kept.append((msg, device, decoded.seq))
        for i, reason, _ in decoded.bad:
            partial[k][reason].append(i)
        fixes.extend(decoded.fixes)
        position.extend(decoded.positions)
        owner.extend([k] * len(decoded.fixes))

    n = len(fixes)
    owner_a = np.asarray(owner, dtype=np.int64)
    ts = np.fromiter((f.ts for f in fixes), np.int64, n)
    lat = np.fromiter((f.lat for f in fixes), np.float64, n)
    lon = np.fromiter((f.lon for f in fixes), np.float64, n)
    code = validate.check(ts, lat, lon, now_ms=now_ms, max_future_ms=max_future_ms)
    for row in np.flatnonzero(code):
        partial[int(owner_a[row])][validate.REASONS[code[row]]].append(position[row])

    good = code == 0
    accel = np.array([f.accel_g or _NAN3 for f in fixes], dtype=np.float32).reshape(n, 3)
    ignition = np.array([f.ignition for f in fixes], dtype=np.float64)
    meta = np.array([(d.id, seq, m.received_ms) for m, d, seq in kept], dtype=np.int64).reshape(-1, 3)
    per_fix = meta[owner_a] if n else np.empty((0, 3), dtype=np.int64)
    batch = FixBatch(
        device=per_fix[:, 0],
        ts_ms=ts,
        lat=lat,
        lon=lon,
        speed_kmh=np.array([f.speed_kmh for f in fixes], dtype=np.float64),
        heading_deg=np.array([f.heading_deg for f in fixes], dtype=np.float64),
        accuracy_m=np.array([f.accuracy_m for f in fixes], dtype=np.float64),
        ignition=np.where(np.isnan(ignition), -1, ignition),
        accel_x=accel[:, 0],
        accel_y=accel[:, 1],
        accel_z=accel[:, 2],
        seq=per_fix[:, 1],
        received_ms=per_fix[:, 2],
    ).take(good)

    for k, by_reason in partial.items():
        msg = kept[k][0]
        for reason, idx in sorted(by_reason.items()):
            detail = json.dumps({"fixes": sorted(idx)})
            letters.append(DeadLetter(msg.topic, reason, detail, msg.payload))
    return Assembled(batch=batch, dead_letters=letters, accepted_messages=len(kept))


def _admit(msg: RawMessage, registry: dict[str, Device], max_payload_bytes: int):
    if len(msg.payload) > max_payload_bytes:
        raise RejectedInput("payload_too_large", f"{len(msg.payload)} bytes > limit {max_payload_bytes}")
    topic = topics.parse(msg.topic)
    device = registry.get(topic.device_id)
    if device is None:
        raise RejectedInput("unknown_device", f"device {topic.device_id!r} is not provisioned")
    if device.kind != topic.kind:
        raise RejectedInput("kind_mismatch", f"device is a {device.kind}, topic says {topic.kind}")
    if device.status != "active":
        raise RejectedInput("device_inactive", f"device status is {device.status}")
    decoded = vigil_json.decode(msg.payload)
    if decoded.device is not None and decoded.device != topic.device_id:
        raise RejectedInput("device_mismatch", f"payload device {decoded.device!r} != topic {topic.device_id!r}")
    return device, decoded
