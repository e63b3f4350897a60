"""OwnTracks decoder: messages as the phone apps publish them, every refusal reason, fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import owntracks
from ingest.owntracks import OwnTracksFix, decode, parse_topic
from vigil.errors import RejectedInput

# Messages shaped after the OwnTracks booklet, "JSON" page (owntracks.org/booklet/tech/json, source in
# github.com/owntracks/booklet docs/tech/json.md), which lists the `_type=location` elements acc, alt,
# batt, bs, cog, lat, lon, rad, t, tid, tst, vac, vel, p, conn, topic, inregions, SSID, BSSID,
# created_at. The apps leave acc/alt/cog/vac/vel out when they are zero, add `p`, `conn`, `SSID`… only
# with extendedData=true, and add fields over versions (`m`, `inrids`, `bs`).
ANDROID_LOCATION = (
    b'{"_type":"location","acc":13,"alt":42,"batt":84,"bs":1,"conn":"w","created_at":1718000012,'
    b'"lat":60.1699136,"lon":24.9383791,"m":1,"t":"u","tid":"jp","tst":1718000010,"vac":3,"vel":17,'
    b'"topic":"owntracks/jane/pixel","inregions":["Home"],"inrids":["a1b2c3"],"BSSID":"b0:be:76:aa:bb:cc",'
    b'"SSID":"home-net"}'
)
IOS_LOCATION = (
    b'{"_type":"location","acc":5,"alt":12,"batt":62,"bs":2,"cog":274,"conn":"m","lat":51.5007292,'
    b'"lon":-0.1246254,"p":101.372,"rad":0,"t":"t","tid":"JD","tst":1718000100,"vac":4,"vel":31,'
    b'"created_at":1718000101}'
)
# An iOS significant-change report while standing still: no acc/vel/cog/alt (zeros are left out).
MINIMAL_LOCATION = b'{"_type":"location","lat":48.85833,"lon":2.29513,"tst":1497476456,"tid":"JJ"}'

OTHER_APP_MESSAGES = {
    "lwt": {"_type": "lwt", "tst": 1718000000},
    "transition": {"_type": "transition", "wtst": 1700000000, "lat": 60.17, "lon": 24.94, "tst": 1718000200,
                   "acc": 30, "tid": "jp", "event": "enter", "desc": "Home", "t": "c", "rid": "a1b2c3"},
    "waypoint": {"_type": "waypoint", "desc": "Home", "lat": 60.17, "lon": 24.94, "rad": 100,
                 "tst": 1700000000, "rid": "a1b2c3"},
    "waypoints": {"_type": "waypoints", "_creator": "owntracks",
                  "waypoints": [{"_type": "waypoint", "desc": "Work", "tst": 1700000001}]},
    "card": {"_type": "card", "name": "Jane Poe", "tid": "jp", "face": "iVBORw0KGgo="},
    "cmd": {"_type": "cmd", "action": "reportLocation"},
    "status": {"_type": "status", "iOS": {"version": "17.0.1", "locationManager": {"authorizationStatus": 3}}},
    "steps": {"_type": "steps", "tst": 1718000000, "steps": 4211, "from": 1717990000, "to": 1718000000},
    "beacon": {"_type": "beacon", "uuid": "CAFEBABE-0000-1111-2222-333344445555", "major": 1, "minor": 2,
               "tst": 1718000000, "acc": 1, "rssi": -60, "prox": 1},
    "configuration": {"_type": "configuration", "mode": 0, "monitoring": 1, "tid": "jp"},
}
DEEP = b"[" * 100_000 + b"]" * 100_000  # past msgspec's recursion limit
REASONS = {"malformed_json", "invalid_schema", "owntracks_unsupported_type", "owntracks_encrypted"}


def reason_of(payload: bytes) -> str:
    with pytest.raises(RejectedInput) as info:
        decode(payload)
    return info.value.reason


def location(**changes) -> bytes:
    body = json.loads(ANDROID_LOCATION)
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return json.dumps(body).encode()


def test_android_location():
    assert decode(ANDROID_LOCATION) == OwnTracksFix(
        ts_ms=1_718_000_010_000, lat=60.1699136, lon=24.9383791, accuracy_m=13.0, speed_kmh=17.0,
        heading_deg=None, battery_pct=84.0, altitude_m=42.0, vertical_accuracy_m=3.0, tid="jp",
        trigger="u", conn="w",
    )


def test_ios_location():
    fix = decode(IOS_LOCATION)
    assert fix.ts_ms == 1_718_000_100_000
    assert (fix.lat, fix.lon) == (51.5007292, -0.1246254)
    assert (fix.heading_deg, fix.speed_kmh, fix.accuracy_m) == (274.0, 31.0, 5.0)
    assert (fix.battery_pct, fix.trigger, fix.conn, fix.tid) == (62.0, "t", "m", "JD")


def test_missing_optional_fields_are_none():
    fix = decode(MINIMAL_LOCATION)
    assert fix.ts_ms == 1_497_476_456_000
    assert (fix.lat, fix.lon, fix.tid) == (48.85833, 2.29513, "JJ")
    assert fix.accuracy_m is fix.speed_kmh is fix.heading_deg is fix.battery_pct is None
    assert fix.altitude_m is fix.vertical_accuracy_m is fix.trigger is fix.conn is None
    assert decode(location(tid=...)).tid is None


def test_null_optional_fields_are_none():
    fix = decode(location(acc=None, vel=None, batt=None, tid=None))
    assert fix.accuracy_m is fix.speed_kmh is fix.battery_pct is fix.tid is None


def test_fractional_values_are_kept():
    fix = decode(location(acc=4.7, vel=12.5, cog=359.9, batt=55.5, alt=-3.2))
    assert (fix.accuracy_m, fix.speed_kmh, fix.heading_deg, fix.battery_pct, fix.altitude_m) == (
        4.7, 12.5, 359.9, 55.5, -3.2)


def test_unknown_fields_of_any_type_are_ignored():
    fix = decode(location(future_field={"nested": [1, "x", None]}, bs="charging", m=[1, 2], inregions=7))
    assert fix.ts_ms == 1_718_000_010_000
    # msgspec does not check the UTF-8 of strings it skips; a field Vigil does not read cannot cost the fix.
    assert decode(MINIMAL_LOCATION[:-1] + b',"SSID":"caf\xe9"}').tid == "JJ"


@pytest.mark.parametrize("kind", sorted(OTHER_APP_MESSAGES))
def test_other_app_types_are_unsupported_not_garbage(kind):
    with pytest.raises(RejectedInput) as info:
        decode(json.dumps(OTHER_APP_MESSAGES[kind]).encode())
    assert info.value.reason == "owntracks_unsupported_type"
    assert kind in info.value.detail and "documented" in info.value.detail


def test_undocumented_type_is_unsupported_too():
    with pytest.raises(RejectedInput) as info:
        decode(b'{"_type":"hologram","lat":1,"lon":2,"tst":3}')
    assert info.value.reason == "owntracks_unsupported_type"
    assert "undocumented" in info.value.detail


def test_encrypted_is_refused():
    assert reason_of(b'{"_type":"encrypted","data":"bm90IHJlYWxseSBlbmNyeXB0ZWQ="}') == "owntracks_encrypted"


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b'{"_type":"location","lat":60.1,', b"\xff\xfe{}", b"location", b'{"_type":"location"} x',
     b'{"_type":"location","tid":"\xff","lat":1,"lon":2,"tst":3}', b'{"x":' + DEEP + b',"lat":1,"lon":2,"tst":3}',
     b'{"_type":"lwt","x":' + DEEP + b"}"],
    ids=["empty", "open-brace", "truncated", "bad-utf8", "bare-word", "trailing", "bad-utf8-string",
         "deep-unknown-field", "deep-field-of-lwt"],
)
def test_malformed_json(payload):
    assert reason_of(payload) == "malformed_json"


@pytest.mark.parametrize(
    "payload",
    [
        b"[]", b"42", b'"location"', b"null", b"{}",
        b'{"lat":60.1,"lon":24.9,"tst":1718000000}',           # no _type
        b'{"_type":7,"lat":60.1,"lon":24.9,"tst":1718000000}',  # _type not a string
        location(lat=...), location(lon=...), location(tst=...),
        location(lat="60.1"), location(lon=None), location(tst=1718000010.5), location(tst="1718000010"),
        location(tst=True), location(acc="13"), location(vel=[17]), location(batt="84%"), location(cog=False),
        location(alt={}), location(vac="3"), location(tid=12), location(t=1), location(conn=True),
        location(tst=2**62), location(lat=10**400), DEEP,
    ],
)
def test_invalid_schema(payload):
    assert reason_of(payload) == "invalid_schema"


def test_decode_error_reasons_are_chained_not_leaked():
    with pytest.raises(RejectedInput) as info:
        decode(location(lat="north"))
    assert "lat" in info.value.detail
    assert info.value.__cause__ is not None


def test_parse_topic():
    assert parse_topic("owntracks/jane/pixel") == ("jane", "pixel")


@pytest.mark.parametrize(
    "topic",
    ["owntracks/jane", "owntracks/jane/pixel/event", "owntracks/jane/pixel/cmd", "owntracks//pixel",
     "owntracks/jane/", "vigil/v1/car/x/fix", "OwnTracks/jane/pixel", "owntracks/+/pixel",
     "owntracks/jane/" + "d" * 65, "", "/owntracks/jane/pixel"],
)
def test_parse_topic_refuses_other_shapes(topic):
    with pytest.raises(RejectedInput) as info:
        parse_topic(topic)
    assert info.value.reason == "unknown_topic"


# --- fuzzing: any bytes, any JSON, JSON close to a location: RejectedInput or a fix, nothing else ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ("lat", "lon", "tst", "acc", "vel", "cog", "batt", "alt", "vac", "tid", "t", "conn", "data")
near_locations = st.fixed_dictionaries(
    {"_type": st.sampled_from(["location", "encrypted", "lwt", "transition", "", "x"]) | json_values},
    optional={key: json_values for key in FIELDS},
)


def assert_decodes_or_rejects(payload: bytes) -> None:
    try:
        fix = decode(payload)
    except RejectedInput as exc:
        assert exc.reason in REASONS
    else:
        assert isinstance(fix, OwnTracksFix) and isinstance(fix.ts_ms, int)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(payload):
    assert_decodes_or_rejects(payload)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fuzz_random_json(value):
    assert_decodes_or_rejects(json.dumps(value).encode())


@settings(max_examples=500, deadline=None)
@given(near_locations)
def test_fuzz_location_shaped_objects(body):
    assert_decodes_or_rejects(json.dumps(body).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, len(ANDROID_LOCATION)))
def test_fuzz_corrupted_real_message(noise, at):
    assert_decodes_or_rejects(ANDROID_LOCATION[:at] + noise + ANDROID_LOCATION[at:])


def test_ignored_types_are_documented_app_types():
    assert set(OTHER_APP_MESSAGES) <= owntracks.IGNORED_TYPES
