"""The MQTT topic scheme ``vigil/v1/{kind}/{device_id}/{stream}``."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.errors import RejectedInput

SUBSCRIPTION = "vigil/v1/+/+/+"
KINDS = ("car", "home", "pet")
#: Streams each device kind may publish; others are refused as ``unknown_topic``.
STREAMS = {"car": ("fix",), "home": (), "pet": ()}
MAX_DEVICE_ID_LEN = 64


@dataclass(frozen=True, slots=True)
class Topic:
    kind: str
    device_id: str
    stream: str


def parse(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "vigil" or parts[1] != "v1":
        raise RejectedInput("unknown_topic", f"expected vigil/v1/{{kind}}/{{device_id}}/{{stream}}, got {topic!r}")
    _, _, kind, device_id, stream = parts
    if kind not in KINDS:
        raise RejectedInput("unknown_topic", f"unknown device kind {kind!r}")
    if not device_id or len(device_id) > MAX_DEVICE_ID_LEN:
        raise RejectedInput("unknown_topic", "device id must be 1-64 characters")
    if stream not in STREAMS[kind]:
        raise RejectedInput("unknown_topic", f"stream {stream!r} is not accepted for {kind}")
    return Topic(kind, device_id, stream)


def fix_topic(kind: str, device_id: str) -> str:
    return f"vigil/v1/{kind}/{device_id}/fix"
