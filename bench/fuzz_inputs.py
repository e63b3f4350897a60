"""Frames for bench/fuzz_decoders.py: valid messages of every protocol, drawn from a seeded
``random.Random``, and the byte-, field- and structure-level edits that break them."""

from __future__ import annotations

import json
import math
import random
import struct
import numpy as np
from ingest import teltonika
from ingest.home_json import HomeEventType

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TST = INT64_MAX // 1000
HOME_TYPES = HomeEventType.__args__
EXTREMES = (0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
            1e-300, 3.4028235e38, 3.5e38, -3.5e38, 0.1, 1e16, 2**53, 2**53 + 1, -(2**63))
TOKENS = (b'"', b"{", b"}", b"[", b"]", b",", b":", b"null", b"true", b"false", b"-", b"0", b"1", b"-1",
          b"1.5", b"1e999", b"-1e999", b"9" * 30, b'"\\u', b'"\\ud800"', b'"\\u0000"', b"\xff", b"\xc3",
          b"\xed\xa0\x80", b"\x00", b" ", b"\n", b'"v"', b'"seq"', b'"fixes"', b'"events"', b'"ts"', b'"lat"',
          b'"lon"', b'"_type"',
          b'"location"', b'"tst"', b'"event_id"', b'"battery_pct"', b'"accuracy_m"', b'"type"', b'"motion"',
          b'"device"', b'"x"', b"2", b"101", b"NaN", b"Infinity")
FIELD_NAMES = ("v", "seq", "device", "fixes", "events", "ts", "lat", "lon", "tst", "_type", "event_id",
               "battery_pct", "accuracy_m", "type", "sensor", "accel_g", "ignition", "acc", "batt", "mains", "x")

# -- random values -----------------------------------------------------------------------------------------


def number(rng: random.Random) -> float | int:
    """A JSON number a float field accepts: ordinary, integral, extreme, or any finite bit pattern."""
    r = rng.random()
    if r < 0.4:
        return rng.uniform(-1000, 1000)
    if r < 0.6:
        return rng.randint(-(2**53), 2**53)
    if r < 0.75:
        return rng.choice(EXTREMES)
    while True:
        (v,) = struct.unpack("<d", rng.randbytes(8))
        if math.isfinite(v):
            return v


def between(rng: random.Random, lo: float, hi: float) -> float | int:
    return rng.randint(int(math.ceil(lo)), int(hi)) if rng.random() < 0.2 else rng.uniform(lo, hi)


def text(rng: random.Random, lo: int, hi: int) -> str:
    """``lo``..``hi`` code points: ASCII, BMP (no surrogates) or astral."""
    out = []
    for _ in range(rng.randint(lo, hi)):
        r = rng.random()
        if r < 0.7:
            out.append(chr(rng.randint(0x20, 0x7E)))
        elif r < 0.9:
            c = rng.randint(0x80, 0xFFFD)
            out.append(chr(c if not 0xD800 <= c <= 0xDFFF else 0xE000))
        else:
            out.append(chr(rng.randint(0x10000, 0x10FFFF)))
    return "".join(out)


def maybe(rng: random.Random, make, absent: float = 0.35, null: float = 0.15):
    """Absent (``...``), null or a value."""
    r = rng.random()
    return ... if r < absent else None if r < absent + null else make()


def present(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not ...}


