"""KafkaBus against a real Kafka-protocol broker (Tansu, in-memory storage)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from bus.base import partition_of
from bus.kafka import KafkaBus
from tests.kafka_service import tansu_broker
from vigil.batch import FixBatch
from vigil.errors import BusError

PREFIX = "vigil.test."
PARTITIONS = 4
TIMEOUT_S = 30.0
# Tansu answers a JoinGroup after about half the session timeout and a consumer that left a group's
# first generation blocks the next one for a whole session: a short session keeps the module quick.
SESSION_MS = 3000
T0 = 1_700_000_000_000  # UTC ms


@pytest.fixture(scope="module")
def broker():
    with tansu_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
async def bus(broker):
    bus = KafkaBus(broker, topic_prefix=PREFIX, partitions=PARTITIONS, session_timeout_ms=SESSION_MS)
    await asyncio.wait_for(bus.start(), TIMEOUT_S)
    try:
        yield bus
    finally:
        await asyncio.wait_for(bus.stop(), TIMEOUT_S)


def topic() -> str:
    return f"fixes-{uuid.uuid4().hex[:12]}"


def group() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


def make_batch(device, ts_ms, seq: int = -1) -> FixBatch:
    """Rows for ``device``/``ts_ms`` with every column filled; ``seq`` tags the batch."""
    device = np.asarray(device, dtype=np.int64)
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    n = len(device)
    return FixBatch(
        device=device,
        ts_ms=ts_ms,
        lat=45.0 + device * 1e-3,
        lon=7.0 + (ts_ms - T0) * 1e-9,
        speed_kmh=np.full(n, 50.0),
        heading_deg=np.full(n, 90.0),
        accuracy_m=np.full(n, 5.0),
        ignition=np.ones(n, dtype=np.int8),
        accel_x=np.full(n, np.nan),
        accel_y=np.zeros(n),
        accel_z=np.ones(n),
        seq=np.full(n, seq),
        received_ms=ts_ms + 250,
    )


def fleet_batches(devices: int, batches: int, rows_per_device: int) -> list[FixBatch]:
    """``batches`` batches, each holding ``rows_per_device`` fixes per device, ts increasing over all."""
    out = []
    for b in range(batches):
        dev = np.repeat(np.arange(devices), rows_per_device)
        step = np.tile(np.arange(rows_per_device), devices) + b * rows_per_device
        out.append(make_batch(dev, T0 + step * 1000 + dev, seq=b))
    return out


async def collect(
    bus: KafkaBus, topic: str, group: str, rows: int, *, commit: bool = False
) -> list[FixBatch]:
    """Consume until ``rows`` rows arrived (bounded by TIMEOUT_S), then close the consumer."""

    async def run() -> list[FixBatch]:
        got, n = [], 0
        async with contextlib.aclosing(bus.consume(topic, group)) as stream:
            async for delivery in stream:
                got.append(delivery.batch)
                n += len(delivery.batch)
                if commit:
                    await delivery.commit()
                if n >= rows:
                    return got
        return got

    return await asyncio.wait_for(run(), TIMEOUT_S)


def rows_of(batches: list[FixBatch]) -> list[tuple[int, int]]:
    merged = FixBatch.concat(batches)
    return list(zip(merged.device.tolist(), merged.ts_ms.tolist()))


def per_device(rows: list[tuple[int, int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for device, ts in rows:
        out.setdefault(device, []).append(ts)
    return out


async def test_group_receives_every_row_in_device_order(bus):
    t, published = topic(), fleet_batches(devices=50, batches=6, rows_per_device=3)
    for batch in published:
        await asyncio.wait_for(bus.publish(t, batch), TIMEOUT_S)
    sent = rows_of(published)

    got = rows_of(await collect(bus, t, group(), len(sent)))

    assert len(got) == len(sent) == 50 * 6 * 3
    assert set(got) == set(sent)
    assert per_device(got) == per_device(sent)


async def test_each_record_holds_one_partition(bus):
    t = topic()
    await bus.publish(t, fleet_batches(devices=50, batches=1, rows_per_device=1)[0])
    received = await collect(bus, t, group(), 50)
    assert len(received) == PARTITIONS
    for batch in received:
        assert len(np.unique(partition_of(batch.device, PARTITIONS))) == 1


async def test_every_group_receives_everything(bus):
    t, published = topic(), fleet_batches(devices=50, batches=4, rows_per_device=2)
    for batch in published:
        await bus.publish(t, batch)
    sent = rows_of(published)

    first, second = await asyncio.gather(
        collect(bus, t, group(), len(sent)), collect(bus, t, group(), len(sent))
    )

    for got in (rows_of(first), rows_of(second)):
        assert len(got) == len(sent)
        assert set(got) == set(sent)
        assert per_device(got) == per_device(sent)


# Devices 0, 4, 8 all map to partition 0: every batch is one record in one partition, so offsets and
# the order of arrival are known.
ONE_LANE = [0, PARTITIONS, 2 * PARTITIONS]


async def test_commit_resumes_after_committed_and_redelivers_the_rest(bus):
    t, g = topic(), group()
    for seq in range(6):
        await bus.publish(t, make_batch(ONE_LANE, [T0 + seq] * 3, seq=seq))

    async def first_consumer() -> list[int]:
        seen = []
        async with contextlib.aclosing(bus.consume(t, g)) as stream:
            deliveries = []
            async for delivery in stream:
                deliveries.append(delivery)
                seen.append(int(delivery.batch.seq[0]))
                if len(deliveries) == 4:
                    break
            # Commit out of order: committing an earlier delivery must not move the group back.
            await deliveries[1].commit()
            await deliveries[0].commit()
        return seen

    assert await asyncio.wait_for(first_consumer(), TIMEOUT_S) == [0, 1, 2, 3]

    resumed = await collect(bus, t, g, rows=4 * 3, commit=True)
    assert [int(b.seq[0]) for b in resumed] == [2, 3, 4, 5]

    await bus.publish(t, make_batch(ONE_LANE, [T0 + 6] * 3, seq=6))
    after_commit = await collect(bus, t, g, rows=3)
    assert [int(b.seq[0]) for b in after_commit] == [6]


async def produce_garbage(bootstrap: str, name: str, values: list[bytes]) -> None:
    raw = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await asyncio.wait_for(raw.start(), TIMEOUT_S)
    try:
        for value in values:
            await asyncio.wait_for(raw.send_and_wait(name, value, partition=0), TIMEOUT_S)
    finally:
        await raw.stop()


async def test_undecodable_record_is_skipped_and_stream_continues(bus, broker, caplog):
    t, g = topic(), group()
    await bus.publish(t, make_batch(ONE_LANE, [T0] * 3, seq=0))
    await produce_garbage(broker, PREFIX + t, [b"not a fix batch", b"VFB1\x05\x00\x00\x00short"])
    await bus.publish(t, make_batch(ONE_LANE, [T0 + 1] * 3, seq=1))

    with caplog.at_level(logging.ERROR, logger="bus.kafka"):
        got = await collect(bus, t, g, rows=6, commit=True)

    assert [int(b.seq[0]) for b in got] == [0, 1]
    assert garbage_logged(caplog) == 2

    await bus.publish(t, make_batch(ONE_LANE, [T0 + 2] * 3, seq=2))
    later = await collect(bus, t, g, rows=3, commit=True)
    assert [int(b.seq[0]) for b in later] == [2]


def garbage_logged(caplog) -> int:
    return sum("undecodable" in r.getMessage() for r in caplog.records)


async def test_skipping_garbage_does_not_commit_unprocessed_deliveries(bus, broker, caplog):
    t, g = topic(), group()
    await bus.publish(t, make_batch(ONE_LANE, [T0] * 3, seq=0))
    await produce_garbage(broker, PREFIX + t, [b"garbage"])

    async def read_past_garbage(commit_after: bool) -> int:
        """Take batch 0, let the consumer read the garbage behind it, maybe commit batch 0 then."""
        logged = garbage_logged(caplog)
        async with contextlib.aclosing(bus.consume(t, g)) as stream:
            first = await anext(stream)
            pending = asyncio.ensure_future(anext(stream))
            while garbage_logged(caplog) == logged:
                await asyncio.sleep(0.05)
            if commit_after:
                await first.commit()
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        return int(first.batch.seq[0])

    with caplog.at_level(logging.ERROR, logger="bus.kafka"):
        # Batch 0 was not committed when the garbage was skipped: it must come back.
        assert await asyncio.wait_for(read_past_garbage(commit_after=False), TIMEOUT_S) == 0
        # Committing batch 0 after the garbage was read carries the group past the garbage too.
        assert await asyncio.wait_for(read_past_garbage(commit_after=True), TIMEOUT_S) == 0
        logged = garbage_logged(caplog)

        await bus.publish(t, make_batch(ONE_LANE, [T0 + 1] * 3, seq=1))
        later = await collect(bus, t, g, rows=3)

    assert [int(b.seq[0]) for b in later] == [1]
    assert garbage_logged(caplog) == logged


async def test_stop_ends_a_running_consumer(bus):
    t = topic()
    await bus.publish(t, make_batch(ONE_LANE, [T0] * 3, seq=0))
    received = []

    async def run() -> None:
        async for delivery in bus.consume(t, group()):
            received.append(delivery)

    async def first_delivery() -> None:
        while not received:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)

    task = asyncio.ensure_future(run())
    await asyncio.wait_for(first_delivery(), TIMEOUT_S)
    await asyncio.wait_for(bus.stop(), TIMEOUT_S)
    await asyncio.wait_for(task, TIMEOUT_S)
    assert len(received) == 1


async def test_publish_before_start_is_a_bus_error(broker):
    bus = KafkaBus(broker, topic_prefix=PREFIX)
    with pytest.raises(BusError):
        await bus.publish(topic(), make_batch([1], [T0]))
