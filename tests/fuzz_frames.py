"""Frames and hypothesis strategies for the decoder fuzz tests: valid frames of every protocol and ways to
break them (byte-wise, field-wise, re-framed Teltonika data fields)."""

from __future__ import annotations

import copy
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

HANDLERS: dict[str, protocols.Handler] = {
    **{f"{kind}/{stream}": h for (kind, stream), h in protocols.VIGIL_STREAMS.items()},
    "owntracks": protocols.OWNTRACKS,
}

SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
INT64 = st.integers(-(2**63), 2**63 - 1)
NOW_MS = 1_795_000_000_000
MAX_FUTURE_MS = 300_000
MAX_PAYLOAD = 262_144
LATEST_OK_MS = NOW_MS + MAX_FUTURE_MS
TS_OK = st.integers(validate.MIN_TS_MS, LATEST_OK_MS)
FAST = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# -- outcomes ----------------------------------------------------------------------------------------------


def check_decoded(handler: protocols.Handler, out: protocols.Decoded) -> None:
    """What a returned Decoded promises: one position per fix, snake_case reasons, buildable columns."""
    assert isinstance(out, protocols.Decoded)
    if out.columns is not None:
        n = len(out.positions)
        assert all(np.asarray(v).shape == (n,) for v in out.columns.values())
    else:
        assert len(out.rows) == len(out.positions)
        if out.rows:
            cols = handler.to_columns(out.rows)
            assert all(np.asarray(v).shape == (len(out.rows),) for v in cols.values())
    bad = [i for i, _, _ in out.bad]
    assert len(set(out.positions) | set(bad)) == len(out.positions) + len(bad)
    assert all(SNAKE.fullmatch(reason) for _, reason, _ in out.bad)
    assert all(e.type in EVENT_CODE for e in out.events)


def decode_or_reject(handler: protocols.Handler, payload: bytes) -> protocols.Decoded | RejectedInput:
    """The decoder's outcome; any exception other than RejectedInput propagates and fails the test."""
    try:
        out = handler.decode(payload)
    except RejectedInput as exc:
        assert SNAKE.fullmatch(exc.reason), f"{handler.name}: reason {exc.reason!r} is not snake_case"
        assert isinstance(exc.detail, str)
        return exc
    check_decoded(handler, out)
    return out


def all_handlers_survive(payload: bytes) -> None:
    for handler in HANDLERS.values():
        decode_or_reject(handler, payload)


# -- valid frames ------------------------------------------------------------------------------------------

ABSENT = ...
#: A JSON number for a float field: ints up to 2**53 convert to float exactly.
# Valid measurements fit the stored float32 columns (beyond ±3.4e38 is refused as value_out_of_range).
NUMBER = st.floats(-1e38, 1e38) | st.integers(-(2**53), 2**53)
LAT_OK = st.floats(-90, 90) | st.integers(-90, 90)
LON_OK = st.floats(-180, 180) | st.integers(-180, 180)
PERCENT = st.floats(0, 100) | st.integers(0, 100)


def opt(elements):
    """Absent, null, or a value."""
    return st.just(ABSENT) | st.none() | elements


def present(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not ABSENT}


def to_bytes(obj, ascii_only: bool = True) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_only).encode()


@st.composite
def envelope(draw, device=opt(st.text(max_size=16))) -> dict:
    return {"v": draw(st.sampled_from([ABSENT, 1])), "device": draw(device), "seq": draw(INT64)}


@st.composite
def car_fix(draw, ts=INT64, lat=NUMBER, lon=NUMBER) -> dict:
    return present({
        "ts": draw(ts), "lat": draw(lat), "lon": draw(lon), "speed_kmh": draw(opt(NUMBER)),
        "heading_deg": draw(opt(NUMBER)), "accuracy_m": draw(opt(NUMBER)), "ignition": draw(opt(st.booleans())),
        "accel_g": draw(opt(st.lists(NUMBER, min_size=3, max_size=3))),
    })


