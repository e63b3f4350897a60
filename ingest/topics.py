"""The MQTT topics the gateway reads: ``vigil/v1/{kind}/{device_id}/{stream}`` and OwnTracks'
``owntracks/{user}/{device}``. Which decoder handles which stream is in :mod:`ingest.protocols`."""

from __future__ import annotations

SUBSCRIPTIONS = ("vigil/v1/+/+/+", "owntracks/+/+")
MAX_DEVICE_ID_LEN = 64


def subscriptions(share_group: str | None, topics: tuple[str, ...] | None = None) -> list[str]:
    """Topic filters to subscribe (``topics``, default every device topic); shared ones
    (``$share/{group}/…``) let several gateways split the load."""
    return [f"$share/{share_group}/{t}" if share_group else t for t in (topics or SUBSCRIPTIONS)]
