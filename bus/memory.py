"""In-process bus: the embedded default. Real code, used by ``vigil up`` and tested like the rest."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import AsyncIterator

from bus.base import Delivery
from vigil.batch import FixBatch
from vigil.errors import BusError

#: Consumer groups whose commit makes a batch durable: the storage writer's.
DURABLE_GROUPS = ("storage",)

_Item = tuple[FixBatch, "asyncio.Future[None] | None"]


class MemoryBus:
    """Fan-out to one bounded queue per (topic, group); a full queue makes ``publish`` wait.

    A batch is durable once every subscribed group named in ``durable_groups`` has committed it
    (with the default, once the storage writer's transaction has committed) — the in-process
    counterpart of Kafka's ``acks=all``. A group must subscribe before batches are published to
    reach it, as a Kafka consumer group created with ``auto_offset_reset=latest`` would.
    """

    def __init__(self, queue_size: int = 256, durable_groups: tuple[str, ...] = DURABLE_GROUPS) -> None:
        self._queue_size = queue_size
        self._durable = frozenset(durable_groups)
        self._groups: dict[str, dict[str, asyncio.Queue[_Item | None]]] = defaultdict(dict)
        self._pending: set[asyncio.Future[None]] = set()
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        for groups in self._groups.values():
            for queue in groups.values():
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)
        for future in self._pending:
            if not future.done():
                future.set_exception(BusError("bus stopped before the batch was durable"))
        self._pending.clear()

    def subscribe(self, topic: str, group: str) -> None:
        """Register ``group`` now, so batches published before its first read are kept for it."""
        self._groups[topic].setdefault(group, asyncio.Queue(self._queue_size))

    async def enqueue(self, topic: str, batch: FixBatch) -> asyncio.Future[None]:
        """Queue ``batch`` in order; the returned future resolves once it is durable."""
        if not self._running:
            raise BusError("bus is not started")
        loop = asyncio.get_running_loop()
        futures = []
        if len(batch):
            for group, queue in self._groups[topic].items():
                future = loop.create_future() if group in self._durable else None
                if future is not None:
                    futures.append(future)
                    self._pending.add(future)
                    future.add_done_callback(self._pending.discard)
                await queue.put((batch, future))
        return asyncio.ensure_future(asyncio.gather(*futures)) if futures else _done(loop)

    async def publish(self, topic: str, batch: FixBatch) -> None:
        await (await self.enqueue(topic, batch))

    async def consume(self, topic: str, group: str) -> AsyncIterator[Delivery]:
        self.subscribe(topic, group)
        queue = self._groups[topic][group]
        while True:
            item = await queue.get()
            if item is None:
                return
            batch, future = item
            yield Delivery(batch=batch, commit=_committer(future))

    def pending(self, topic: str, group: str) -> int:
        """Batches waiting for ``group``: lets callers wait until a pipeline has drained."""
        queue = self._groups.get(topic, {}).get(group)
        return 0 if queue is None else queue.qsize()


def _done(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    future = loop.create_future()
    future.set_result(None)
    return future


def _committer(future: asyncio.Future[None] | None):
    async def commit() -> None:
        if future is not None and not future.done():
            future.set_result(None)

    return commit
