"""Channel senders: app push, SMS, e-mail and the assistance centre's supervisor line.

A sender raises on failure; the dispatcher retries. ``notice.dedup_key`` is the idempotency key to pass
to a provider that accepts one, so a notice resent after a crash mid-send is dropped by the provider.
"""

from __future__ import annotations

import logging
from typing import Protocol

from notify.outbox import Notice

CHANNELS = ("push", "sms", "email", "supervisor")
log = logging.getLogger("vigil.notify")


class Sender(Protocol):
    async def send(self, notice: Notice) -> None: ...


class LoggingSender:
    """The default channel: the notice goes to the log (no provider is configured)."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    async def send(self, notice: Notice) -> None:
        log.info("[%s → %s] %s: %s (%s)", self.channel, notice.recipient, notice.subject, notice.body,
                 notice.dedup_key)
