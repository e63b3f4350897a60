"""The MQTT topics the gateway reads: ``vigil/v1/{kind}/{device_id}/{stream}`` and OwnTracks'
``owntracks/{user}/{device}``. Which decoder handles which stream is in :mod:`ingest.protocols`."""

from __future__ import annotations

SUBSCRIPTIONS = ("vigil/v1/+/+/+", "owntracks/+/+")
#: Share name of MQTT 5 / Mosquitto shared subscriptions: gateways in one group split the messages.
SHARE_GROUP = "vigil"
MAX_DEVICE_ID_LEN = 64


def subscriptions(shared: bool) -> list[str]:
    """Topic filters to subscribe; shared ones (``$share/vigil/…``) let several gateways split the load."""
    return [f"$share/{SHARE_GROUP}/{t}" if shared else t for t in SUBSCRIPTIONS]
