"""Decoder of the Vigil v1 JSON car payload (``vigil/v1/car/{device_id}/fix``), see docs/protocol.md.

A message is decoded with a typed msgspec schema in one pass. If the schema fails, each fix is
decoded on its own so one bad fix does not cost the good ones.
"""

from __future__ import annotations

import msgspec

from ingest.jsonmsg import FixMessage, FixMessageDecoder, Int64


# gc=False: a fix holds only scalars, so the cycle collector need not track the millions decoded per
# minute (it doubled decode time in the ingest benchmark).
class Fix(msgspec.Struct, frozen=True, gc=False):
    ts: Int64
    lat: float
    lon: float
    speed_kmh: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None
    ignition: bool | None = None
    accel_g: tuple[float, float, float] | None = None


_decoder = FixMessageDecoder(Fix)
#: The decoded message: seq, device, fixes, their positions in the message and the refused ones.
Decoded = FixMessage


def decode(payload: bytes) -> FixMessage[Fix]:
    """Decode one message; raises :class:`RejectedInput` when nothing in it is usable."""
    return _decoder.decode(payload)
