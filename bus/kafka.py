"""Kafka bus on aiokafka: fix batches partitioned by device, consumed by groups with explicit commits.

One published :class:`~vigil.batch.FixBatch` becomes at most ``partitions`` records, one per partition
that has rows, each carrying the rows of the devices mapped there by :func:`bus.base.partition_of`.
A device therefore always lands in the same partition, which is what keeps its fixes in order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ConsumerStoppedError,
    KafkaError,
    TopicAlreadyExistsError,
    UnknownError,
    UnsupportedVersionError,
    for_code,
)

from bus.base import CODECS, Delivery, partition_of
from vigil.batch import FixBatch
from vigil.errors import BusError, ConfigError

log = logging.getLogger(__name__)


class _Offsets:
    """Commit bookkeeping of one consumer, per partition: what was yielded, committed and skipped."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.yielded: dict[TopicPartition, int] = {}    # offset of the last record handed out
        self.committed: dict[TopicPartition, int] = {}  # next offset, as last committed by us
        self.skip_to: dict[TopicPartition, int] = {}    # past undecodable records after ``yielded``

    async def commit(self, tp: TopicPartition, offset: int) -> None:
        """Commit ``offset + 1`` on ``tp``, never moving the group's position backwards."""
        target = offset + 1
        if offset == self.yielded.get(tp):
            # Only undecodable records follow this one, so the commit may step over them too.
            target = max(target, self.skip_to.get(tp, target))
        if target <= self.committed.get(tp, -1):
            return
        try:
            await self.consumer.commit({tp: target})
        except KafkaError as exc:
            raise BusError(f"commit of {tp.topic}[{tp.partition}]@{target} failed: {exc!r}") from exc
        self.committed[tp] = max(target, self.committed.get(tp, -1))

    async def skip(self, tp: TopicPartition, offset: int) -> None:
        """Step past an undecodable record without committing yielded but uncommitted ones."""
        last = self.yielded.get(tp)
        if last is None or self.committed.get(tp, -1) > last:
            await self.commit(tp, offset)
        else:
            # Committing now would also mark the earlier, still unprocessed deliveries done; let the
            # commit of the last delivery carry the group past this record instead.
            self.skip_to[tp] = offset + 1


