"""The MQTT gateway: subscribe, queue (bounded), batch, assemble, publish to the bus, dead-letter.

The stages are: receive → bounded queue → batch (by count or delay) → assemble (decode + validate,
pure) → enqueue fixes on the bus and store dead letters → acknowledge to the broker once durable.

Delivery: the subscription is QoS 1 on a persistent session (fixed client id, clean session off), and
a message's PUBACK is sent only after its fixes are durable (stored, or acknowledged by Kafka) and its
dead letters are stored. A crash before that makes the broker deliver it again; storage ignores the
duplicate. The broker's in-flight window bounds how many unacknowledged messages the gateway holds,
which is the back-pressure: when storage slows down, acknowledgements slow down, and so does intake.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

import aiomqtt

from bus.base import EVENTS, FIXES, Bus
from ingest import assemble as stage
from ingest.registry import DeviceRegistry
from ingest.late import LATE_AFTER_MS, flag_late
from ingest.topics import subscriptions
from storage import deadletters
from storage.db import Database
from vigil.metrics import Metrics
from vigil.retry import retry_forever
from vigil.settings import Settings, parse_mqtt_url

log = logging.getLogger(__name__)

#: Topic endings of streams that may carry an alarm: a batch holding one closes without waiting to fill.
URGENT_STREAMS = ("/event", "/sos")

#: Batches whose durability is awaited at once; more would only grow memory, fewer would idle.
MAX_UNACKED_BATCHES = 8


class Gateway:
    def __init__(
        self, *, settings: Settings, mqtt_url: str, db: Database, bus: Bus, metrics: Metrics, clock=time.time,
        username: str | None = None, password: str | None = None, topics: tuple[str, ...] | None = None,
        store_rejects: bool = True,
    ) -> None:
        # ``topics`` (default: every device topic) and ``store_rejects`` let a second gateway serve as the
        # alarm lane: it reads only alarm-bearing topics, which the main gateway also reads and rejects.
        self._topics = topics
        self._store_rejects = store_rejects
        self._username = username
        self._password = password
        self.settings = settings
        self.mqtt_url = mqtt_url
        self.db = db
        self.bus = bus
        self.metrics = metrics
        self.registry = DeviceRegistry(db)
        self._clock = clock
        # Bounded by the broker: it sends no more than its in-flight window of unacknowledged messages.
        self._inbox: collections.deque[stage.RawMessage] = collections.deque()
        self._wake = asyncio.Event()
        self._unacked = asyncio.Semaphore(MAX_UNACKED_BATCHES)
        self._awaiting = 0
        self._acks: set[asyncio.Task] = set()
        self._last_ack: asyncio.Task | None = None
        self._connection = 0
        self._client: aiomqtt.Client | None = None
        self._lost = asyncio.Event()
        self._high_water: dict[int, int] = {}  # device → newest fix time seen, for the late flag
        self.subscribed = asyncio.Event()
        #: Set by the runtime before it shuts the gateway down, so the disconnect is not reported as lost.
        self.stopping = False
        metrics.describe("vigil_ingest_messages_total", "", "MQTT messages received by the gateway")
        metrics.describe("vigil_ingest_fixes_total", "", "fixes accepted and published to the bus")
        metrics.describe("vigil_ingest_events_total", "", "device events accepted and published to the bus")
        metrics.describe("vigil_ingest_late_fixes_total", "", "accepted fixes flagged late (out of order or buffered)")
        metrics.describe("vigil_ingest_rejected_total", "reason", "dead-lettered messages by reason")
        metrics.describe("vigil_ingest_acked_total", "", "messages acknowledged to the broker")
        metrics.describe("vigil_ingest_queue_depth", "", "messages received, not yet batched", gauge=True)
        metrics.describe("vigil_ingest_unacked_batches", "", "batches awaiting durability", gauge=True)

    async def run(self) -> None:
        """Run until cancelled: reconnects to the broker with back-off, never stops on bad input."""
        worker = asyncio.create_task(self._process_forever(), name="gateway-process")
        try:
            await self._receive_forever()
        finally:
            worker.cancel()
            for task in (worker, *self._acks):
                task.cancel()
            await asyncio.gather(worker, *self._acks, return_exceptions=True)

    async def _receive_forever(self) -> None:
        host, port = parse_mqtt_url(self.mqtt_url)
        delay = 0.5
        while True:
            client = aiomqtt.Client(
                host, port, identifier=self.settings.mqtt_client_id, clean_session=False,
                username=self._username, password=self._password,
            )
            # aiomqtt cannot delay PUBACKs; its paho client can. Acks go out in _ack_when_durable.
            client._client.manual_ack_set(True)
            # Messages go straight from paho's callback into the inbox: aiomqtt's iterator costs a task
            # and a wait per message (about a third of the gateway's time per message when measured).
            # Set before connecting: a persistent session's queued messages arrive right after CONNACK.
            self._connection += 1
            client._client.on_message = self._on_message
            try:
                async with client:
                    self._client = client
                    self._lost.clear()
                    topics = subscriptions(self.settings.mqtt_share_group if self.settings.mqtt_shared else None,
                                           self._topics)
                    for topic in topics:
                        await client.subscribe(topic, qos=1)
                    log.info("gateway subscribed to %s on %s:%d", ", ".join(topics), host, port)
                    self.subscribed.set()
                    delay = 0.5
                    await self._read(client)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                if self.stopping:
                    return
                if asyncio.current_task().cancelling():
                    raise asyncio.CancelledError from exc
                log.warning("MQTT connection lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                self._client = None

    async def _read(self, client: aiomqtt.Client) -> None:
        disconnected = asyncio.ensure_future(asyncio.shield(client._disconnected))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait([disconnected, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            disconnected.cancel()
            lost.cancel()
        if lost.done() and not lost.cancelled():
            # A batch could not be made durable: reconnecting makes the broker resend what is unacked.
            raise aiomqtt.MqttError("reconnecting to have unacknowledged messages redelivered")
        raise aiomqtt.MqttError("disconnected from the broker")

    def _on_message(self, _client, _userdata, message) -> None:
        """paho's callback, on the event loop's thread: no awaiting here, just append and wake."""
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers refuse such topics; never let input break the loop anyway
            topic = message._topic.decode("utf-8", "replace")
        self._inbox.append(stage.RawMessage(
            topic, message.payload, int(self._clock() * 1000),
            mid=message.mid, qos=message.qos, connection=self._connection,
        ))
        self._wake.set()

    async def _process_forever(self) -> None:
        while True:
            messages = await self._next_batch()
            self.metrics.gauge("vigil_ingest_queue_depth", len(self._inbox))
            await self._unacked.acquire()
            try:
                durable = await retry_forever(self.process, messages, what="gateway batch", log=log)
            except BaseException:
                self._unacked.release()
                raise
            task = asyncio.create_task(self._ack_when_durable(durable, messages, self._last_ack))
            self._last_ack = task
            self._acks.add(task)
            task.add_done_callback(self._acks.discard)
            self._awaiting += 1
            self.metrics.gauge("vigil_ingest_unacked_batches", self._awaiting)

    async def _next_batch(self) -> list[stage.RawMessage]:
        """Messages for one batch: at least one, until ``batch_max_messages`` or the delay runs out, or at
        once when an alarm-bearing message (home-kit event, pet SOS) is in it: alarms do not wait for fill."""
        while not self._inbox:
            self._wake.clear()
            await self._wake.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.batch_max_delay_ms / 1000
        limit = self.settings.batch_max_messages
        messages: list[stage.RawMessage] = []
        urgent = False
        while True:
            while self._inbox and len(messages) < limit:
                message = self._inbox.popleft()
                urgent = urgent or message.topic.endswith(URGENT_STREAMS)
                messages.append(message)
            remaining = deadline - loop.time()
            if len(messages) >= limit or remaining <= 0 or urgent:
                return messages
            self._wake.clear()
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation that lands as
            # the wake-up does, and the runtime then waits forever for this task to stop.
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                done, _ = await asyncio.wait([waiter], timeout=remaining)
            finally:
                waiter.cancel()
            if not done:
                return messages

    async def process(self, messages: list[stage.RawMessage]) -> asyncio.Future[None]:
        """Assemble one batch of messages, enqueue its fixes on the bus and store its dead letters.

        Returns a future that resolves when the fixes are durable.
        """
        registry = await self.registry.resolve(stage.device_ids(messages))
        out = stage.assemble(
            messages,
            registry,
            now_ms=int(self._clock() * 1000),
            max_payload_bytes=self.settings.max_payload_bytes,
            max_future_ms=self.settings.max_future_skew_s * 1000,
        )
        out.batch.late = flag_late(out.batch.device, out.batch.ts_ms, out.batch.received_ms, self._high_water)
        out.events.late = (out.events.received_ms - out.events.ts_ms) > LATE_AFTER_MS
        # Content first: if storing dead letters fails, the retry enqueues it again, which is harmless
        # (storage skips duplicates), while the other order could store dead letters twice.
        durable = asyncio.gather(await self.bus.enqueue(FIXES, out.batch), await self.bus.enqueue(EVENTS, out.events))
        if not self._store_rejects:
            out.dead_letters = []
        await deadletters.store(self.db, out.dead_letters)
        self.metrics.inc("vigil_ingest_messages_total", by=len(messages))
        self.metrics.inc("vigil_ingest_fixes_total", by=len(out.batch))
        self.metrics.inc("vigil_ingest_events_total", by=len(out.events))
        self.metrics.inc("vigil_ingest_late_fixes_total", by=int(out.batch.late.sum()))
        for letter in out.dead_letters:
            self.metrics.inc("vigil_ingest_rejected_total", letter.reason)
            log.warning("rejected message on %s: %s %s", letter.topic, letter.reason, letter.detail[:200])
        return durable

    async def _ack_when_durable(
        self, durable: asyncio.Future[None], messages: list[stage.RawMessage], previous: asyncio.Task | None
    ) -> None:
        try:
            await durable
            if previous is not None:
                # MQTT 3.1.1 §4.6: PUBACKs go out in the order the PUBLISHes came in, even when a
                # later batch (another Kafka partition) becomes durable first.
                await asyncio.wait([previous])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a batch of %d messages was not made durable; they will be redelivered", len(messages))
            self._lost.set()
            for m in messages:
                if m.on_durable is not None:
                    m.on_durable(False)
            return
        finally:
            self._unacked.release()
            self._awaiting -= 1
        client = self._client
        acked = 0
        for m in messages:
            if m.on_durable is not None:  # another transport (the Teltonika TCP listener) acknowledges itself
                m.on_durable(True)
                acked += 1
            # Packet ids of an earlier connection mean nothing now; the broker resends those messages.
            elif client is not None and m.qos and m.connection == self._connection:
                client._client.ack(m.mid, m.qos)
                acked += 1
        self.metrics.inc("vigil_ingest_acked_total", by=acked)

    async def submit(self, message: stage.RawMessage) -> None:
        """Feed a message from another transport into the same pipeline; it waits while the inbox is
        over ``ingest_queue_size`` (MQTT intake is bounded by the broker's window instead)."""
        while len(self._inbox) >= self.settings.ingest_queue_size:
            await asyncio.sleep(0.01)
        self._inbox.append(message)
        self._wake.set()
