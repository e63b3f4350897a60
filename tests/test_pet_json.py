"""Pet tracker v1 decoders (fix, sos, heartbeat): good messages, every reason, salvage, fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.pet_json import (
    DECODERS,
    PetDecoded,
    PetFix,
    PetHeartbeat,
    PetSos,
    decode_fix,
    decode_heartbeat,
    decode_sos,
)
from vigil.errors import RejectedInput

TS = 1_795_000_000_000
DEEP = b"[" * 100_000 + b"]" * 100_000  # past msgspec's recursion limit
REASONS = {"malformed_json", "invalid_schema", "unsupported_version", "no_fixes", "battery_out_of_range"}


def fix(**changes):
    body = {"ts": TS, "lat": 60.1699, "lon": 24.9384, "accuracy_m": 8.0, "speed_kmh": 4.5,
            "heading_deg": 90.0, "battery_pct": 77}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def fix_msg(*fixes, **envelope) -> bytes:
    body = {"v": 1, "device": "pet-0001", "seq": 7, "fixes": list(fixes), **envelope}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def sos(**changes) -> bytes:
    body = {"v": 1, "seq": 8, "ts": TS, "event_id": "sos-3f2a", "lat": 60.1699, "lon": 24.9384,
            "accuracy_m": 12.0, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def heartbeat(**changes) -> bytes:
    body = {"v": 1, "seq": 9, "ts": TS, "battery_pct": 64, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def reason_of(decoder, payload: bytes) -> str:
    with pytest.raises(RejectedInput) as info:
        decoder(payload)
    return info.value.reason


# --- fix ---------------------------------------------------------------------------------------

def test_fix_message():
    out = decode_fix(fix_msg(fix(), fix(ts=TS + 30_000, speed_kmh=None, heading_deg=...)))
    assert out == PetDecoded(
        seq=7, device="pet-0001",
        fixes=[PetFix(TS, 60.1699, 24.9384, 8.0, 4.5, 90.0, 77.0),
               PetFix(TS + 30_000, 60.1699, 24.9384, 8.0, None, None, 77.0)],
        positions=[0, 1], bad=[],
    )


def test_fix_minimal_message_defaults():
    out = decode_fix(b'{"seq":1,"fixes":[{"ts":1795000000000,"lat":1.5,"lon":2.5,"accuracy_m":3}]}')
    assert out.device is None and out.bad == []
    assert out.fixes == [PetFix(TS, 1.5, 2.5, 3.0)]
    assert out.fixes[0].speed_kmh is out.fixes[0].heading_deg is out.fixes[0].battery_pct is None


def test_fix_ignores_unknown_fields():
    out = decode_fix(fix_msg(fix(satellites=7, hdop=0.9), firmware="2.4.1"))
    assert len(out.fixes) == 1 and out.bad == []


def test_fix_salvage_keeps_good_fixes():
    out = decode_fix(fix_msg(fix(), fix(lat="north"), fix(ts=TS + 1), fix(accuracy_m=...), fix(ts=TS + 2)))
    assert [f.ts for f in out.fixes] == [TS, TS + 1, TS + 2]
    assert out.positions == [0, 2, 4]
    assert [(i, reason) for i, reason, _ in out.bad] == [(1, "invalid_schema"), (3, "invalid_schema")]
    assert "lat" in out.bad[0][2] and "accuracy_m" in out.bad[1][2]


def test_fix_battery_out_of_range_costs_only_its_fix():
    out = decode_fix(fix_msg(fix(battery_pct=101), fix(ts=TS + 1), fix(ts=TS + 2, battery_pct=-1),
                             fix(ts=TS + 3, battery_pct=100), fix(ts=TS + 4, battery_pct=0)))
    assert out.positions == [1, 3, 4]
    assert [(i, reason) for i, reason, _ in out.bad] == [(0, "battery_out_of_range"), (2, "battery_out_of_range")]


def test_fix_battery_and_schema_failures_together_sorted_by_index():
    out = decode_fix(fix_msg(fix(battery_pct=250), fix(lon=None), fix(ts=TS + 1)))
    assert out.positions == [2]
    assert [(i, reason) for i, reason, _ in out.bad] == [(0, "battery_out_of_range"), (1, "invalid_schema")]


def test_fix_all_fixes_bad_is_not_no_fixes():
    out = decode_fix(fix_msg(fix(ts="yesterday")))
    assert out.fixes == [] and out.positions == [] and out.bad[0][:2] == (0, "invalid_schema")


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b'{"v":1,"seq":1,"fixes":[', "malformed_json"),
        (b"\xff\xfe not json", "malformed_json"),
        (b"", "malformed_json"),
        (b'{"v":1,"seq":1,"fixes":[],"device":"\xff"}', "malformed_json"),
        (b'{"v":1,"seq":1,"fixes":[' + DEEP + b"]}", "malformed_json"),
        (b"[]", "invalid_schema"),
        (fix_msg(fix(), seq="seven"), "invalid_schema"),
        (fix_msg(fix(), seq=...), "invalid_schema"),
        (fix_msg(fix(), seq=2**64), "invalid_schema"),
        (fix_msg(fix(), device=42), "invalid_schema"),
        (fix_msg(fix(), v="1"), "invalid_schema"),
        (json.dumps({"v": 1, "seq": 1}).encode(), "invalid_schema"),
        (json.dumps({"v": 1, "seq": 1, "fixes": {"ts": TS}}).encode(), "invalid_schema"),
        (fix_msg(fix(), v=2), "unsupported_version"),
        (fix_msg(fix(lat="north"), v=2), "unsupported_version"),
        (json.dumps({"v": 2, "seq": "x", "positions": []}).encode(), "unsupported_version"),
        (fix_msg(), "no_fixes"),
    ],
)
def test_fix_reasons(payload, reason):
    assert reason_of(decode_fix, payload) == reason


# --- sos ---------------------------------------------------------------------------------------

def test_sos():
    assert decode_sos(sos()) == PetSos(seq=8, ts=TS, event_id="sos-3f2a", lat=60.1699, lon=24.9384,
                                       accuracy_m=12.0)


def test_sos_without_position():
    out = decode_sos(sos(lat=None, lon=None, accuracy_m=None))
    assert out.lat is out.lon is out.accuracy_m is None and out.event_id == "sos-3f2a"
    assert decode_sos(sos(lat=..., lon=..., accuracy_m=...)).lat is None


def test_sos_with_battery_and_device():
    out = decode_sos(sos(battery_pct=12, device="pet-0001"))
    assert (out.battery_pct, out.device) == (12.0, "pet-0001")


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b'{"v":1,"seq":8,"ts":', "malformed_json"),
        (b'{"v":1,"seq":8,"ts":1,"event_id":"\xff"}', "malformed_json"),
        (sos()[:-1] + b', "extra": ' + DEEP + b"}", "malformed_json"),
        (sos(event_id=...), "invalid_schema"),
        (sos(event_id=""), "invalid_schema"),
        (sos(event_id="x" * 129), "invalid_schema"),
        (sos(event_id=17), "invalid_schema"),
        (sos(ts=...), "invalid_schema"),
        (sos(ts=1.5), "invalid_schema"),
        (sos(seq=None), "invalid_schema"),
        (sos(lat="60.1"), "invalid_schema"),
        (sos(lat=None), "invalid_schema"),
        (sos(lon=...), "invalid_schema"),
        (sos(v=3), "unsupported_version"),
        (sos(v=0, event_id=...), "unsupported_version"),
        (sos(battery_pct=100.5), "battery_out_of_range"),
        (sos(battery_pct=-3), "battery_out_of_range"),
    ],
)
def test_sos_reasons(payload, reason):
    assert reason_of(decode_sos, payload) == reason


# --- heartbeat ---------------------------------------------------------------------------------

def test_heartbeat():
    assert decode_heartbeat(heartbeat()) == PetHeartbeat(seq=9, ts=TS, battery_pct=64.0)
    assert decode_heartbeat(heartbeat(battery_pct=0)).battery_pct == 0.0
    assert decode_heartbeat(heartbeat(battery_pct=100, device="pet-0001")).device == "pet-0001"


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"{", "malformed_json"),
        (b'"heartbeat"', "invalid_schema"),
        (heartbeat(battery_pct=...), "invalid_schema"),
        (heartbeat(battery_pct=None), "invalid_schema"),
        (heartbeat(battery_pct="64%"), "invalid_schema"),
        (heartbeat(ts="now"), "invalid_schema"),
        (heartbeat(seq=...), "invalid_schema"),
        (heartbeat(v=2), "unsupported_version"),
        (heartbeat(v=2, battery_pct="full"), "unsupported_version"),
        (heartbeat(battery_pct=101), "battery_out_of_range"),
        (heartbeat(battery_pct=-0.5), "battery_out_of_range"),
    ],
)
def test_heartbeat_reasons(payload, reason):
    assert reason_of(decode_heartbeat, payload) == reason


def test_unknown_fields_are_skipped_unread():
    # msgspec does not check the UTF-8 of strings it skips: a field Vigil does not read cannot cost
    # the message, the same tolerance as for unknown fields of the wrong type.
    assert decode_heartbeat(b'{"v":1,"seq":9,"ts":1,"battery_pct":64,"note":"\xff"}').battery_pct == 64.0


def test_decoders_by_stream():
    assert DECODERS["fix"] is decode_fix and DECODERS["sos"] is decode_sos
    assert DECODERS["heartbeat"] is decode_heartbeat


# --- fuzzing: for any input each decoder returns its type or raises RejectedInput, nothing else ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
near_values = st.sampled_from([None, 0, 1, 2, -1, 50, 101, TS, 1.5, "x", ""]) | json_values
FIELD_NAMES = ("ts", "lat", "lon", "accuracy_m", "speed_kmh", "heading_deg", "battery_pct")
near_fix = st.fixed_dictionaries({}, optional={k: near_values for k in FIELD_NAMES})
near_message = st.fixed_dictionaries(
    {},
    optional={"v": near_values, "seq": near_values, "device": near_values, "event_id": near_values,
              "fixes": st.lists(near_fix, max_size=4) | json_values,
              **{k: near_values for k in FIELD_NAMES}},
)


def assert_decodes_or_rejects(payload: bytes) -> None:
    for stream, decoder in DECODERS.items():
        try:
            out = decoder(payload)
        except RejectedInput as exc:
            assert exc.reason in REASONS
            assert stream == "fix" or exc.reason != "no_fixes"
        else:
            assert isinstance(out, {"fix": PetDecoded, "sos": PetSos, "heartbeat": PetHeartbeat}[stream])
            if stream == "fix":
                assert len(out.fixes) == len(out.positions)
                assert sorted(out.positions + [i for i, _, _ in out.bad]) == list(
                    range(len(out.positions) + len(out.bad)))
                assert all(f.battery_pct is None or 0 <= f.battery_pct <= 100 for f in out.fixes)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(payload):
    assert_decodes_or_rejects(payload)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fuzz_random_json(value):
    assert_decodes_or_rejects(json.dumps(value).encode())


@settings(max_examples=500, deadline=None)
@given(near_message)
def test_fuzz_message_shaped_objects(body):
    assert_decodes_or_rejects(json.dumps(body).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 200))
def test_fuzz_corrupted_real_message(noise, at):
    good = fix_msg(fix(), fix(ts=TS + 1))
    at = min(at, len(good))
    assert_decodes_or_rejects(good[:at] + noise + good[at:])