class KafkaBus:
    """The :class:`bus.base.Bus` protocol on a Kafka-protocol broker.

    Topic ``t`` is the Kafka topic ``topic_prefix + t``, created on first use with ``partitions``
    partitions and ``replication_factor`` replicas; consumer group ``g`` is the Kafka group
    ``topic_prefix + g``, so deployments sharing a cluster stay apart. ``publish`` returns only once every record is
    acknowledged by all in-sync replicas (``acks="all"``). Consumers start a new group at the earliest
    offset and commit only when a delivery's ``commit()`` is awaited: delivery is at least once.
    Each record must fit the producer's ``max_request_size`` (1 MiB, about 13,000 rows of 77 bytes).

    Tansu 0.6 quirks, harmless for correctness: it answers a JoinGroup after about half the session
    timeout, and a group's first generation is 0, for which aiokafka skips LeaveGroup on stop, so the
    next member of that group waits one session timeout for the departed one to expire.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        topic_prefix: str = "vigil.",
        partitions: int = 4,
        replication_factor: int = 1,  # 1: works on a single broker; use 3 on a production cluster
        session_timeout_ms: int = 10_000,  # Kafka's default; a silent consumer loses its partitions then
    ) -> None:
        if partitions < 1:
            raise ConfigError(f"partitions must be >= 1, got {partitions}")
        self._bootstrap = bootstrap
        self._prefix = topic_prefix
        self._partitions = partitions
        self._replication = replication_factor
        self._session_ms = session_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._consumers: set[AIOKafkaConsumer] = set()
        self._topics: set[str] = set()
        self._topic_lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect the producer and the admin client; raise :class:`BusError` if the broker is unreachable."""
        try:
            self._producer = await self._start_producer()
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
            await self._admin.start()
        except KafkaError as exc:
            await self.stop()
            raise BusError(f"cannot connect to Kafka at {self._bootstrap}: {exc!r}") from exc

    async def _start_producer(self) -> AIOKafkaProducer:
        try:
            return await _started(
                AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True)
            )
        except (UnknownError, UnsupportedVersionError) as exc:
            # Idempotence keeps a retried send from writing a batch twice, but it needs InitProducerId:
            # Tansu 0.6 answers it with UNKNOWN_SERVER_ERROR for non-transactional producers, and very
            # old brokers lack it. Without it a retry may duplicate a record, which consumers already
            # tolerate since delivery is at least once.
            log.warning("broker refused an idempotent producer (%r); producing without idempotence", exc)
        return await _started(AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all"))

    async def stop(self) -> None:
        """Stop consumers, then the producer (flushing pending sends), then the admin client. Idempotent."""
        consumers, self._consumers = self._consumers, set()
        for consumer in consumers:
            await consumer.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    def subscribe(self, topic: str, group: str) -> None:
        """No-op: the broker keeps batches for a group that has not read yet, from the earliest offset."""

    async def _ensure_topic(self, topic: str) -> str:
        """Kafka name of ``topic``, created on first use; an existing topic needs enough partitions."""
        name = self._prefix + topic
        if name in self._topics:
            return name
        if self._admin is None or self._producer is None:
            raise BusError("bus is not started")
        async with self._topic_lock:
            if name in self._topics:
                return name
            try:
                response = await self._admin.create_topics(
                    [NewTopic(name, self._partitions, self._replication)]
                )
                for _, code, message in response.topic_errors:
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise for_code(code)(message)
                found = await self._producer.partitions_for(name)
            except KafkaError as exc:
                raise BusError(f"cannot create topic {name}: {exc!r}") from exc
            # Rows go to explicit partitions 0..partitions-1; fewer would fail sends, and silently
            # re-mapping devices would break their order.
            if len(found) < self._partitions:
                raise BusError(f"topic {name} has {len(found)} partitions, bus needs {self._partitions}")
            self._topics.add(name)
        return name

    async def enqueue(self, topic: str, batch: FixBatch) -> asyncio.Future[None]:
        """Hand ``batch`` to the producer as one record per non-empty partition, in order, and return a
        future that resolves when all records are acknowledged (``acks="all"``).

        On :class:`BusError` some records may already be written, so a retry can duplicate rows.
        """
        if self._producer is None:
            raise BusError("bus is not started")
        name = await self._ensure_topic(topic) if len(batch) else ""
        parts = batch.split(partition_of(batch.device, self._partitions), self._partitions) if len(batch) else []
        try:
            sends = [
                await self._producer.send(name, part.to_bytes(), key=str(p).encode(), partition=p)
                for p, part in enumerate(parts)
                if len(part)
            ]
        except KafkaError as exc:
            raise BusError(f"publish to {name} failed: {exc!r}") from exc
        return asyncio.ensure_future(_acknowledged(name, sends))

    async def publish(self, topic: str, batch: FixBatch) -> None:
        """Send ``batch``; return when every record is acknowledged."""
        await (await self.enqueue(topic, batch))

    async def consume(self, topic: str, group: str) -> AsyncIterator[Delivery]:
        """Deliveries of ``topic`` for consumer ``group``, in partition order; ends on ``stop()`` or close.

        ``commit()`` of a delivery commits its offset + 1 (so everything before it in its partition).
        A record that is not a fix batch is logged and stepped over, never handed out.
        """
        name = await self._ensure_topic(topic)
        codec = CODECS.get(topic, FixBatch)
        consumer = AIOKafkaConsumer(
            name,
            bootstrap_servers=self._bootstrap,
            group_id=self._prefix + group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._session_ms,
            heartbeat_interval_ms=self._session_ms // 3,  # Kafka's advice: at most a third of the session
        )
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise BusError(f"cannot consume {name} as {group}: {exc!r}") from exc
        self._consumers.add(consumer)
        offsets = _Offsets(consumer)
        try:
            while True:
                try:
                    record = await consumer.getone()
                except ConsumerStoppedError:
                    return
                except KafkaError as exc:
                    raise BusError(f"consume of {name} as {group} failed: {exc!r}") from exc
                tp = TopicPartition(record.topic, record.partition)
                try:
                    batch = codec.from_bytes(record.value)
                except (BusError, TypeError, ValueError) as exc:
                    # One bad record must not stop the stream (nor be redelivered forever).
                    log.error("skipping undecodable record %s[%d]@%d: %s",
                              record.topic, record.partition, record.offset, exc)
                    try:
                        await offsets.skip(tp, record.offset)
                    except BusError as commit_exc:
                        # Typically a rebalance: the record comes back to whoever owns the partition
                        # next and is skipped there, so this consumer carries on.
                        log.warning("could not commit past %s[%d]@%d: %s",
                                    record.topic, record.partition, record.offset, commit_exc)
                    continue
                offsets.yielded[tp] = record.offset
                yield Delivery(batch=batch, commit=_committer(offsets, tp, record.offset))
        finally:
            self._consumers.discard(consumer)
            await consumer.stop()


async def _started(producer: AIOKafkaProducer) -> AIOKafkaProducer:
    """``producer``, started; stopped again if it could not start, so no connection leaks."""
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


def _committer(offsets: _Offsets, tp: TopicPartition, offset: int) -> Callable[[], Awaitable[None]]:
    async def commit() -> None:
        await offsets.commit(tp, offset)

    return commit


async def _acknowledged(name: str, sends: list[asyncio.Future]) -> None:
    try:
        await asyncio.gather(*sends)
    except KafkaError as exc:
        raise BusError(f"publish to {name} failed: {exc!r}") from exc
