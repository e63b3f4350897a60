"""Topics and payload bytes of every protocol the city simulator speaks (see docs/protocol.md).

Encoders take plain values in the units of the protocol's edge (degrees, km/h, m, %, g, UTC ms) and
return bytes; the Teltonika packet comes from :func:`ingest.teltonika.encode`, the car JSON from
:func:`simulators.cars.encode_fix_message`, so the simulator and the gateway share one definition.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

from ingest import teltonika
from simulators.cars import encode_fix_message

PROTOCOLS = ("vigil_json", "teltonika", "owntracks", "pet_json", "home_json")
_enc = msgspec.json.Encoder()


def topic(kind: str, device_id: str, stream: str) -> str:
    return f"vigil/v1/{kind}/{device_id}/{stream}"


def owntracks_topic(device_id: str) -> str:
    """``owntracks/{user}/{device}`` of a phone whose registry id is ``user:device``."""
    user, device = device_id.split(":", 1)
    return f"owntracks/{user}/{device}"


def car_json(device_id: str, seq: int, fix: dict[str, Any]) -> bytes:
    return encode_fix_message(device_id, seq, [fix])


# One Codec 8E record with this simulator's fixed IO set, laid out as ingest.teltonika.encode writes it:
# GPS element, event id 0, 7 IO elements: 1-byte 239 ignition, 240 movement; 2-byte 17/18/19 axes (mG,
# two's complement), 182 HDOP; 4-byte 16 odometer; no 8-byte or NX elements.
_AVL_RECORD = struct.Struct(">qbiihHBH" "HH" "H HB HB" "H HH HH HH HH" "H HI" "H" "H")


def car_avl(fix: dict[str, Any], odometer_m: float, satellites: int) -> bytes:
    """One Codec 8E record in one packet: ignition, movement, odometer, accelerometer and HDOP (IO 182,
    0.1 units) whose ×5 m the gateway reads back as the accuracy. Packed directly (about 20× faster
    than building :class:`ingest.teltonika.AvlRecords`); a test checks it byte for byte against
    :func:`ingest.teltonika.encode`."""
    axes = [int(round(a * 1000)) & 0xFFFF for a in fix["accel_g"]]
    speed = int(round(fix["speed_kmh"]))
    record = _AVL_RECORD.pack(
        int(fix["ts"]), 0, int(round(fix["lon"] * 1e7)), int(round(fix["lat"] * 1e7)), 0,
        int(round(fix["heading_deg"])) % 360, satellites, speed, 0, 7,
        2, teltonika.IO_IGNITION, int(bool(fix["ignition"])), teltonika.IO_MOVEMENT, int(speed > 0),
        4, teltonika.IO_AXIS_X, axes[0], teltonika.IO_AXIS_Y, axes[1], teltonika.IO_AXIS_Z, axes[2],
        182, int(round(fix["accuracy_m"] * 2)),
        1, teltonika.IO_ODOMETER, int(round(odometer_m)), 0, 0,
    )
    field = bytes((teltonika.CODEC_8E, 1)) + record + b"\x01"
    return struct.pack(">II", 0, len(field)) + field + struct.pack(">I", teltonika.crc16_ibm(field))


def car_avl_reference(fix: dict[str, Any], odometer_m: float, satellites: int) -> bytes:
    """The same packet through :class:`ingest.teltonika.AvlRecords` and :func:`ingest.teltonika.encode`."""
    ax, ay, az = fix["accel_g"]
    speed = round(fix["speed_kmh"])
    rec = teltonika.AvlRecords.from_columns(
        ts_ms=[fix["ts"]], lat=[fix["lat"]], lon=[fix["lon"]], satellites=[satellites],
        speed_kmh=[speed], heading_deg=[round(fix["heading_deg"]) % 360],
        ignition=[int(fix["ignition"])], movement=[int(speed > 0)], odometer_m=[round(odometer_m)],
        accel_x=[ax], accel_y=[ay], accel_z=[az], io={182: [round(fix["accuracy_m"] * 2)]}, io_size={182: 2},
    )
    return teltonika.encode(rec, codec=teltonika.CODEC_8E)


def owntracks_location(fix: dict[str, Any], battery_pct: int, tid: str) -> bytes:
    """An OwnTracks ``location``: ``tst`` in whole seconds, ``vel`` km/h, ``cog`` and ``acc`` as integers
    (as the apps send them)."""
    return _enc.encode({
        "_type": "location", "lat": fix["lat"], "lon": fix["lon"], "tst": int(fix["ts"]) // 1000,
        "acc": int(round(fix["accuracy_m"])), "vel": int(round(fix["speed_kmh"])),
        "cog": int(round(fix["heading_deg"])) % 360, "batt": int(battery_pct), "tid": tid, "t": "t", "conn": "m",
    })


def pet_fix(device_id: str, seq: int, fixes: list[dict[str, Any]]) -> bytes:
    return _enc.encode({"v": 1, "device": device_id, "seq": int(seq), "fixes": fixes})


def pet_sos(device_id: str, seq: int, ts_ms: int, event_id: str, lat: float, lon: float, accuracy_m: float,
            battery_pct: float) -> bytes:
    return _enc.encode({"v": 1, "device": device_id, "seq": int(seq), "ts": int(ts_ms), "event_id": event_id,
                        "lat": lat, "lon": lon, "accuracy_m": accuracy_m, "battery_pct": battery_pct})


def pet_heartbeat(device_id: str, seq: int, ts_ms: int, battery_pct: float) -> bytes:
    return _enc.encode({"v": 1, "device": device_id, "seq": int(seq), "ts": int(ts_ms), "battery_pct": battery_pct})


def home_events(device_id: str, seq: int, events: list[dict[str, Any]]) -> bytes:
    return _enc.encode({"v": 1, "device": device_id, "seq": int(seq), "events": events})


def home_heartbeat(device_id: str, seq: int, ts_ms: int, battery_pct: float, mains: bool) -> bytes:
    return _enc.encode({"v": 1, "device": device_id, "seq": int(seq), "ts": int(ts_ms),
                        "battery_pct": battery_pct, "mains": bool(mains)})
