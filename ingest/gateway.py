"""The MQTT gateway: subscribe, queue (bounded), batch, assemble, publish to the bus, dead-letter.

The stages are: receive → bounded queue → batch (by count or delay) → assemble (decode + validate,
pure) → publish fixes to the bus and store dead letters. A failure on one message never stops the
stream; a failure of the bus or database is retried with back-off so nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiomqtt

from bus.base import FIXES, Bus
from ingest import assemble as stage
from ingest.registry import DeviceRegistry
from ingest.topics import SUBSCRIPTION
from storage import deadletters
from storage.db import Database
from vigil.metrics import Metrics
from vigil.retry import retry_forever
from vigil.settings import Settings, parse_mqtt_url

log = logging.getLogger(__name__)


class Gateway:
    def __init__(
        self, *, settings: Settings, mqtt_url: str, db: Database, bus: Bus, metrics: Metrics, clock=time.time
    ) -> None:
        self.settings = settings
        self.mqtt_url = mqtt_url
        self.db = db
        self.bus = bus
        self.metrics = metrics
        self.registry = DeviceRegistry(db)
        self._clock = clock
        self._queue: asyncio.Queue[stage.RawMessage] = asyncio.Queue(settings.ingest_queue_size)
        self.subscribed = asyncio.Event()
        metrics.describe("vigil_ingest_messages_total", "", "MQTT messages received by the gateway")
        metrics.describe("vigil_ingest_fixes_total", "", "fixes accepted and published to the bus")
        metrics.describe("vigil_ingest_rejected_total", "reason", "dead-lettered messages by reason")

    async def run(self) -> None:
        """Run until cancelled: reconnects to the broker with back-off, never stops on bad input."""
        worker = asyncio.create_task(self._process_forever(), name="gateway-process")
        try:
            await self._receive_forever()
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _receive_forever(self) -> None:
        host, port = parse_mqtt_url(self.mqtt_url)
        delay = 0.5
        while True:
            try:
                async with aiomqtt.Client(
                    host, port, identifier=self.settings.mqtt_client_id, clean_session=False
                ) as client:
                    await client.subscribe(SUBSCRIPTION, qos=1)
                    log.info("gateway subscribed to %s on %s:%d", SUBSCRIPTION, host, port)
                    self.subscribed.set()
                    delay = 0.5
                    async for message in client.messages:
                        raw = stage.RawMessage(
                            str(message.topic), bytes(message.payload), int(self._clock() * 1000)
                        )
                        await self._queue.put(raw)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                if asyncio.current_task().cancelling():
                    raise

                log.warning("MQTT connection lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _process_forever(self) -> None:
        while True:
            messages = await self._next_batch()
            await retry_forever(self.process, messages, what="gateway batch", log=log)

    async def _next_batch(self) -> list[stage.RawMessage]:
        messages = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.settings.batch_max_delay_ms / 1000
        while len(messages) < self.settings.batch_max_messages:
            try:
                messages.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                messages.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return messages

    async def process(self, messages: list[stage.RawMessage]) -> stage.Assembled:
        """Assemble one batch of messages, publish its fixes and store its dead letters."""
        registry = await self.registry.resolve(stage.device_ids(messages))
        out = stage.assemble(
            messages,
            registry,
            now_ms=int(self._clock() * 1000),
            max_payload_bytes=self.settings.max_payload_bytes,
            max_future_ms=self.settings.max_future_skew_s * 1000,
        )
        # Fixes first: if storing dead letters fails, the retry republishes them, which is harmless
        # (storage skips duplicates), while the other order could store dead letters twice.
        await self.bus.publish(FIXES, out.batch)
        await deadletters.store(self.db, out.dead_letters)
        self.metrics.inc("vigil_ingest_messages_total", by=len(messages))
        self.metrics.inc("vigil_ingest_fixes_total", by=len(out.batch))
        for letter in out.dead_letters:
            self.metrics.inc("vigil_ingest_rejected_total", letter.reason)
            log.warning("rejected message on %s: %s %s", letter.topic, letter.reason, letter.detail[:200])
        return out
