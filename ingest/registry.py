"""Cached device look-ups for the gateway: one query per batch for the ids it has not seen."""

from __future__ import annotations

import asyncio
import logging
import time

from storage import devices
from storage.db import Database
from storage.devices import Device

log = logging.getLogger(__name__)


class DeviceRegistry:
    """Known devices are cached for ``ttl_s`` (status changes take effect within it); unknown ids are
    remembered for ``negative_ttl_s`` so a flood from an unprovisioned device costs no queries."""

    def __init__(self, db: Database, *, ttl_s: float = 30.0, negative_ttl_s: float = 5.0, clock=time.monotonic):
        self.db = db
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._clock = clock
        self._known: dict[str, tuple[Device, float]] = {}
        self._unknown: dict[str, float] = {}

    async def resolve(self, device_ids: set[str]) -> dict[str, Device]:
        now = self._clock()
        found: dict[str, Device] = {}
        missing = []
        for ident in device_ids:
            hit = self._known.get(ident)
            if hit and hit[1] > now:
                found[ident] = hit[0]
            elif self._unknown.get(ident, 0.0) <= now:
                missing.append(ident)
        if missing:
            fresh = await devices.lookup(self.db, missing)
            for ident in missing:
                if ident in fresh:
                    self._known[ident] = (fresh[ident], now + self.ttl_s)
                    found[ident] = fresh[ident]
                else:
                    self._unknown[ident] = now + self.negative_ttl_s
        return found

    async def warm(self, kinds: tuple[str, ...]) -> int:
        """Cache every device of ``kinds`` now (one query); returns how many."""
        now = self._clock()
        fresh = await devices.of_kinds(self.db, kinds)
        for ident, device in fresh.items():
            self._known[ident] = (device, now + self.ttl_s)
            self._unknown.pop(ident, None)
        return len(fresh)

    async def keep_warm(self, kinds: tuple[str, ...], every_s: float) -> None:
        """Until cancelled: :meth:`warm` every ``every_s`` (less than ``ttl_s``), so a known device's message
        never waits for a look-up (the alarm lane's latency); status changes show within ``every_s``."""
        while True:
            try:
                await self.warm(kinds)
            except Exception:  # a DB blip: the cache still holds, and a miss still looks the device up
                log.exception("refreshing the device cache failed")
            await asyncio.sleep(every_s)
