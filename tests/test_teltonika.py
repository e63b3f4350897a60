"""Teltonika Codec 8 / 8E decoder and encoder (ingest/teltonika.py): documented frames, round trips, fuzzing."""

from __future__ import annotations

import dataclasses
import struct
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ingest.teltonika import (
    CODEC_8, CODEC_8E, REASONS, AvlRecords, crc16_ibm, decode, encode,
)
from vigil.errors import RejectedInput

# Worked examples of the Teltonika wiki page "Codec", https://wiki.teltonika-gps.com/view/Codec
# (sections "Codec 8" examples 1-3 and "Codec 8 Extended" example). The hex strings were taken
# verbatim from open-source decoders whose tests quote that page (e.g. mcraiha/CSharp-Codec8,
# "First sample from Wiki, https://wiki.teltonika-gps.com/view/Codec#Codec_8"); each one's CRC checks.
WIKI_C8_EXAMPLE_1 = (
    "000000000000003608010000016B40D8EA30010000000000000000000000000000000105021503010101425E0F01F1"
    "0000601A014E0000000000000000010000C7CF"
)
WIKI_C8_EXAMPLE_2 = (
    "000000000000002808010000016B40D9AD80010000000000000000000000000000000103021503010101425E100000010000F22A"
)
WIKI_C8_EXAMPLE_3 = (
    "000000000000004308020000016B40D57B480100000000000000000000000000000001010101000000000000016B40D5C198"
    "010000000000000000000000000000000101010101000000020000252C"
)
WIKI_C8E_EXAMPLE = (
    "000000000000004A8E010000016B412CEE000100000000000000000000000000000000010005000100010100010011001D"
    "00010010015E2C880002000B000000003544C87A000E000000001DD7E06A00000100002994"
)
# The Codec 8 Extended example of the same page as revised on 2 January 2019 (wiki diff
# https://wiki.teltonika-gps.com/view/Special:MobileDiff/25868, breakdown in .../MobileDiff/21149):
# a real fix in Vilnius and one variable-length (NX) element. Reassembled from the diff's split lines;
# the length (0x5F) and the CRC (0xD153) both check.
WIKI_C8E_2019_EXAMPLE = (
    "000000000000005F8E010000015FBA40B620000F0DCDE420959D30008A000006000000000006000100EF000001001100"
    "1E000100100000CBDF0002000B000000003544C875000E0000000029BFE4D1000101000011000000000000000000000000"
    "0000000000010000D153"
)
ALL_EXAMPLES = [WIKI_C8_EXAMPLE_1, WIKI_C8_EXAMPLE_2, WIKI_C8_EXAMPLE_3, WIKI_C8E_EXAMPLE, WIKI_C8E_2019_EXAMPLE]

COLUMNS = (
    "ts_ms", "priority", "lat", "lon", "altitude_m", "heading_deg", "satellites", "speed_kmh", "event_io",
    "gps_valid", "ignition", "movement", "ext_voltage_v", "odometer_m", "accel_x", "accel_y", "accel_z",
)


