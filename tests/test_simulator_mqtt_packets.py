"""MQTT 3.1.1 packet bytes of the lean device client, checked against the spec's layouts (OASIS MQTT 3.1.1
section 2 and 3), and the stream splitter fed in every cut. The real broker's view is in
test_simulator_mqtt_device.py."""

from __future__ import annotations

import struct

import pytest

from simulators import mqtt_packets as mp


@pytest.mark.parametrize("n,encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
                                       (16_384, b"\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f")])
def test_remaining_length_examples_of_the_spec(n, encoded):
    assert mp.remaining_length(n) == encoded


def test_remaining_length_out_of_range():
    for n in (-1, mp.MAX_REMAINING + 1):
        with pytest.raises(ValueError):
            mp.remaining_length(n)


def test_connect_layout():
    pkt = mp.connect("cid", username="dev-1", password="pw", keepalive_s=30)
    body = (b"\x00\x04MQTT" + bytes((4, 0x80 | 0x40 | 0x02)) + b"\x00\x1e" + b"\x00\x03cid" + b"\x00\x05dev-1"
            + b"\x00\x02pw")
    assert pkt == b"\x10" + bytes((len(body),)) + body
    anon = mp.connect("c", keepalive_s=0, clean_session=False)
    assert anon == b"\x10\x0d\x00\x04MQTT\x04\x00\x00\x00\x00\x01c"
    with pytest.raises(ValueError):
        mp.connect("c", password="pw")
    with pytest.raises(ValueError):
        mp.connect("c", keepalive_s=70_000)


def test_publish_layout():
    payload = bytes(range(256)) * 2
    pkt = mp.publish("vigil/v1/car/é/fix", payload, qos=1, packet_id=513)
    topic = "vigil/v1/car/é/fix".encode()
    rest = struct.pack("!H", len(topic)) + topic + b"\x02\x01" + payload
    assert pkt == b"\x32" + mp.remaining_length(len(rest)) + rest
    assert mp.publish("t", b"x", qos=0) == b"\x30\x04\x00\x01tx"
    assert mp.publish("t", b"", qos=1, packet_id=1, retain=True)[0] == 0x33
    for bad in (dict(qos=2, packet_id=1), dict(qos=1, packet_id=0), dict(qos=1, packet_id=65_536)):
        with pytest.raises(ValueError):
            mp.publish("t", b"", **bad)


def test_reader_splits_packets_at_any_cut():
    big = b"\x30" + mp.remaining_length(300) + b"y" * 300  # a two-byte length
    stream = b"\x20\x02\x00\x00" + b"\x40\x02\x01\x02" + b"\xd0\x00" + big + b"\x40\x02\xff\xff"
    expected = [(mp.CONNACK, 0, b"\x00\x00"), (mp.PUBACK, 0, b"\x01\x02"), (mp.PINGRESP, 0, b""),
                (mp.PUBLISH, 0, b"y" * 300), (mp.PUBACK, 0, b"\xff\xff")]
    for cut in range(len(stream) + 1):
        for step in (1, 3, 7, len(stream)):
            reader = mp.PacketReader()
            got = reader.feed(stream[:cut])
            for i in range(cut, len(stream), step):
                got += reader.feed(stream[i:i + step])
            assert got == expected, (cut, step)
    assert mp.puback_id(b"\x01\x02") == 258 and mp.connack_code(b"\x00\x05") == 5


def test_reader_refuses_a_five_byte_length():
    with pytest.raises(ValueError):
        mp.PacketReader().feed(b"\x30\xff\xff\xff\xff\x01")
    with pytest.raises(ValueError):
        mp.puback_id(b"\x00")
    with pytest.raises(ValueError):
        mp.connack_code(b"\x00\x00\x00")
