"""Fuzzing every handler of the route table (ingest.protocols) and the assemble stage behind them.

Three properties, for the seven ``vigil/v1`` streams and OwnTracks:

(a) any bytes (random, random JSON, and valid frames mutated byte-wise or field-wise) either decode or
    raise :class:`RejectedInput` with a snake_case reason; a returned :class:`protocols.Decoded` is
    self-consistent and its rows build columns;
(b) schema-valid frames with random values are never rejected and decode to the values sent;
(c) :func:`ingest.assemble.assemble` over a random mix of valid, partly bad and garbage messages never
    raises, dead-letters every bad message with the reasons its content calls for, carries the raw
    payload unchanged, and accepts exactly the valid fixes and events.

``bench/fuzz_decoders.py`` runs the same kind of inputs a million at a time.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ingest import protocols, teltonika, validate
from ingest.assemble import RawMessage, assemble
from ingest.home_json import HomeEventType
from storage.devices import Device
from vigil.errors import RejectedInput
from vigil.events import EVENT_CODE
from tests.fuzz_frames import (
    HANDLERS,
    SNAKE,
    NOW_MS,
    MAX_FUTURE_MS,
    MAX_PAYLOAD,
    LATEST_OK_MS,
    TS_OK,
    FAST,
    decode_or_reject,
    all_handlers_survive,
    ABSENT,
    LAT_OK,
    LON_OK,
    present,
    to_bytes,
    envelope,
    car_fix,
    pet_fix,
    home_event,
    pet_sos,
    pet_heartbeat,
    home_heartbeat,
    MAX_TST,
    TST_OK,
    owntracks_location,
    VALID_BODIES,
    frame_of,
    json_values,
    mutated,
    reframe,
    tree_mutated,
)


@settings(max_examples=400, **FAST)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_decode_or_reject(payload):
    all_handlers_survive(payload)


@settings(max_examples=300, **FAST)
@given(json_values)
def test_arbitrary_json_decodes_or_rejects(value):
    all_handlers_survive(json.dumps(value).encode())


@settings(max_examples=600, **FAST)
@given(st.sampled_from(sorted(HANDLERS)), st.data())
def test_mutated_valid_frames_decode_or_reject(name, data):
    frame = frame_of(name, data.draw(VALID_BODIES[name]))
    payload = data.draw(mutated(frame))
    decode_or_reject(HANDLERS[name], payload)
    if name == "car/avl" and len(payload) >= 12:
        # The same edit with length and CRC repaired, so the record parser itself meets it.
        decode_or_reject(HANDLERS[name], reframe(payload[8:-4]))
        decode_or_reject(HANDLERS[name], reframe(data.draw(mutated(frame[8:-4]))))


@settings(max_examples=400, **FAST)
@given(st.sampled_from(sorted(set(HANDLERS) - {"car/avl"})), st.data())
def test_field_mutated_json_frames_decode_or_reject(name, data):
    body = data.draw(tree_mutated(data.draw(VALID_BODIES[name])))
    payload = json.dumps(body).encode()
    decode_or_reject(HANDLERS[name], payload)
    all_handlers_survive(payload)


DEEP = 100_000
EDGE_CASES = [
    b"", b" ", b"null", b"0", b"[]", b"{}", b'""', b"\xef\xbb\xbf{}", b"\x00" * 12, b"\x00" * 8 + b"\xff" * 4,
    b"[" * DEEP + b"]" * DEEP,
    b'{"seq":1,"fixes":[' + b"[" * DEEP + b"]" * DEEP + b"]}",
    b'{"seq":1,"events":[{"ts":1,"type":"motion","event_id":' + b"[" * DEEP + b"]" * DEEP + b"}]}",
    b'{"_type":"location","x":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
    b'{"seq":1,"fixes":[{"ts":1,"lat":1,"lon":1}],"v":' + b"9" * 5000 + b"}",
    b'{"seq":1,"fixes":[{"ts":1,"lat":1e999,"lon":1,"accuracy_m":1}]}',
    b'{"seq":1,"ts":1,"battery_pct":1e999,"event_id":"x"}',
    b'{"seq":1,"ts":1,"event_id":"\xff\xfe"}',
    b'{"seq":1,"events":[{"ts":1,"type":"heartbeat","event_id":"x"}]}',
    b'{"_type":"location","lat":1,"lon":2,"tst":9223372036854776}',
    b'{"_type":"encrypted","data":"x"}', b'{"_type":' + b'"a' * 1000 + b'"}',
    reframe(b"\x8e\xff" + b"\x00" * 300 + b"\xff"), reframe(b"\x08\x01" + b"\xff" * 40 + b"\x01"),
]


@pytest.mark.parametrize("payload", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_edge_cases_decode_or_reject(payload):
    all_handlers_survive(payload)


# -- (b) valid frames decode to the values sent ------------------------------------------------------------


def same(got, want) -> bool:
    """Equal, with None for null/absent and NaN for a missing event value."""
    if want is None or want is ABSENT:
        return got is None or (isinstance(got, float) and math.isnan(got))
    if isinstance(want, bool):
        return got is want
    return got == want


def accepted(name: str, payload: bytes) -> protocols.Decoded:
    out = decode_or_reject(HANDLERS[name], payload)
    assert not isinstance(out, RejectedInput), f"valid {name} frame rejected: {out.reason}: {out.detail}"
    return out


def check_envelope(out: protocols.Decoded, body: dict) -> None:
    assert out.seq == body["seq"] and out.device == body.get("device") and not out.bad


FIX_FIELDS = ("ts", "lat", "lon", "speed_kmh", "heading_deg", "accuracy_m")


@settings(max_examples=150, **FAST)
@given(VALID_BODIES["car/fix"], st.booleans())
def test_valid_car_fix_round_trip(body, ascii_only):
    out = accepted("car/fix", to_bytes(body, ascii_only))
    check_envelope(out, body)
    assert out.positions == list(range(len(body["fixes"])))
    for row, sent in zip(out.rows, body["fixes"], strict=True):
        assert all(same(getattr(row, k), sent.get(k)) for k in FIX_FIELDS)
        assert same(row.ignition, sent.get("ignition"))
        assert row.accel_g == (None if sent.get("accel_g") is None else tuple(sent["accel_g"]))
    cols = protocols.VIGIL_CAR_FIX.to_columns(out.rows)
    assert cols["ts_ms"].tolist() == [f["ts"] for f in body["fixes"]]


@settings(max_examples=150, **FAST)
@given(VALID_BODIES["pet/fix"], st.booleans())
def test_valid_pet_fix_round_trip(body, ascii_only):
    out = accepted("pet/fix", to_bytes(body, ascii_only))
    check_envelope(out, body)
    for row, sent in zip(out.rows, body["fixes"], strict=True):
        assert all(same(getattr(row, k), sent.get(k)) for k in (*FIX_FIELDS, "battery_pct"))


@settings(max_examples=150, **FAST)
@given(VALID_BODIES["home/event"], st.booleans())
def test_valid_home_events_round_trip(body, ascii_only):
    out = accepted("home/event", to_bytes(body, ascii_only))
    check_envelope(out, body)
    for row, sent in zip(out.events, body["events"], strict=True):
        assert (row.ts_ms, row.type, row.event_id) == (sent["ts"], sent["type"], sent["event_id"])
        assert same(row.sensor, sent.get("sensor")) and same(row.value, sent.get("battery_pct"))


@settings(max_examples=100, **FAST)
@given(VALID_BODIES["home/heartbeat"])
def test_valid_home_heartbeat_round_trip(body):
    out = accepted("home/heartbeat", to_bytes(body))
    check_envelope(out, body)
    (row,) = out.events
    assert (row.ts_ms, row.type, row.event_id) == (body["ts"], "heartbeat", f"hb-{body['seq']}")
    assert same(row.value, body.get("battery_pct"))


@settings(max_examples=150, **FAST)
@given(VALID_BODIES["pet/sos"], st.booleans())
def test_valid_pet_sos_round_trip(body, ascii_only):
    out = accepted("pet/sos", to_bytes(body, ascii_only))
    check_envelope(out, body)
    (row,) = out.events
    assert (row.ts_ms, row.type, row.event_id) == (body["ts"], "sos", body["event_id"])
    assert same(row.lat, body.get("lat")) and same(row.lon, body.get("lon"))
    assert same(row.accuracy_m, body.get("accuracy_m")) and same(row.value, body.get("battery_pct"))


@settings(max_examples=100, **FAST)
@given(VALID_BODIES["pet/heartbeat"])
def test_valid_pet_heartbeat_round_trip(body):
    out = accepted("pet/heartbeat", to_bytes(body))
    check_envelope(out, body)
    (row,) = out.events
    assert (row.ts_ms, row.type, row.event_id, row.value) == (
        body["ts"], "heartbeat", f"hb-{body['seq']}", body["battery_pct"])


@settings(max_examples=150, **FAST)
@given(VALID_BODIES["owntracks"], st.booleans())
def test_valid_owntracks_round_trip(body, ascii_only):
    out = accepted("owntracks", to_bytes(body, ascii_only))
    assert not out.bad
    (row,) = out.rows
    assert row.ts_ms == body["tst"] * 1000 and row.lat == body["lat"] and row.lon == body["lon"]
    pairs = {"accuracy_m": "acc", "speed_kmh": "vel", "heading_deg": "cog", "battery_pct": "batt",
             "altitude_m": "alt", "vertical_accuracy_m": "vac", "tid": "tid", "trigger": "t", "conn": "conn"}
    assert all(same(getattr(row, attr), body.get(key)) for attr, key in pairs.items())


@settings(max_examples=150, **FAST)
@given(VALID_BODIES["car/avl"])
def test_valid_teltonika_round_trip(records):
    out = accepted("car/avl", teltonika.encode(records))
    keep = np.flatnonzero(records.gps_valid)
    assert out.positions == keep.tolist() and out.columns is not None
    for name in ("ts_ms", "lat", "lon", "speed_kmh", "heading_deg", "ignition", "accel_x", "odometer_m"):
        np.testing.assert_array_equal(out.columns[name], getattr(records, name)[keep], err_msg=name)
    # A record without a fix costs only itself (gps_invalid), never the packet.
    assert out.bad == [(i, "gps_invalid", "record without a GNSS fix") for i in np.flatnonzero(~records.gps_valid)]


# -- (c) assemble over a mix of valid, partly bad and garbage messages -------------------------------------


@dataclass
class Planned:
    """One message of a mixed batch and what assemble must make of it."""

    message: RawMessage
    device: Device | None
    #: The one dead letter of a message refused whole; None when the message is kept.
    whole_reason: str | None = None
    #: Dead letters of a kept message: reason -> parsed detail, e.g. {"fixes": [0, 2]}.
    letters: dict[str, dict] = field(default_factory=dict)
    fixes: int = 0
    events: int = 0


def beyond(limit: float):
    """Numbers with an absolute value over ``limit``, either sign."""
    magnitude = st.floats(limit, 1e300, exclude_min=True) | st.integers(int(limit) + 1, 2**53)
    return st.tuples(magnitude, st.sampled_from([1, -1])).map(lambda mv: mv[0] * mv[1])


TS_OLD = st.integers(-(2**63), validate.MIN_TS_MS - 1)
TS_FUTURE = st.integers(LATEST_OK_MS + 1, 2**63 - 1)
BAD_TS = {"ts_too_old": TS_OLD, "ts_in_future": TS_FUTURE}
BAD_BATTERY = st.floats(100, 1e300, exclude_min=True) | st.floats(-1e300, 0, exclude_max=True) | st.just(101)


@st.composite
def json_fix_item(draw, pet: bool, bad: bool) -> tuple[dict, str | None]:
    """A fix valid for assemble, or one with exactly one problem and the reason it earns."""
    fix = draw((pet_fix if pet else car_fix)(TS_OK, LAT_OK, LON_OK))
    if not bad:
        return fix, None
    reasons = ["lat_out_of_range", "lon_out_of_range", "ts_too_old", "ts_in_future", "invalid_schema"]
    reason = draw(st.sampled_from(reasons + ["battery_out_of_range"] * pet))
    if reason == "lat_out_of_range":
        fix["lat"] = draw(beyond(90))
    elif reason == "lon_out_of_range":
        fix["lon"] = draw(beyond(180))
    elif reason in BAD_TS:
        fix["ts"] = draw(BAD_TS[reason])
    elif reason == "battery_out_of_range":
        fix["battery_pct"] = draw(BAD_BATTERY)
    else:
        key, value = draw(st.sampled_from([("lat", "x"), ("ts", 1.5), ("lon", None), ("ts", ABSENT), ("lat", [])]))
        fix[key] = value
        fix = present(fix)
    return fix, reason


@st.composite
def event_item(draw, strategy, bad: bool) -> tuple[dict, str | None]:
    if not bad:
        return draw(strategy(TS_OK)), None
    reason = draw(st.sampled_from(sorted(BAD_TS)))
    return draw(strategy(BAD_TS[reason])), reason


@st.composite
def mixed_items(draw, item, partial: bool, max_size: int = 4):
    """Items in message order: all good, or (partial) at least one bad among good ones."""
    good = draw(st.lists(item(False), min_size=0 if partial else 1, max_size=max_size))
    bad = draw(st.lists(item(True), min_size=1, max_size=3)) if partial else []
    return draw(st.permutations(good + bad))


def letters_of(items, what: str) -> dict[str, dict]:
    by_reason: dict[str, list[int]] = {}
    for i, (_, reason) in enumerate(items):
        if reason is not None:
            by_reason.setdefault(reason, []).append(i)
    return {reason: {what: idx} for reason, idx in by_reason.items()}


def avl_item(bad: bool):
    good = st.tuples(TS_OK, st.integers(-900_000_000, 900_000_000), st.integers(-1_800_000_000, 1_800_000_000),
                     st.integers(1, 255))

    @st.composite
    def build(draw):
        ts, lat_i, lon_i, sats = draw(good)
        if not bad:
            return (ts, lat_i, lon_i, sats), None
        reason = draw(st.sampled_from(["gps_invalid", "gps_invalid_lat", "ts_too_old", "ts_in_future"]))
        if reason == "gps_invalid":
            sats = 0
        elif reason == "gps_invalid_lat":
            reason, lat_i = "gps_invalid", draw(st.integers(900_000_001, 2**31 - 1)) * draw(st.sampled_from([1, -1]))
        else:
            ts = draw(BAD_TS[reason])
        return (ts, lat_i, lon_i, sats), reason

    return build()


@st.composite
def content(draw, name: str, device_id: str, partial: bool) -> tuple[bytes, int, int, dict]:
    """A frame for ``name`` that assemble must accept (partial: in part): payload, fixes, events, letters."""
    if name == "car/avl":
        items = draw(mixed_items(avl_item, partial))
        ts, lat_i, lon_i, sats = (np.array(c) for c in zip(*(cells for cells, _ in items)))
        records = teltonika.AvlRecords.from_columns(
            ts_ms=ts, lat=lat_i / 1e7, lon=lon_i / 1e7, satellites=sats, speed_kmh=draw(st.integers(0, 250)),
            ignition=draw(st.sampled_from([0, 1, None])),
            codec=draw(st.sampled_from([teltonika.CODEC_8, teltonika.CODEC_8E])),
        )
        good = sum(r is None for _, r in items)
        return teltonika.encode(records), good, 0, letters_of(items, "fixes")
    if name == "owntracks":
        body = draw(owntracks_location(TST_OK, LAT_OK, LON_OK))
        if not partial:
            return to_bytes(body), 1, 0, {}
        reason = draw(st.sampled_from(["ts_too_old", "ts_in_future", "lat_out_of_range", "lon_out_of_range"]))
        if reason == "ts_too_old":
            body["tst"] = draw(st.integers(-MAX_TST, validate.MIN_TS_MS // 1000 - 1))
        elif reason == "ts_in_future":
            body["tst"] = draw(st.integers(LATEST_OK_MS // 1000 + 1, MAX_TST))
        elif reason == "lat_out_of_range":
            body["lat"] = draw(beyond(90))
        else:
            body["lon"] = draw(beyond(180))
        return to_bytes(body), 0, 0, {reason: {"fixes": [0]}}
    env = draw(envelope(device=st.sampled_from([ABSENT, device_id])))
    if name in ("car/fix", "pet/fix"):
        items = draw(mixed_items(lambda bad: json_fix_item(name == "pet/fix", bad), partial))
        body = present({**env, "fixes": [f for f, _ in items]})
        return to_bytes(body), sum(r is None for _, r in items), 0, letters_of(items, "fixes")
    if name == "home/event":
        items = draw(mixed_items(lambda bad: event_item(home_event, bad), partial))
        body = present({**env, "events": [e for e, _ in items]})
        return to_bytes(body), 0, sum(r is None for _, r in items), letters_of(items, "events")
    # An SOS position, when present, must be on the globe like any fix's.
    sos_on_globe = lambda ts: pet_sos(ts, LAT_OK, LON_OK)  # noqa: E731
    single = {"home/heartbeat": home_heartbeat, "pet/sos": sos_on_globe, "pet/heartbeat": pet_heartbeat}[name]
    body, reason = draw(event_item(single, partial))
    body = present({**body, "v": env["v"], "device": env["device"]})
    return to_bytes(body), 0, int(reason is None), letters_of([(body, reason)], "events")


@st.composite
def planned_message(draw, i: int) -> Planned:
    name = draw(st.sampled_from(sorted(HANDLERS)))
    category = draw(st.sampled_from(["valid", "partial", "garbage", "route"]))
    if name == "owntracks":
        kind, device_id, topic = draw(st.sampled_from(["car", "pet"])), f"u{i}:phone", f"owntracks/u{i}/phone"
    else:
        kind, stream = name.split("/")
        device_id, topic = f"dev{i}", f"vigil/v1/{kind}/dev{i}/{stream}"
    device = Device(id=i + 1, device_id=device_id, kind=kind, owner=None, status="active")
    payload, fixes, events, letters = draw(content(name, device_id, category == "partial"))

    def plan(payload=payload, topic=topic, device=device, **kw) -> Planned:
        return Planned(RawMessage(topic, payload, received_ms=NOW_MS - i), device, **kw)

    if category in ("valid", "partial"):
        if category == "valid" and name not in ("car/avl",) and draw(st.integers(0, 9)) == 0:
            payload += b" " * (MAX_PAYLOAD - len(payload))  # exactly at the limit: still accepted
        return plan(payload, fixes=fixes, events=events, letters=letters)
    if category == "garbage":
        frame = payload
        payload = draw(st.binary(max_size=300) | mutated(frame) | st.just(b"") | (
            st.just(None) if name == "car/avl" else tree_mutated(json.loads(frame)).map(to_bytes)))
        if payload is None:
            payload = reframe(draw(mutated(frame[8:-4])))
        outcome = decode_or_reject(HANDLERS[name], payload)
        if not isinstance(outcome, RejectedInput):  # the edit kept the frame valid: use one that is not
            payload = b""
            outcome = decode_or_reject(HANDLERS[name], payload)
        return plan(payload, whole_reason=outcome.reason)
    problems = ["unknown_topic", "unknown_device", "device_inactive", "payload_too_large"]
    if name != "owntracks":
        problems.append("kind_mismatch")
    if name not in ("owntracks", "car/avl"):
        problems.append("device_mismatch")
    problem = draw(st.sampled_from(problems))
    if problem == "unknown_topic":
        topic = draw(st.sampled_from([
            f"vigil/v1/dog/dev{i}/fix", f"vigil/v1/car/dev{i}/nope", f"vigil/v2/car/dev{i}/fix",
            f"vigil/v1/car/dev{i}/fix/x", f"owntracks/u{i}/phone/event", f"owntracks/u{i}/+", f"x{i}",
            f"vigil/v1/car/{'d' * 60}{i:05d}/fix",
        ]))
    elif problem == "unknown_device":
        device = None
    elif problem == "device_inactive":
        device = Device(i + 1, device_id, kind, None, draw(st.sampled_from(["provisioned", "suspended", "returned"])))
    elif problem == "payload_too_large":
        payload += (b"\x00" if name == "car/avl" else b" ") * (MAX_PAYLOAD + 1 - len(payload))
    elif problem == "kind_mismatch":
        other = draw(st.sampled_from(sorted({"car", "home", "pet"} - {kind})))
        device = Device(i + 1, device_id, other, None, "active")
    else:
        body = json.loads(payload)
        body["device"] = f"other{i}"
        payload = to_bytes(body)
    return plan(payload, topic, device, whole_reason=problem)


@settings(max_examples=100, **FAST)
@given(st.data())
def test_assemble_mixed_batch(data):
    plan = [data.draw(planned_message(i), label=f"message {i}") for i in range(data.draw(st.integers(1, 10)))]
    registry = {p.device.device_id: p.device for p in plan if p.device is not None}
    out = assemble([p.message for p in plan], registry, now_ms=NOW_MS, max_payload_bytes=MAX_PAYLOAD,
                   max_future_ms=MAX_FUTURE_MS)

    by_topic: dict[str, list] = {}
    for letter in out.dead_letters:
        assert SNAKE.fullmatch(letter.reason), letter
        by_topic.setdefault(letter.topic, []).append(letter)
    assert set(by_topic) <= {p.message.topic for p in plan}
    for p in plan:
        letters = by_topic.get(p.message.topic, [])
        for letter in letters:
            assert type(letter.payload) is bytes and letter.payload == p.message.payload
        if p.whole_reason is not None:
            assert [letter.reason for letter in letters] == [p.whole_reason], p.message
        else:
            assert len(letters) == len(p.letters), (p.message, letters)
            assert {letter.reason: json.loads(letter.detail) for letter in letters} == p.letters, p.message

    assert out.accepted_messages == sum(p.whole_reason is None for p in plan)
    assert len(out.batch) == sum(p.fixes for p in plan)
    assert Counter(out.batch.device.tolist()) == Counter({p.device.id: p.fixes for p in plan if p.fixes})
    assert len(out.events) == sum(p.events for p in plan)
    assert Counter(out.events.device.tolist()) == Counter({p.device.id: p.events for p in plan if p.events})