def utc_ms(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


def io_values(records: AvlRecords, row: int) -> dict[int, float]:
    return {k: v[row] for k, v in records.io.items() if not np.isnan(v[row])}


def assert_same(a: AvlRecords, b: AvlRecords) -> None:
    assert a.codec == b.codec
    for name in COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.io.keys() == b.io.keys()
    for k in a.io:
        np.testing.assert_array_equal(a.io[k], b.io[k], err_msg=f"io[{k}]")
    assert a.io_size == b.io_size
    assert a.io_bytes == b.io_bytes


def reason_of(data: bytes, **kw) -> str | None:
    """The RejectedInput reason, or None when ``data`` decodes; any other exception fails the test."""
    try:
        decode(data, **kw)
    except RejectedInput as exc:
        assert exc.reason in REASONS
        return exc.reason
    return None


def reframe(field: bytes) -> bytes:
    """A packet around ``field`` (codec id .. N2) with the right length and CRC."""
    return struct.pack(">II", 0, len(field)) + field + struct.pack(">I", crc16_ibm(field))


def field_of(frame: bytes) -> bytes:
    return frame[8:-4]


# -- 1. Teltonika's documented examples -------------------------------------------------------------------


def test_crc16_ibm_check_value_and_documented_crcs():
    assert crc16_ibm(b"123456789") == 0xBB3D  # the CRC-16/ARC (IBM) catalogue check value
    documented = [0xC7CF, 0xF22A, 0x252C, 0x2994, 0xD153]
    for hex_frame, crc in zip(ALL_EXAMPLES, documented):
        frame = bytes.fromhex(hex_frame)
        assert crc16_ibm(field_of(frame)) == crc
        assert frame[-4:] == crc.to_bytes(4, "big")


def test_codec8_example_1():
    r = decode(bytes.fromhex(WIKI_C8_EXAMPLE_1))
    assert r.codec == CODEC_8 and len(r) == 1
    assert r.ts_ms.tolist() == [0x16B40D8EA30] == [utc_ms(2019, 6, 10, 10, 4, 46)]
    assert r.priority.tolist() == [1]
    assert r.lat.tolist() == [0.0] and r.lon.tolist() == [0.0]
    assert r.altitude_m.tolist() == [0] and r.heading_deg.tolist() == [0]
    assert r.satellites.tolist() == [0] and r.speed_kmh.tolist() == [0]
    assert r.gps_valid.tolist() == [False]  # no satellites: the device had no fix
    assert r.event_io.tolist() == [1]
    # N1: 0x15=3, 0x01=1; N2: 0x42=0x5E0F; N4: 0xF1=0x0000601A; N8: 0x4E=0
    assert io_values(r, 0) == {21: 3, 1: 1, 66: 0x5E0F, 241: 0x601A, 78: 0}
    assert r.io_size == {1: 1, 21: 1, 66: 2, 241: 4, 78: 8}
    assert r.ext_voltage_v.tolist() == [np.float32(24.079)]
    assert r.ignition.tolist() == [-1] and np.isnan(r.accel_x[0]) and np.isnan(r.odometer_m[0])


def test_codec8_example_2():
    r = decode(bytes.fromhex(WIKI_C8_EXAMPLE_2))
    assert r.codec == CODEC_8 and len(r) == 1
    assert r.ts_ms.tolist() == [0x16B40D9AD80] == [utc_ms(2019, 6, 10, 10, 5, 36)]
    assert r.priority.tolist() == [1] and r.event_io.tolist() == [1]
    assert r.lat.tolist() == [0.0] and r.lon.tolist() == [0.0] and r.satellites.tolist() == [0]
    assert io_values(r, 0) == {21: 3, 1: 1, 66: 0x5E10}
    assert r.io_size == {1: 1, 21: 1, 66: 2}


def test_codec8_example_3_two_records():
    r = decode(bytes.fromhex(WIKI_C8_EXAMPLE_3))
    assert r.codec == CODEC_8 and len(r) == 2
    assert r.ts_ms.tolist() == [0x16B40D57B48, 0x16B40D5C198]
    assert r.ts_ms.tolist() == [utc_ms(2019, 6, 10, 10, 1, 1), utc_ms(2019, 6, 10, 10, 1, 19)]
    assert r.priority.tolist() == [1, 1] and r.event_io.tolist() == [1, 1]
    assert io_values(r, 0) == {1: 0} and io_values(r, 1) == {1: 1}
    assert r.io_size == {1: 1} and r.io_bytes == {}


def test_codec8e_example():
    r = decode(bytes.fromhex(WIKI_C8E_EXAMPLE))
    assert r.codec == CODEC_8E and len(r) == 1
    assert r.ts_ms.tolist() == [0x16B412CEE00] == [utc_ms(2019, 6, 10, 11, 36, 32)]
    assert r.priority.tolist() == [1] and r.event_io.tolist() == [1]
    assert r.lat.tolist() == [0.0] and r.lon.tolist() == [0.0] and r.gps_valid.tolist() == [False]
    # N1: 0x0001=1; N2: 0x0011=0x001D; N4: 0x0010=0x015E2C88; N8: 0x000B, 0x000E; NX: none
    assert io_values(r, 0) == {1: 1, 17: 0x1D, 16: 0x015E2C88, 11: 0x3544C87A, 14: 0x1DD7E06A}
    assert r.io_size == {1: 1, 17: 2, 16: 4, 11: 8, 14: 8}
    assert r.io_bytes == {}
    assert r.accel_x.tolist() == [np.float32(0.029)]  # IO 17 "Axis X" in mG
    assert r.odometer_m.tolist() == [22949000.0]  # IO 16 "Total Odometer" in m


def test_codec8e_2019_example_with_fix_and_variable_element():
    r = decode(bytes.fromhex(WIKI_C8E_2019_EXAMPLE))
    assert r.codec == CODEC_8E and len(r) == 1
    assert r.ts_ms.tolist() == [1510658324000] == [utc_ms(2017, 11, 14, 11, 18, 44)]
    assert r.priority.tolist() == [0] and r.event_io.tolist() == [0]
    # Longitude comes first on the wire: 0x0F0DCDE4 = 252562916, latitude 0x20959D30 = 546676016.
    assert r.lon.tolist() == [25.2562916] and r.lat.tolist() == [54.6676016]
    assert r.altitude_m.tolist() == [138] and r.heading_deg.tolist() == [0]
    assert r.satellites.tolist() == [6] and r.speed_kmh.tolist() == [0] and r.gps_valid.tolist() == [True]
    assert io_values(r, 0) == {239: 0, 17: 0x1E, 16: 0xCBDF, 11: 0x3544C875, 14: 0x29BFE4D1}
    assert r.ignition.tolist() == [0] and r.movement.tolist() == [-1]
    assert r.io_bytes == {256: [bytes(17)]}


@pytest.mark.parametrize("hex_frame", ALL_EXAMPLES)
def test_documented_examples_reencode_to_the_same_records(hex_frame):
    frame = bytes.fromhex(hex_frame)
    first = decode(frame)
    again = encode(first)
    assert len(again) == len(frame)  # same elements, possibly in another order within a size group
    assert_same(decode(again), first)
    assert decode(bytearray(frame)).ts_ms.tolist() == decode(memoryview(frame)).ts_ms.tolist()


# -- 2. Round trips ---------------------------------------------------------------------------------------


def present(values) -> bool:
    return any(v is not None for v in values)


@st.composite
def wire_records(draw) -> AvlRecords:
    """Records whose every value is exactly representable on the wire."""
    codec = draw(st.sampled_from([CODEC_8, CODEC_8E]))
    n = draw(st.integers(1, 12))

    def column(lo, hi):
        return draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))

    id_max = 0xFF if codec == CODEC_8 else 0xFFFF
    widths = draw(st.dictionaries(st.integers(0, id_max), st.sampled_from([1, 2, 4, 8]), max_size=8))
    io = {}
    for io_id, width in widths.items():
        top = min(2 ** (8 * width) - 1, 2**53)  # float64 holds integers exactly up to 2**53
        cells = draw(st.lists(st.none() | st.integers(0, top), min_size=n, max_size=n).filter(present))
        io[io_id] = [np.nan if v is None else float(v) for v in cells]
    io_bytes = {}
    if codec == CODEC_8E:
        blobs = st.lists(st.none() | st.binary(max_size=24), min_size=n, max_size=n).filter(present)
        io_bytes = draw(st.dictionaries(st.integers(0, 0xFFFF), blobs, max_size=3))
    return AvlRecords.from_columns(
        codec=codec, ts_ms=column(-(2**63), 2**63 - 1), priority=column(-128, 127),
        lon=np.array(column(-(2**31), 2**31 - 1)) / 1e7, lat=np.array(column(-(2**31), 2**31 - 1)) / 1e7,
        altitude_m=column(-(2**15), 2**15 - 1), heading_deg=column(0, 0xFFFF), satellites=column(0, 0xFF),
        speed_kmh=column(0, 0xFFFF), event_io=column(0, id_max), io=io, io_size=widths, io_bytes=io_bytes,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_records())
