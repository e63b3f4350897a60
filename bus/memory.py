"""In-process bus: the embedded default. Real code, used by ``vigil up`` and tested like the rest."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import AsyncIterator

from bus.base import Delivery
from vigil.batch import FixBatch
from vigil.errors import BusError


async def _noop() -> None:
    return None


class MemoryBus:
    """Fan-out to one bounded queue per (topic, group); a full queue makes ``publish`` wait.

    A group must start consuming before batches are published to reach it, as a Kafka consumer
    group created with ``auto_offset_reset=latest`` would.
    """

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._groups: dict[str, dict[str, asyncio.Queue[FixBatch | None]]] = defaultdict(dict)
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        for groups in self._groups.values():
            for queue in groups.values():
                queue.put_nowait(None) if not queue.full() else None

    def subscribe(self, topic: str, group: str) -> None:
        """Register ``group`` now, so batches published before its first read are kept for it."""
        self._groups[topic].setdefault(group, asyncio.Queue(self._queue_size))

    async def publish(self, topic: str, batch: FixBatch) -> None:
        if not self._running:
            raise BusError("bus is not started")
        if len(batch) == 0:
            return
        for queue in self._groups[topic].values():
            await queue.put(batch)

    async def consume(self, topic: str, group: str) -> AsyncIterator[Delivery]:
        self.subscribe(topic, group)
        queue = self._groups[topic][group]
        while True:
            batch = await queue.get()
            if batch is None:
                return
            yield Delivery(batch=batch, commit=_noop)

    def pending(self, topic: str, group: str) -> int:
        """Batches waiting for ``group``: lets callers wait until a pipeline has drained."""
        queue = self._groups.get(topic, {}).get(group)
        return 0 if queue is None else queue.qsize()
