"""Stage: turn a list of raw MQTT messages into one columnar FixBatch, one EventBatch, and dead letters.

Pure: the device registry snapshot and ``now_ms`` are passed in. Every message either contributes all
its content, some of it (the rest dead-lettered with reasons), or none (dead-lettered whole).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ingest import protocols, validate
from storage.deadletters import DeadLetter
from storage.devices import Device
from vigil.batch import FixBatch
from vigil.errors import RejectedInput
from vigil.events import EVENT_CODE, EventBatch


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    payload: bytes
    received_ms: int
    #: MQTT packet id and QoS, acknowledged once the message's content is durable.
    mid: int = 0
    qos: int = 0
    #: Which broker connection delivered it: a packet id is only meaningful on its own connection.
    connection: int = 0
    #: For transports other than MQTT: called with True once the content is durable (False: it is not).
    on_durable: Callable[[bool], None] | None = None


@dataclass(slots=True)
class Assembled:
    batch: FixBatch
    events: EventBatch
    dead_letters: list[DeadLetter] = field(default_factory=list)
    accepted_messages: int = 0


def device_ids(messages: list[RawMessage]) -> set[str]:
    """Device ids named by routable topics, for the registry look-up before :func:`assemble`."""
    ids = set()
    for m in messages:
        try:
            ids.add(protocols.route(m.topic).device_id)
        except RejectedInput:
            continue
    return ids


class _Collector:
    """Accumulates decoded content with, per row, the index of its message among the kept ones."""

    def __init__(self) -> None:
        self.rows: dict[protocols.Handler, tuple[list, list[int], list[int]]] = defaultdict(lambda: ([], [], []))
        self.column_parts: list[tuple[dict[str, np.ndarray], int, list[int]]] = []
        self.events: list[tuple[protocols.EventRow, int, int]] = []

    def add(self, handler: protocols.Handler, decoded: protocols.Decoded, k: int) -> None:
        if decoded.columns is not None:
            self.column_parts.append((decoded.columns, k, decoded.positions))
        elif decoded.rows:
            rows, owner, positions = self.rows[handler]
            rows.extend(decoded.rows)
            owner.extend([k] * len(decoded.rows))
            positions.extend(decoded.positions)
        self.events.extend((e, k, i) for i, e in enumerate(decoded.events))

    def fix_columns(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """All fixes as columns (every FIX_DEFAULTS key), their message index and in-message position."""
        parts, owners, positions = [], [], []
        for handler, (rows, owner, pos) in self.rows.items():
            parts.append(handler.to_columns(rows))
            owners.append(np.asarray(owner, dtype=np.int64))
            positions.append(np.asarray(pos, dtype=np.int64))
        for columns, k, pos in self.column_parts:
            parts.append(columns)
            owners.append(np.full(len(pos), k, dtype=np.int64))
            positions.append(np.asarray(pos, dtype=np.int64))
        merged = {}
        # A number beyond a float32 column's range becomes inf here, and validation refuses it.
        with np.errstate(over="ignore"):
            self._merge(parts, owners, merged)
        empty = np.empty(0, dtype=np.int64)
        return merged, np.concatenate(owners) if owners else empty, np.concatenate(positions) if positions else empty

    @staticmethod
    def _merge(parts, owners, merged) -> None:
        for name, (dtype, fill) in protocols.FIX_DEFAULTS.items():
            merged[name] = np.concatenate(
                [np.asarray(p[name], dtype=dtype) if name in p else np.full(len(o), fill, dtype=dtype)
                 for p, o in zip(parts, owners)]
            ) if parts else np.empty(0, dtype=dtype)


def assemble(
    messages: list[RawMessage],
    registry: dict[str, Device],
    *,
    now_ms: int,
    max_payload_bytes: int,
    max_future_ms: int,
) -> Assembled:
    letters: list[DeadLetter] = []
    kept: list[tuple[RawMessage, Device, int]] = []
    # kept message → (reason, "fixes" | "events") → positions in the message
    partial: dict[int, dict[tuple[str, str], list[int]]] = defaultdict(lambda: defaultdict(list))
    collector = _Collector()

    for msg in messages:
        try:
            device, handler, decoded = _admit(msg, registry, max_payload_bytes)
        except RejectedInput as exc:
            letters.append(DeadLetter(msg.topic, exc.reason, exc.detail, msg.payload))
            continue
        k = len(kept)
        kept.append((msg, device, decoded.seq))
        for i, reason, _ in decoded.bad:
            partial[k][reason, "fixes"].append(i)
        collector.add(handler, decoded, k)

    meta = np.array([(d.id, seq, m.received_ms) for m, d, seq in kept], dtype=np.int64).reshape(-1, 3)
    cols, owner, position = collector.fix_columns()
    floats = tuple(cols[name] for name, (dtype, _) in protocols.FIX_DEFAULTS.items() if dtype.kind == "f")
    code = validate.check(cols["ts_ms"], cols["lat"], cols["lon"], now_ms=now_ms, max_future_ms=max_future_ms,
                          values=floats)
    for row in np.flatnonzero(code):
        partial[int(owner[row])][validate.REASONS[code[row]], "fixes"].append(int(position[row]))
    per_fix = meta[owner]
    batch = FixBatch(device=per_fix[:, 0], seq=per_fix[:, 1], received_ms=per_fix[:, 2], **cols).take(code == 0)

    events = _events(collector.events, meta, now_ms, max_future_ms, partial)
    for k, by_reason in partial.items():
        msg = kept[k][0]
        for (reason, what), idx in sorted(by_reason.items()):
            letters.append(DeadLetter(msg.topic, reason, json.dumps({what: sorted(idx)}), msg.payload))
    return Assembled(batch=batch, events=events, dead_letters=letters, accepted_messages=len(kept))


def _events(rows, meta, now_ms, max_future_ms, partial) -> EventBatch:
    if not rows:
        return EventBatch.empty()
    owner = np.array([k for _, k, _ in rows], dtype=np.int64)
    ts = np.array([e.ts_ms for e, _, _ in rows], dtype=np.int64)
    lat = np.array([r[0].lat for r in rows], dtype=np.float64)
    lon = np.array([r[0].lon for r in rows], dtype=np.float64)
    values = np.array([(r[0].value, r[0].accuracy_m) for r in rows], dtype=np.float64).reshape(-1, 2)
    with np.errstate(over="ignore"):
        values = values.astype(np.float32)  # the stored width: beyond it is out of range
    code = validate.check(ts, lat, lon, now_ms=now_ms, max_future_ms=max_future_ms,
                          values=(values[:, 0], values[:, 1]), position_required=False)
    for i in np.flatnonzero(code):
        partial[int(owner[i])][validate.REASONS[code[i]], "events"].append(rows[i][2])
    ev = [e for e, _, _ in rows]
    with np.errstate(over="ignore"):
        batch = EventBatch(
            device=meta[owner, 0], ts_ms=ts, type=[EVENT_CODE[e.type] for e in ev],
            value=values[:, 0], lat=lat, lon=lon, accuracy_m=values[:, 1], seq=meta[owner, 1],
            received_ms=meta[owner, 2], late=np.zeros(len(ev)), sensor=[e.sensor for e in ev],
            event_id=[e.event_id for e in ev],
        )
    return batch.take(code == 0)


def _admit(msg: RawMessage, registry: dict[str, Device], max_payload_bytes: int):
    if len(msg.payload) > max_payload_bytes:
        raise RejectedInput("payload_too_large", f"{len(msg.payload)} bytes > limit {max_payload_bytes}")
    route = protocols.route(msg.topic)
    device = registry.get(route.device_id)
    if device is None:
        raise RejectedInput("unknown_device", f"device {route.device_id!r} is not provisioned")
    if route.kind is not None and device.kind != route.kind:
        raise RejectedInput("kind_mismatch", f"device is a {device.kind}, topic says {route.kind}")
    if device.status != "active":
        raise RejectedInput("device_inactive", f"device status is {device.status}")
    decoded = route.handler.decode(msg.payload)
    if decoded.device is not None and decoded.device != route.device_id:
        raise RejectedInput("device_mismatch", f"payload device {decoded.device!r} != topic {route.device_id!r}")
    return device, route.handler, decoded