def test_round_trip_encode_decode(records):
    frame = encode(records)
    assert_same(decode(frame), records)
    assert encode(decode(frame)) == frame


def maybe_nan(elements):
    return st.one_of(elements, st.just(float("nan")))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_round_trip_from_physical_units(data):
    n = data.draw(st.integers(1, 8))

    def column(elements):
        return np.array(data.draw(st.lists(elements, min_size=n, max_size=n)))

    def real(lo, hi):
        return st.floats(lo, hi, allow_nan=False)

    lat, lon = column(real(-90, 90)), column(real(-180, 180))
    speed, heading, altitude = column(real(0, 300)), column(real(0, 359.9)), column(real(-400, 8000))
    ignition = column(st.sampled_from([-1, 0, 1]))
    accel = [column(maybe_nan(real(-8, 8))) for _ in range(3)]
    volts, odometer = column(maybe_nan(real(0, 60))), column(maybe_nan(real(0, 4e9)))
    records = AvlRecords.from_columns(
        ts_ms=np.arange(n) * 1000 + 1_700_000_000_000, lat=lat, lon=lon, satellites=9, speed_kmh=speed,
        heading_deg=heading, altitude_m=altitude, ignition=ignition, movement=ignition, ext_voltage_v=volts,
        odometer_m=odometer, accel_x=accel[0], accel_y=accel[1], accel_z=accel[2],
        codec=data.draw(st.sampled_from([CODEC_8, CODEC_8E])),
    )
    back = decode(encode(records))
    assert_same(back, records)
    np.testing.assert_allclose(back.lat, lat, rtol=0, atol=0.51e-7)
    np.testing.assert_allclose(back.lon, lon, rtol=0, atol=0.51e-7)
    np.testing.assert_allclose(back.speed_kmh, speed, rtol=0, atol=0.5)
    np.testing.assert_allclose(back.altitude_m, altitude, rtol=0, atol=0.5)
    assert back.gps_valid.all()
    assert back.ignition.tolist() == ignition.tolist() == back.movement.tolist()
    for got, want in zip((back.accel_x, back.accel_y, back.accel_z), accel):
        np.testing.assert_allclose(got, want, rtol=0, atol=0.00051)  # mG resolution, NaN where absent
    np.testing.assert_allclose(back.ext_voltage_v, volts, rtol=0, atol=0.00051)
    np.testing.assert_allclose(back.odometer_m, odometer, rtol=0, atol=0.5)