@st.composite
def pet_fix(draw, ts=INT64, lat=NUMBER, lon=NUMBER) -> dict:
    return present({
        "ts": draw(ts), "lat": draw(lat), "lon": draw(lon), "accuracy_m": draw(NUMBER),
        "speed_kmh": draw(opt(NUMBER)), "heading_deg": draw(opt(NUMBER)), "battery_pct": draw(opt(PERCENT)),
    })


@st.composite
def home_event(draw, ts=INT64) -> dict:
    return present({
        "ts": draw(ts), "type": draw(st.sampled_from(HomeEventType.__args__)),
        "event_id": draw(st.text(min_size=1, max_size=64)), "sensor": draw(opt(st.text(max_size=64))),
        "battery_pct": draw(opt(PERCENT)),
    })


@st.composite
def pet_sos(draw, ts=INT64, lat=NUMBER, lon=NUMBER) -> dict:
    where = draw(st.sampled_from(["fix", "null", "absent"]))
    lat_v, lon_v = (draw(lat), draw(lon)) if where == "fix" else (draw(opt(st.none())), draw(opt(st.none())))
    return present({
        **draw(envelope()), "ts": draw(ts), "event_id": draw(st.text(min_size=1, max_size=128)),
        "lat": lat_v, "lon": lon_v, "accuracy_m": draw(opt(NUMBER)), "battery_pct": draw(opt(PERCENT)),
    })


@st.composite
def pet_heartbeat(draw, ts=INT64) -> dict:
    return present({**draw(envelope()), "ts": draw(ts), "battery_pct": draw(PERCENT)})


@st.composite
def home_heartbeat(draw, ts=INT64) -> dict:
    return present({**draw(envelope()), "ts": draw(ts), "battery_pct": draw(opt(PERCENT)),
                    "mains": draw(opt(st.booleans()))})


MAX_TST = (2**63 - 1) // 1000
TST_OK = st.integers(validate.MIN_TS_MS // 1000, LATEST_OK_MS // 1000)
OWNTRACKS_EXTRAS = {"bs": st.integers(0, 3), "m": st.integers(0, 2), "created_at": st.integers(0, 2**31),
                    "inregions": st.lists(st.text(max_size=8), max_size=3), "SSID": st.text(max_size=8)}


@st.composite
def owntracks_location(draw, tst=st.integers(-MAX_TST, MAX_TST), lat=NUMBER, lon=NUMBER) -> dict:
    body = {"_type": "location", "lat": draw(lat), "lon": draw(lon), "tst": draw(tst)}
    body |= {k: draw(opt(NUMBER)) for k in ("acc", "vel", "cog", "batt", "alt", "vac")}
    body |= {k: draw(opt(st.text(max_size=4))) for k in ("tid", "t", "conn")}
    body |= draw(st.fixed_dictionaries({}, optional=OWNTRACKS_EXTRAS))
    return present(body)


def json_message(items_key: str, items):
    return st.builds(lambda env, xs: present({**env, items_key: xs}), envelope(), items)


@st.composite
def avl_records(draw, n=st.integers(1, 6), ts=INT64, sats=st.integers(0, 255),
                lat_i=st.integers(-(2**31), 2**31 - 1), lon_i=st.integers(-(2**31), 2**31 - 1)):
    codec = draw(st.sampled_from([teltonika.CODEC_8, teltonika.CODEC_8E]))
    k = draw(n)

    def column(elements):
        return draw(st.lists(elements, min_size=k, max_size=k))

    id_max = 0xFF if codec == teltonika.CODEC_8 else 0xFFFF
    io = draw(st.dictionaries(st.integers(0, id_max), st.lists(st.none() | st.integers(0, 2**32 - 1),
                                                                 min_size=k, max_size=k), max_size=4))
    mapped = {16, 17, 18, 19, 66, 239, 240}  # ids of the mapped columns, set through them below
    io = {i: [np.nan if v is None else float(v) for v in vals] for i, vals in io.items() if i not in mapped}
    io_bytes = {}
    if codec == teltonika.CODEC_8E:
        io_bytes = draw(st.dictionaries(st.integers(0, 0xFFFF), st.lists(st.none() | st.binary(max_size=16),
                                                                         min_size=k, max_size=k), max_size=2))
    return teltonika.AvlRecords.from_columns(
        codec=codec, ts_ms=column(ts), lat=np.array(column(lat_i)) / 1e7, lon=np.array(column(lon_i)) / 1e7,
        satellites=column(sats), priority=column(st.integers(0, 2)),
        altitude_m=column(st.integers(-(2**15), 2**15 - 1)),
        heading_deg=column(st.integers(0, 359)), speed_kmh=column(st.integers(0, 0xFFFF)),
        event_io=column(st.integers(0, id_max)),
        ignition=column(st.sampled_from([-1, 0, 1])), odometer_m=column(st.integers(0, 2**32 - 1)),
        accel_x=column(st.integers(-32767, 32767).map(lambda v: v / 1000)),
        io=io, io_bytes=io_bytes,
    )


#: Valid frames as JSON-able bodies (Teltonika: AvlRecords), per handler name.
VALID_BODIES = {
    "car/fix": json_message("fixes", st.lists(car_fix(), min_size=1, max_size=4)),
    "car/avl": avl_records(),
    "pet/fix": json_message("fixes", st.lists(pet_fix(), min_size=1, max_size=4)),
    "pet/sos": pet_sos(),
    "pet/heartbeat": pet_heartbeat(),
    "home/event": json_message("events", st.lists(home_event(), min_size=1, max_size=4)),
    "home/heartbeat": home_heartbeat(),
    "owntracks": owntracks_location(),
}


def frame_of(name: str, body, ascii_only: bool = True) -> bytes:
    return teltonika.encode(body) if name == "car/avl" else to_bytes(body, ascii_only)


# -- (a) any bytes decode or reject ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["v", "seq", "device", "fixes", "events", "ts", "lat", "lon", "tst", "_type",
                         "event_id", "battery_pct", "accuracy_m", "type"]) | st.text(max_size=6),
        inner, max_size=6),
    max_leaves=12,
)
TOKENS = [b'"', b"{", b"}", b"[", b"]", b",", b":", b"null", b"-", b"1e999", b"\\u", b"\\ud800", b"\xff",
          b"\xc3", b"9" * 25, b"\x00", b"0.", b'"_type":"lwt",', b'"v":2,', b"true"]


