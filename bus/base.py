"""The bus contract shared by the in-process and Kafka implementations."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Protocol

import numpy as np

from vigil.batch import FixBatch
from vigil.events import EventBatch

#: Topic of validated fix batches, published by the gateway, consumed by storage and processors.
FIXES = "fixes"
#: Topic of device events (home-kit sensors, pet SOS, heartbeats).
EVENTS = "events"
#: The batch type each topic carries, for transports that move bytes.
CODECS = {FIXES: FixBatch, EVENTS: EventBatch}


@dataclass(slots=True)
class Delivery:
    """One consumed batch. ``commit()`` marks it (and everything before it in its partition) done."""

    batch: FixBatch
    commit: Callable[[], Awaitable[None]]


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, topic: str, group: str) -> None:
        """Make sure ``group`` receives batches published from now on, before it starts reading."""

    async def enqueue(self, topic: str, batch: FixBatch) -> "asyncio.Future[None]":
        """Queue the batch behind earlier ones and return at once with a future that resolves when
        the batch is durable (Kafka: acknowledged by all in-sync replicas; in-process: stored)."""

    async def publish(self, topic: str, batch: FixBatch) -> None:
        """``enqueue`` and wait until the batch is durable."""

    def consume(self, topic: str, group: str) -> AsyncIterator[Delivery]:
        """Deliveries for consumer ``group``; every group sees every batch, per-device order holds."""


def partition_of(device: np.ndarray, partitions: int) -> np.ndarray:
    """Partition of each row: a pure function of the device code, so one device never changes lane."""
    return (np.asarray(device, dtype=np.int64) % partitions).astype(np.int64)