def test_encode_refuses_what_the_wire_cannot_carry():
    one = dict(ts_ms=[0], lat=0.0, lon=0.0, satellites=5)
    with pytest.raises(ValueError):
        encode(AvlRecords.from_columns(**one, io={300: [1]}, codec=CODEC_8))  # 2-byte id under Codec 8
    with pytest.raises(ValueError):
        encode(AvlRecords.from_columns(**one, io_bytes={5: [b"x"]}, codec=CODEC_8))  # NX under Codec 8
    with pytest.raises(ValueError):
        encode(AvlRecords.from_columns(**one, speed_kmh=70_000))
    with pytest.raises(ValueError):
        encode(AvlRecords.from_columns(**one, io={5: [1.5]}))
    with pytest.raises(ValueError):
        encode(AvlRecords.from_columns(ts_ms=[], lat=[], lon=[], satellites=[]))
    with pytest.raises(ValueError):
        AvlRecords.from_columns(**one, ignition=1, io={239: [1]})
    with pytest.raises(ValueError):
        AvlRecords.from_columns(**one, accel_x=40.0)
    records = AvlRecords.from_columns(**one, ignition=1)
    forged = dataclasses.replace(records, ignition=np.int8([0]))
    with pytest.raises(ValueError, match="ignition"):
        encode(forged)


# -- 3. Corruption and fuzzing ----------------------------------------------------------------------------