@st.composite
def mutated(draw, frame: bytes) -> bytes:
    """``frame`` after 1-4 byte-level edits: flips, overwrites, insertions, deletions, truncations."""
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "set", "insert", "token", "delete", "truncate", "repeat"]))
        if op in ("flip", "set") and at < len(data):
            data[at] = data[at] ^ (1 << draw(st.integers(0, 7))) if op == "flip" else draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
        elif op == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 32))]
    return bytes(data)


def reframe(data_field: bytes) -> bytes:
    """A Teltonika packet around ``data_field`` with the right length and CRC."""
    return struct.pack(">II", 0, len(data_field)) + data_field + struct.pack(">I", teltonika.crc16_ibm(data_field))


REPLACEMENTS = st.sampled_from(
    [None, True, False, 0, -1, 2, 2**63, -(2**63) - 1, 2**64, 10**30, 1e308, -0.0, 0.5, "", "x" * 200, [], {},
     [[[]]], "location", "encrypted", "lwt", "motion", "heartbeat", -1e9, 101]
) | json_values


def paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


@st.composite
def tree_mutated(draw, body):
    """A JSON body with 1-3 values replaced, keys removed or added, somewhere in its tree."""
    body = json.loads(json.dumps(body))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths(body))))
        if not path:
            body = copy.deepcopy(draw(REPLACEMENTS))
            continue
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["replace", "remove", "add"]))
        if op == "replace":
            parent[path[-1]] = copy.deepcopy(draw(REPLACEMENTS))
        elif op == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["v", "seq", "ts", "lat", "_type", "fixes", "x"]))] = copy.deepcopy(draw(REPLACEMENTS))
        else:
            parent.insert(path[-1], copy.deepcopy(draw(REPLACEMENTS)))
    return body