def int64(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.6:
        return rng.randint(1_500_000_000_000, 1_900_000_000_000)
    return rng.choice((0, -1, INT64_MIN, INT64_MAX)) if r < 0.7 else rng.randint(INT64_MIN, INT64_MAX)


def envelope(rng: random.Random) -> dict:
    return {"v": rng.choice((..., 1)), "device": maybe(rng, lambda: text(rng, 0, 20)), "seq": int64(rng)}


def percent(rng: random.Random):
    return between(rng, 0, 100)


# -- valid frames: (JSON body or AvlRecords, number of fixes or events it must yield) ---------------------


def car_message(rng):
    fixes = [present({
        "ts": int64(rng), "lat": number(rng), "lon": number(rng), "speed_kmh": maybe(rng, lambda: number(rng)),
        "heading_deg": maybe(rng, lambda: number(rng)), "accuracy_m": maybe(rng, lambda: number(rng)),
        "ignition": maybe(rng, lambda: rng.random() < 0.5),
        "accel_g": maybe(rng, lambda: [number(rng) for _ in range(3)]),
    }) for _ in range(rng.randint(1, 6))]
    return present({**envelope(rng), "fixes": fixes}), len(fixes)


def home_events(rng):
    events = [present({
        "ts": int64(rng), "type": rng.choice(HOME_TYPES), "event_id": text(rng, 1, 64),
        "sensor": maybe(rng, lambda: text(rng, 0, 64)), "battery_pct": maybe(rng, lambda: percent(rng)),
    }) for _ in range(rng.randint(1, 5))]
    return present({**envelope(rng), "events": events}), len(events)


def home_heartbeat(rng):
    return present({**envelope(rng), "ts": int64(rng), "battery_pct": maybe(rng, lambda: percent(rng)),
                    "mains": maybe(rng, lambda: rng.random() < 0.5)}), 1


def pet_fixes(rng):
    fixes = [present({
        "ts": int64(rng), "lat": number(rng), "lon": number(rng), "accuracy_m": number(rng),
        "speed_kmh": maybe(rng, lambda: number(rng)), "heading_deg": maybe(rng, lambda: number(rng)),
        "battery_pct": maybe(rng, lambda: percent(rng)),
    }) for _ in range(rng.randint(1, 6))]
    return present({**envelope(rng), "fixes": fixes, "extra": maybe(rng, lambda: text(rng, 0, 5))}), len(fixes)


def pet_sos(rng):
    if rng.random() < 0.7:
        lat, lon = number(rng), number(rng)
    else:
        lat, lon = rng.choice((..., None)), rng.choice((..., None))
    return present({**envelope(rng), "ts": int64(rng), "event_id": text(rng, 1, 128), "lat": lat, "lon": lon,
                    "accuracy_m": maybe(rng, lambda: number(rng)),
                    "battery_pct": maybe(rng, lambda: percent(rng))}), 1


def pet_heartbeat(rng):
    return present({**envelope(rng), "ts": int64(rng), "battery_pct": percent(rng)}), 1


def owntracks_location(rng):
    body = {"_type": "location", "lat": number(rng), "lon": number(rng),
            "tst": rng.randint(1_500_000_000, 1_900_000_000) if rng.random() < 0.8 else rng.randint(-MAX_TST, MAX_TST)}
    body |= {k: maybe(rng, lambda: number(rng)) for k in ("acc", "vel", "cog", "batt", "alt", "vac")}
    body |= {k: maybe(rng, lambda: text(rng, 0, 4)) for k in ("tid", "t", "conn")}
    if rng.random() < 0.5:
        body |= {"bs": rng.randint(0, 3), "created_at": rng.randint(0, 2**31), "inregions": [text(rng, 0, 6)],
                 "SSID": text(rng, 0, 8), "m": rng.randint(0, 2)}
    return present(body), 1


def avl_records(rng, codec: int):
    n = rng.randint(1, 8)
    id_max = 0xFF if codec == teltonika.CODEC_8 else 0xFFFF
    mapped = {16, 17, 18, 19, 66, 239, 240}
    io = {}
    for _ in range(rng.randint(0, 5)):
        io_id = rng.randint(0, id_max)
        if io_id not in mapped:
            width = rng.choice((1, 2, 4, 8))
            top = min(2 ** (8 * width) - 1, 2**53)
            io[io_id] = [float(rng.randint(0, top)) if rng.random() < 0.7 else np.nan for _ in range(n)]
    io_bytes = {}
    if codec == teltonika.CODEC_8E:
        for _ in range(rng.randint(0, 2)):
            io_bytes[rng.randint(0, 0xFFFF)] = [rng.randbytes(rng.randint(0, 16)) if rng.random() < 0.7 else None
                                                for _ in range(n)]

    def col(lo, hi):
        return [rng.randint(lo, hi) for _ in range(n)]

    def flags():
        return rng.choice((None, [rng.choice((-1, 0, 1)) for _ in range(n)]))

    records = teltonika.AvlRecords.from_columns(
        codec=codec, ts_ms=[int64(rng) for _ in range(n)], lat=np.array(col(-900_000_000, 900_000_000)) / 1e7,
        lon=np.array(col(-1_800_000_000, 1_800_000_000)) / 1e7, satellites=col(1, 255), priority=col(0, 2),
        altitude_m=col(-(2**15), 2**15 - 1), heading_deg=col(0, 359), speed_kmh=col(0, 0xFFFF),
        event_io=col(0, id_max), ignition=flags(), movement=flags(),
        odometer_m=rng.choice((None, col(0, 2**32 - 1))),
        accel_x=rng.choice((None, [v / 1000 for v in col(-32767, 32767)])),
        ext_voltage_v=rng.choice((None, [v / 1000 for v in col(0, 65535)])),
        io=io, io_bytes=io_bytes,
    )
    return records, n


JSON_VALID = {
    "vigil_car": car_message, "home_event": home_events, "home_heartbeat": home_heartbeat, "pet_fix": pet_fixes,
    "pet_sos": pet_sos, "pet_heartbeat": pet_heartbeat, "owntracks": owntracks_location,
}
CODECS = {"teltonika_8": teltonika.CODEC_8, "teltonika_8e": teltonika.CODEC_8E}
AVL_POOL = 1_500  # valid packets per codec and chunk: building one costs ~0.2 ms of NumPy


def to_bytes(rng: random.Random, body) -> bytes:
    return json.dumps(body, ensure_ascii=rng.random() < 0.5, separators=rng.choice(((",", ":"), (", ", ": ")))).encode()


# -- mutations ---------------------------------------------------------------------------------------------


def byte_edits(rng: random.Random, frame: bytes, tokens: bool = True) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(data))
        op = rng.randrange(7)
        if op == 0 and at < len(data):
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1 and at < len(data):
            data[at] = rng.randrange(256)
        elif op == 2:
            data[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and tokens:
            data[at:at] = rng.choice(TOKENS)
        elif op == 4:
            del data[at:at + rng.randint(1, 16)]
        elif op == 5:
            del data[at:]
        else:
            data[at:at] = data[at:at + rng.randint(1, 32)]
    return bytes(data)


def json_value(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth < 3 and r < 0.15:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3 and r < 0.3:
        return {rng.choice(FIELD_NAMES) if rng.random() < 0.6 else text(rng, 0, 4): json_value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    return rng.choice((
        None, True, False, 0, -1, 1, 2, 101, INT64_MAX, INT64_MIN, 2**63, 2**64, -(2**63) - 1, 10**30, -0.0, 0.5, 1e308,
        "", "x" * 300, "location", "encrypted", "lwt", "motion", "heartbeat", "sos", [], {}, [[[]]],
        rng.randint(-(2**70), 2**70), number(rng), text(rng, 0, 10),
    ))


def tree_edits(rng: random.Random, body):
    body = json.loads(json.dumps(body))
    for _ in range(rng.randint(1, 3)):
        slots = []  # (container, key)

        def walk(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    slots.append((node, k))
                    walk(v)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    slots.append((node, i))
                    walk(v)

        walk(body)
        if not slots or rng.random() < 0.03:
            body = json_value(rng)
            continue
        parent, key = rng.choice(slots)
        op = rng.randrange(5)
        if op == 0:
            parent[key] = json_value(rng)
        elif op == 1:
            del parent[key]
        elif op == 2:
            if isinstance(parent, dict):
                parent[rng.choice(FIELD_NAMES)] = json_value(rng)
            else:
                parent.insert(key, json_value(rng))
        elif op == 3:
            parent[key] = [parent[key]] if rng.random() < 0.5 else {"x": parent[key]}
        elif isinstance(parent[key], list) and parent[key]:
            parent[key] = parent[key] * rng.randint(2, 40)
        else:
            parent[key] = json_value(rng)
    return body


def reframe(data_field: bytes) -> bytes:
    """A Teltonika packet around ``data_field`` with the right length and CRC."""
    return struct.pack(">II", 0, len(data_field)) + data_field + struct.pack(">I", teltonika.crc16_ibm(data_field))


def avl_struct_edit(rng: random.Random, frame: bytes) -> bytes:
    data_field = bytearray(byte_edits(rng, frame[8:-4], tokens=False))
    if len(data_field) >= 2 and rng.random() < 0.6:
        data_field[-1] = data_field[1]  # keep N1 == N2 so the records are parsed
    return reframe(bytes(data_field))


def avl_random(rng: random.Random, codec: int) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(rng.randint(0, 256))
    n = rng.randint(1, 4)
    return reframe(bytes((codec, n)) + rng.randbytes(rng.randint(0, 200)) + bytes((n,)))


# -- one chunk of inputs -----------------------------------------------------------------------------------