EXAMPLE_1 = bytes.fromhex(WIKI_C8_EXAMPLE_1)


@pytest.mark.parametrize(
    ("frame", "kw", "reason"),
    [
        (EXAMPLE_1, {"max_bytes": len(EXAMPLE_1) - 1}, "teltonika_too_large"),
        (EXAMPLE_1[:7], {}, "teltonika_truncated"),
        (EXAMPLE_1[:-1], {}, "teltonika_truncated"),
        (b"\x00\x00\x00\x01" + EXAMPLE_1[4:], {}, "teltonika_bad_preamble"),
        (EXAMPLE_1 + b"\x00", {}, "teltonika_trailing_bytes"),
        (reframe(b"\x08\x01"), {}, "teltonika_length_mismatch"),
        # one more 8-byte element announced than present: the records overrun N2
        (reframe(field_of(EXAMPLE_1)[:-11] + b"\x02" + field_of(EXAMPLE_1)[-10:]), {}, "teltonika_length_mismatch"),
        # a stray byte between the last record and N2
        (reframe(field_of(EXAMPLE_1)[:-1] + b"\x00\x01"), {}, "teltonika_length_mismatch"),
        (EXAMPLE_1[:20] + bytes([EXAMPLE_1[20] ^ 0x40]) + EXAMPLE_1[21:], {}, "teltonika_bad_crc"),
        (EXAMPLE_1[:-4] + b"\x00\x01" + EXAMPLE_1[-2:], {}, "teltonika_bad_crc"),
        (reframe(b"\x10" + field_of(EXAMPLE_1)[1:]), {}, "teltonika_unknown_codec"),
        (reframe(field_of(EXAMPLE_1)[:-1] + b"\x02"), {}, "teltonika_count_mismatch"),
        (reframe(b"\x8e\x00\x00"), {}, "teltonika_no_records"),
    ],
)
def test_each_corruption_gives_its_reason(frame, kw, reason):
    assert reason_of(frame, **kw) == reason


@pytest.mark.parametrize("hex_frame", ALL_EXAMPLES)
def test_every_truncation_is_truncated(hex_frame):
    frame = bytes.fromhex(hex_frame)
    assert {reason_of(frame[:cut]) for cut in range(len(frame))} == {"teltonika_truncated"}


@pytest.mark.parametrize("hex_frame", ALL_EXAMPLES)
def test_every_single_byte_change_in_the_crc_span_is_caught(hex_frame):
    frame = bytearray.fromhex(hex_frame)
    for pos in range(8, len(frame) - 4):
        for flip in (0x01, 0x80, 0xFF):
            frame[pos] ^= flip
            assert reason_of(bytes(frame)) == "teltonika_bad_crc"
            frame[pos] ^= flip


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_reject(data):
    reason_of(data)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from([CODEC_8, CODEC_8E]), st.integers(0, 255), st.binary(max_size=300))
def test_random_records_in_a_valid_frame_decode_or_reject(codec, n, body):
    # Valid framing, codec and counts, so the record parser itself meets the garbage.
    reason_of(reframe(bytes((codec, n)) + body + bytes((n,))))


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(ALL_EXAMPLES), st.data())
def test_mutated_documented_frames_decode_or_reject(hex_frame, data):
    frame = bytearray.fromhex(hex_frame)
    pos = data.draw(st.integers(0, len(frame) - 1))
    frame[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    reason_of(bytes(frame[:cut]))
    reason_of(bytes(frame))
    field = field_of(bytes(frame))
    reason_of(reframe(field))  # the same change with the CRC repaired reaches the record parser
    reason_of(reframe(field[:cut]))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire_records(), st.data())
def test_mutated_encoded_frames_decode_or_reject(records, data):
    field = bytearray(field_of(encode(records)))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(field) - 1))
        field[pos] = data.draw(st.integers(0, 255))
    reason_of(reframe(bytes(field)))
    reason_of(reframe(bytes(field[: data.draw(st.integers(0, len(field)))])))
