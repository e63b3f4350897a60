"""Decoder and encoder of Teltonika AVL data packets, Codec 8 (0x08) and Codec 8 Extended (0x8E).

One MQTT payload carries one whole packet, laid out as on TCP (Teltonika wiki, page "Codec"):

    preamble 4 B (zero) | data field length 4 B | codec id | N1 | N1 records | N2 | CRC 4 B

The data field length and the CRC-16/IBM (poly 0xA001 reflected, init 0, in the low two bytes of the
4-byte field) both cover codec id .. N2. A record is timestamp (8 B, UTC ms), priority (1 B), the GPS
element (longitude, latitude int32 in 1e-7 degrees, altitude int16 m, angle uint16 degrees, satellites
uint8, speed uint16 km/h) and the IO element. Codec 8 IO ids and counts are 1 byte; Codec 8E makes them
2 bytes and adds variable-length (NX) elements. Everything is big-endian.

:func:`decode` raises :class:`vigil.errors.RejectedInput` with one of these reasons, checked in order,
and no other exception for any byte string:

- ``teltonika_too_large``: more than ``max_bytes`` (default :data:`MAX_PACKET_BYTES`).
- ``teltonika_truncated``: shorter than the 8-byte header or than the length the header declares.
- ``teltonika_bad_preamble``: the first four bytes are not zero.
- ``teltonika_trailing_bytes``: bytes after the CRC field.
- ``teltonika_length_mismatch``: the data field is too short for codec id and counts, or its records
  overrun it or leave bytes over before N2.
- ``teltonika_bad_crc``: the CRC field disagrees with the data field (or its high two bytes are set).
- ``teltonika_unknown_codec``: a codec other than 0x08 / 0x8E (12, 13, 16 ... are not AVL records here).
- ``teltonika_count_mismatch``: N1 differs from N2.
- ``teltonika_no_records``: N1 == N2 == 0.

The CRC is checked before the content, so a corrupted byte reads as ``teltonika_bad_crc``; the
content reasons mean the device itself sent that packet. The "total IO count" of a record is not
checked against the per-size counts (other servers ignore it too); the per-size counts rule.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from vigil.errors import RejectedInput

CODEC_8 = 0x08
CODEC_8E = 0x8E
#: 64 KiB: far above real packets (the Codec page gives 783 B as the largest one-record Codec 8
#: packet) while bounding the work and the dense ``io`` arrays one hostile message can cost.
MAX_PACKET_BYTES = 65_536
#: Every reason :func:`decode` may give, in the order it checks them.
REASONS = (
    "teltonika_too_large", "teltonika_truncated", "teltonika_bad_preamble", "teltonika_trailing_bytes",
    "teltonika_length_mismatch", "teltonika_bad_crc", "teltonika_unknown_codec", "teltonika_count_mismatch",
    "teltonika_no_records",
)

# AVL ids of the mapped columns (Teltonika FMB "Data Sending Parameters ID" list).
IO_ODOMETER = 16                              # Total Odometer, 4 B unsigned, m
IO_AXIS_X, IO_AXIS_Y, IO_AXIS_Z = 17, 18, 19  # Axis X / Y / Z, 2 B signed, mG
IO_EXT_VOLTAGE = 66                           # External Voltage, 2 B unsigned, mV
IO_IGNITION, IO_MOVEMENT = 239, 240           # 1 B, 0 off / 1 on
# column, AVL id, wire units per column unit, width in bytes, signed
_MAPPED = (
    ("ignition", IO_IGNITION, 1, 1, False), ("movement", IO_MOVEMENT, 1, 1, False),
    ("ext_voltage_v", IO_EXT_VOLTAGE, 1000, 2, False), ("odometer_m", IO_ODOMETER, 1, 4, False),
    ("accel_x", IO_AXIS_X, 1000, 2, True), ("accel_y", IO_AXIS_Y, 1000, 2, True),
    ("accel_z", IO_AXIS_Z, 1000, 2, True),
)

_U32 = struct.Struct(">I")
_HEADER = struct.Struct(">II")
# timestamp, priority, longitude, latitude, altitude, angle, satellites, speed
_AVL = struct.Struct(">qbiihHBH")
_NX = struct.Struct(">HH")
_WIDTHS = (1, 2, 4, 8)
# codec -> (event id + total count, a per-size count, (width, id+value pair) per size, has NX)
_LAYOUTS = {
    CODEC_8: (struct.Struct(">BB"), struct.Struct(">B"),
              tuple((w, struct.Struct(">B" + c)) for w, c in zip(_WIDTHS, "BHIQ")), False),
    CODEC_8E: (struct.Struct(">HH"), struct.Struct(">H"),
               tuple((w, struct.Struct(">H" + c)) for w, c in zip(_WIDTHS, "BHIQ")), True),
}


def _crc_of_byte(crc: int) -> int:
    for _ in range(8):
        crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


_CRC_TABLE = tuple(_crc_of_byte(byte) for byte in range(256))


def crc16_ibm(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/IBM (a.k.a. ARC): polynomial 0x8005 reflected (0xA001), init 0, no final xor."""
    crc = 0
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True, eq=False, slots=True)
class AvlRecords:
    """The records of one packet as columns, one row per record (arrays of shape (n,)).

    Units: ``ts_ms`` UTC ms; ``lat``/``lon`` degrees WGS84; ``altitude_m`` m; ``heading_deg`` degrees
    clockwise from north; ``speed_kmh`` km/h; ``ext_voltage_v`` V; ``odometer_m`` m; ``accel_*`` g.
    ``gps_valid`` is False when the device had no fix (it then repeats the last fix with 0 satellites,
    angle and speed, per the Codec page) or the coordinates are out of range; the row is kept.
    The mapped columns are -1 (``ignition``, ``movement``) or NaN when the record lacks that IO.

    ``io`` maps every fixed-size IO id seen in the packet to its raw unsigned value per record (NaN
    where absent; float64 is exact up to 2**53, so wider 8-byte values lose low bits). Signedness and
    multipliers depend on the id and device model, so only the mapped columns apply them. ``io_size``
    is each id's width in bytes (1, 2, 4, 8; the widest seen), which the encoder writes again.
    ``io_bytes`` holds Codec 8E variable-length (NX) values, None where absent.
    Build records to encode with :meth:`from_columns`, which keeps the mapped columns and ``io`` in step.
    """

    codec: int
    ts_ms: np.ndarray          # int64
    priority: np.ndarray       # int8: 0 low, 1 high, 2 panic
    lat: np.ndarray            # float64
    lon: np.ndarray            # float64
    altitude_m: np.ndarray     # float32
    heading_deg: np.ndarray    # float32
    satellites: np.ndarray     # int16
    speed_kmh: np.ndarray      # float32
    event_io: np.ndarray       # int32: id of the IO that triggered the record, 0 when periodic
    gps_valid: np.ndarray      # bool
    ignition: np.ndarray       # int8
    movement: np.ndarray       # int8
    ext_voltage_v: np.ndarray  # float32
    odometer_m: np.ndarray     # float64
    accel_x: np.ndarray        # float32
    accel_y: np.ndarray        # float32
    accel_z: np.ndarray        # float32
    io: dict[int, np.ndarray]
    io_size: dict[int, int]
    io_bytes: dict[int, list[bytes | None]]

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    @classmethod
    def from_columns(
        cls, *, ts_ms, lat, lon, satellites, speed_kmh=0.0, heading_deg=0.0, altitude_m=0.0, priority=0,
        event_io=0, ignition=None, movement=None, ext_voltage_v=None, odometer_m=None, accel_x=None,
        accel_y=None, accel_z=None, io=None, io_size=None, io_bytes=None, codec: int = CODEC_8E,
    ) -> "AvlRecords":
        """Records as the wire carries them: values are rounded to the wire's resolution (1e-7 degrees,
        whole m, degrees, km/h, mV, mG) and mapped columns become their IO elements. Scalars broadcast
        to ``len(ts_ms)``; units as in the class docstring. ``io`` values are raw unsigned integers
        (NaN for absent); ``io_size`` defaults to the smallest width holding each id's values.
        """
        ts = np.asarray(ts_ms, dtype=np.int64).reshape(-1)
        n = ts.shape[0]

        def col(values):
            return np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)).copy()

        lat_i, lon_i = _to_int(lat, 1e7, n, "lat"), _to_int(lon, 1e7, n, "lon")
        io = {int(k): col(v) for k, v in (io or {}).items()}
        sizes = {int(k): int(v) for k, v in (io_size or {}).items()}
        given = dict(ignition=ignition, movement=movement, ext_voltage_v=ext_voltage_v, odometer_m=odometer_m,
                     accel_x=accel_x, accel_y=accel_y, accel_z=accel_z)
        for name, io_id, scale, width, signed in _MAPPED:
            if given[name] is None:
                continue
            if io_id in io:
                raise ValueError(f"give {name} or io[{io_id}], not both")
            v = col(given[name])
            v = np.where((v < 0) | np.isnan(v), np.nan, v != 0) if width == 1 else np.rint(v * scale)
            if signed:
                if np.any(np.abs(v[~np.isnan(v)]) > 32767):
                    raise ValueError(f"{name} beyond ±32.767 g does not fit 2 bytes")
                v = np.where(v < 0, v + 65536, v)
            io[io_id], sizes[io_id] = v, width
        io = {k: v for k, v in io.items() if not np.isnan(v).all()}  # the wire cannot carry an empty id
        sizes = {k: w for k, w in sizes.items() if k in io}
        for io_id, v in io.items():
            if io_id not in sizes:
                top = np.nanmax(v, initial=0.0)
                sizes[io_id] = next((w for w in _WIDTHS if top < 2.0 ** (8 * w)), 8)
        blobs = {int(k): [None if b is None else bytes(b) for b in v] for k, v in (io_bytes or {}).items()}
        if any(len(v) != n for v in blobs.values()):
            raise ValueError(f"io_bytes lists must have {n} entries")
        blobs = {k: v for k, v in blobs.items() if any(b is not None for b in v)}
        wire = {k: _to_int(v, 1, n, k) for k, v in (
            ("priority", priority), ("altitude_m", altitude_m), ("heading_deg", heading_deg),
            ("satellites", satellites), ("speed_kmh", speed_kmh), ("event_io", event_io))}
        return _assemble(
            codec, ts, wire["priority"], lat_i, lon_i, wire["altitude_m"], wire["heading_deg"],
            wire["satellites"], wire["speed_kmh"], wire["event_io"], io, sizes, blobs,
        )


