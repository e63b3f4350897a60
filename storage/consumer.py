"""The storage writer service: consumes fix batches from the bus and stores them with binary COPY."""

from __future__ import annotations

import asyncio
import logging

from bus.base import EVENTS, FIXES, Bus
from storage import events
from storage.db import Database
from storage.fixes import FixWriter
from vigil.metrics import Metrics
from vigil.retry import retry_forever

log = logging.getLogger(__name__)

GROUP = "storage"


class StorageConsumer:
    """At-least-once: a batch is committed on the bus only after its transaction commits; a
    redelivered batch inserts nothing twice thanks to the (device, ts) key."""

    def __init__(self, *, db: Database, bus: Bus, metrics: Metrics) -> None:
        self.db = db
        self.writer = FixWriter(db)
        self.bus = bus
        self.metrics = metrics
        metrics.describe("vigil_storage_fixes_total", "", "fixes written to the fixes table")
        metrics.describe("vigil_storage_events_total", "", "device events written")
        metrics.describe("vigil_storage_duplicates_total", "", "redelivered fixes skipped by the writer")

    async def run(self) -> None:
        await asyncio.gather(self._fixes(), self._events())

    async def _events(self) -> None:
        async for delivery in self.bus.consume(EVENTS, GROUP):
            inserted = await retry_forever(
                events.write_events, self.db, delivery.batch, what=f"storing {len(delivery.batch)} events", log=log
            )
            await delivery.commit()
            self.metrics.inc("vigil_storage_events_total", by=inserted)

    async def _fixes(self) -> None:
        async for delivery in self.bus.consume(FIXES, GROUP):
            inserted = await retry_forever(
                self.writer.write, delivery.batch, what=f"storing {len(delivery.batch)} fixes", log=log
            )
            await delivery.commit()
            self.metrics.inc("vigil_storage_fixes_total", by=inserted)
            self.metrics.inc("vigil_storage_duplicates_total", by=len(delivery.batch) - inserted)
