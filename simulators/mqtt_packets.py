"""MQTT 3.1.1 packets a publish-only device needs, as bytes (OASIS MQTT 3.1.1, section 3).

Pure functions, no sockets: :mod:`simulators.mqtt_device` writes these on its connections and feeds
what it reads to :class:`PacketReader`. Only what a device that publishes at QoS 0/1 and never
subscribes sends or receives: CONNECT, CONNACK, PUBLISH, PUBACK, PINGREQ, PINGRESP, DISCONNECT.
"""

from __future__ import annotations

import struct

CONNECT, CONNACK, PUBLISH, PUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 4, 12, 13, 14
#: 268 435 455 bytes: the largest remaining length four length bytes can say (section 2.2.3).
MAX_REMAINING = 268_435_455
#: CONNACK return codes (section 3.2.2.3).
CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
PINGREQ_BYTES = bytes((PINGREQ << 4, 0))
DISCONNECT_BYTES = bytes((DISCONNECT << 4, 0))


def remaining_length(n: int) -> bytes:
    """The variable-length encoding of a packet's remaining length: 7 bits a byte, low bits first."""
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"MQTT packets carry 0-{MAX_REMAINING} bytes after the header, not {n}")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 0xFFFF:
        raise ValueError("an MQTT string holds at most 65535 bytes")
    return struct.pack("!H", len(raw)) + raw


def connect(client_id: str, *, username: str | None = None, password: str | None = None,
            keepalive_s: int = 60, clean_session: bool = True) -> bytes:
    """CONNECT with protocol level 4 (3.1.1). ``keepalive_s``: the longest the client stays silent
    (0-65535 s, 0 = no keep-alive); the broker drops it after 1.5 times that without a packet."""
    if not 0 <= keepalive_s <= 0xFFFF:
        raise ValueError("keepalive_s must be 0-65535")
    if password is not None and username is None:
        raise ValueError("MQTT 3.1.1 sends a password only with a user name")
    flags = (0x02 if clean_session else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _string("MQTT") + bytes((4, flags)) + struct.pack("!H", keepalive_s) + _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return bytes((CONNECT << 4,)) + remaining_length(len(body)) + body


def publish(topic: str, payload: bytes, *, qos: int = 1, packet_id: int = 0, retain: bool = False) -> bytes:
    """PUBLISH at QoS 0 or 1; QoS 1 needs a ``packet_id`` of 1-65535, which the PUBACK echoes."""
    if qos not in (0, 1):
        raise ValueError("this client publishes at QoS 0 or 1")
    if qos and not 1 <= packet_id <= 0xFFFF:
        raise ValueError("a QoS 1 PUBLISH needs a packet id of 1-65535")
    head = _string(topic) + (struct.pack("!H", packet_id) if qos else b"")
    return (bytes(((PUBLISH << 4) | (qos << 1) | int(retain),)) + remaining_length(len(head) + len(payload))
            + head + payload)


class PacketReader:
    """Splits a byte stream into ``(packet type, flags, body)``; :meth:`feed` returns the packets that
    are complete and keeps the rest for the next call."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        buf = self._buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 2:
            n, mult, i, complete = 0, 1, pos + 1, False
            for _ in range(4):
                if i >= len(buf):
                    break
                byte = buf[i]
                i += 1
                n += (byte & 0x7F) * mult
                mult *= 128
                if not byte & 0x80:
                    complete = True
                    break
            else:
                raise ValueError("malformed remaining length from the broker")
            if not complete or len(buf) - i < n:
                break
            out.append((buf[pos] >> 4, buf[pos] & 0x0F, bytes(buf[i:i + n])))
            pos = i + n
        del buf[:pos]
        return out


def connack_code(body: bytes) -> int:
    """The return code of a CONNACK body (0 = accepted)."""
    if len(body) != 2:
        raise ValueError(f"CONNACK carries 2 bytes, got {len(body)}")
    return body[1]


def puback_id(body: bytes) -> int:
    """The packet id a PUBACK acknowledges."""
    if len(body) != 2:
        raise ValueError(f"PUBACK carries 2 bytes, got {len(body)}")
    return struct.unpack("!H", body)[0]