def _to_int(values, scale: float, n: int, name: str) -> np.ndarray:
    v = np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)) * scale
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite")
    return np.rint(v).astype(np.int64)


def _mapped(io: dict[int, np.ndarray], sizes: dict[int, int], n: int) -> dict[str, np.ndarray]:
    """The mapped columns derived from raw IO values (the one place their units are applied)."""

    out = {}
    for name, io_id, scale, width, signed in _MAPPED:
        v = io.get(io_id)
        if width == 1:  # on/off flags: -1 when absent
            out[name] = np.full(n, -1, np.int8) if v is None else np.where(np.isnan(v), -1, v != 0).astype(np.int8)
            continue
        dtype = np.float64 if name == "odometer_m" else np.float32
        if v is not None and signed:
            bits = 8 * sizes.get(io_id, 8)
            v = np.where(v >= 2.0 ** (bits - 1), v - 2.0**bits, v)
        out[name] = np.full(n, np.nan, dtype) if v is None else (v / scale).astype(dtype)
    return out


def _assemble(codec, ts, priority, lat_i, lon_i, alt, angle, sats, speed, event, io, sizes, blobs) -> AvlRecords:
    """Records from wire integers (int64 arrays) and IO dicts."""
    lat, lon = lat_i / 1e7, lon_i / 1e7
    return AvlRecords(
        codec=codec, ts_ms=ts.astype(np.int64), priority=priority.astype(np.int8), lat=lat, lon=lon,
        altitude_m=alt.astype(np.float32), heading_deg=angle.astype(np.float32),
        satellites=sats.astype(np.int16), speed_kmh=speed.astype(np.float32), event_io=event.astype(np.int32),
        gps_valid=(sats > 0) & (np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0),
        io=dict(sorted(io.items())), io_size=dict(sorted(sizes.items())), io_bytes=dict(sorted(blobs.items())),
        **_mapped(io, sizes, len(ts)),
    )


class _Overrun(Exception):
    pass


def decode(payload: bytes, *, max_bytes: int = MAX_PACKET_BYTES) -> AvlRecords:
    """Decode one Codec 8 / 8E packet; raises :class:`RejectedInput` (reasons in the module docstring)."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    data = bytes(payload)
    size = len(data)
    if size > max_bytes:
        raise RejectedInput("teltonika_too_large", f"{size} bytes, limit {max_bytes}")
    if size < _HEADER.size:
        raise RejectedInput("teltonika_truncated", f"{size} bytes, the header alone is 8")
    preamble, length = _HEADER.unpack_from(data)
    if preamble:
        raise RejectedInput("teltonika_bad_preamble", f"preamble {preamble:#010x}, expected 0")
    expected = _HEADER.size + length + 4
    if size < expected:
        raise RejectedInput("teltonika_truncated", f"{size} bytes, header declares {expected}")
    if size > expected:
        raise RejectedInput("teltonika_trailing_bytes", f"{size - expected} bytes after the CRC")
    if length < 3:
        raise RejectedInput("teltonika_length_mismatch", f"data field of {length} bytes")
    field = memoryview(data)[_HEADER.size:_HEADER.size + length]
    (sent,) = _U32.unpack_from(data, _HEADER.size + length)
    crc = crc16_ibm(field)
    if sent != crc:
        raise RejectedInput("teltonika_bad_crc", f"packet says {sent:#06x}, data gives {crc:#06x}")
    codec, n1, n2 = field[0], field[1], field[-1]
    if codec not in _LAYOUTS:
        raise RejectedInput("teltonika_unknown_codec", f"codec {codec:#04x}")
    if n1 != n2:
        raise RejectedInput("teltonika_count_mismatch", f"{n1} records announced, {n2} at the end")
    if n1 == 0:
        raise RejectedInput("teltonika_no_records", "the packet holds no records")
    try:
        return _parse(field[2:-1], n1, codec)
    except (struct.error, _Overrun) as exc:
        raise RejectedInput("teltonika_length_mismatch", f"records overrun the data field: {exc}") from exc


def _parse(body: memoryview, n: int, codec: int) -> AvlRecords:
    head, count, pairs, has_nx = _LAYOUTS[codec]
    end, pos = len(body), 0
    rows: list[tuple[int, ...]] = []
    values: list[dict[int, int]] = []
    blobs: list[dict[int, bytes]] = []
    sizes: dict[int, int] = {}  # id -> widest width seen
    for _ in range(n):
        gps = _AVL.unpack_from(body, pos)
        event, _total = head.unpack_from(body, pos + _AVL.size)
        pos += _AVL.size + head.size
        rows.append((*gps, event))
        record: dict[int, int] = {}
        for width, pair in pairs:
            (k,) = count.unpack_from(body, pos)
            start, pos = pos + count.size, pos + count.size + k * pair.size
            if pos > end:
                raise _Overrun(f"{k} IO elements of {width} B")
            for io_id, value in pair.iter_unpack(body[start:pos]):
                record[io_id] = value
                if sizes.get(io_id, 0) < width:
                    sizes[io_id] = width
        values.append(record)
        raw: dict[int, bytes] = {}
        if has_nx:
            (k,) = count.unpack_from(body, pos)
            pos += count.size
            for _ in range(k):
                io_id, length = _NX.unpack_from(body, pos)
                pos += _NX.size + length
                if pos > end:
                    raise _Overrun(f"variable IO element of {length} B")
                raw[io_id] = bytes(body[pos - length:pos])
        blobs.append(raw)
    if pos != end:
        raise _Overrun(f"{end - pos} bytes left after {n} records")
    io = {io_id: np.full(n, np.nan) for io_id in sizes}
    for row, record in enumerate(values):
        for io_id, value in record.items():
            io[io_id][row] = value
    io_bytes = {io_id: [raw.get(io_id) for raw in blobs] for io_id in {i for raw in blobs for i in raw}}
    ts, prio, lon_i, lat_i, alt, angle, sats, speed, event = np.array(rows, dtype=np.int64).T
    return _assemble(codec, ts, prio, lat_i, lon_i, alt, angle, sats, speed, event, io, sizes, io_bytes)


def encode(records: AvlRecords, *, codec: int | None = None) -> bytes:
    """A valid packet (preamble to CRC) holding ``records``; ``codec`` defaults to ``records.codec``.

    IO elements come from ``records.io`` / ``io_size`` / ``io_bytes``; the mapped columns must agree
    with them (as :meth:`AvlRecords.from_columns` and :func:`decode` ensure). Raises ValueError when
    a value does not fit its wire field, and for NX elements or ids over 255 under Codec 8.
    """
    codec = records.codec if codec is None else codec
    if codec not in _LAYOUTS:
        raise ValueError(f"codec {codec:#x} is not 0x08 or 0x8E")
    n = len(records)
    if not 1 <= n <= 255:
        raise ValueError(f"a packet holds 1..255 records, got {n}")
    for name, derived in _mapped(records.io, records.io_size, n).items():
        if not np.array_equal(derived, getattr(records, name), equal_nan=True):
            raise ValueError(f"column {name} disagrees with io; build records with AvlRecords.from_columns")
    if codec == CODEC_8 and any(b is not None for v in records.io_bytes.values() for b in v):
        raise ValueError("Codec 8 has no variable-length IO elements; use 0x8E")
    head, count, pairs, has_nx = _LAYOUTS[codec]
    gps = zip(
        records.ts_ms.tolist(), records.priority.tolist(), _to_int(records.lon, 1e7, n, "lon").tolist(),
        _to_int(records.lat, 1e7, n, "lat").tolist(), *(
            _to_int(getattr(records, c), 1, n, c).tolist()
            for c in ("altitude_m", "heading_deg", "satellites", "speed_kmh", "event_io")
        ),
    )
    ids = sorted(records.io)
    parts = [bytes((codec, n))]
    try:
        for row, (*avl, event) in enumerate(gps):
            groups: dict[int, list[tuple[int, int]]] = {w: [] for w in _WIDTHS}
            for io_id in ids:
                value = float(records.io[io_id][row])
                if value != value:
                    continue
                if not value.is_integer():
                    raise ValueError(f"io[{io_id}] = {value} is not an integer")
                groups[records.io_size.get(io_id, 8)].append((io_id, int(value)))
            nx = [(k, v[row]) for k, v in sorted(records.io_bytes.items()) if v[row] is not None]
            parts.append(_AVL.pack(*avl))
            parts.append(head.pack(event, sum(map(len, groups.values())) + len(nx)))
            for width, pair in pairs:
                parts.append(count.pack(len(groups[width])))
                parts.extend(pair.pack(io_id, value) for io_id, value in groups[width])
            if has_nx:
                parts.append(count.pack(len(nx)))
                for io_id, blob in nx:
                    parts.append(_NX.pack(io_id, len(blob)) + blob)
    except (struct.error, KeyError, IndexError) as exc:
        raise ValueError(f"a value does not fit its Codec {codec:#x} field: {exc}") from exc
    parts.append(bytes((n,)))
    field = b"".join(parts)
    return _HEADER.pack(0, len(field)) + field + _U32.pack(crc16_ibm(field))
