"""Async MQTT adapter: drives :mod:`simulators.cars` and publishes car payload v1 over MQTT (QoS 1).

The only I/O and clock reads of the car simulator live here.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from typing import Callable

import aiomqtt
import numpy as np

from simulators.cars import encode_fix_message, fix_topic, fixes_from_sample, initial_state, sample, step
from vigil.settings import parse_mqtt_url
from vigil.errors import BusError

PUBLISH_CHUNK = 500  # publishes awaited together; bounds the PUBACK wait queue so no publish times out
MAX_INFLIGHT = 100  # QoS 1 messages unacknowledged at once (paho's default of 20 throttles a local broker)
PUBLISH_TIMEOUT_S = 30.0


def _validate(
    device_ids: list[str], fixes_per_car: int | None, interval_s: float, realtime: bool,
    fixes_per_message: int, start_ms: int | None,
) -> None:
    if isinstance(device_ids, str) or not device_ids:
        raise ValueError("device_ids must be a non-empty list of device id strings")
    for device_id in device_ids:
        fix_topic(device_id)
    if len(set(device_ids)) != len(device_ids):
        raise ValueError("device_ids must be unique")
    if fixes_per_car is not None and (
        isinstance(fixes_per_car, bool) or not isinstance(fixes_per_car, int) or fixes_per_car < 1
    ):
        raise ValueError(f"fixes_per_car must be a positive integer or None, got {fixes_per_car!r}")
    if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) or not (
        math.isfinite(interval_s) and interval_s > 0
    ):
        raise ValueError(f"interval_s must be a positive number of seconds, got {interval_s!r}")
    if isinstance(fixes_per_message, bool) or not isinstance(fixes_per_message, int) or fixes_per_message < 1:
        raise ValueError(f"fixes_per_message must be a positive integer, got {fixes_per_message!r}")
    if realtime and start_ms is not None:
        raise ValueError("start_ms applies only with realtime=False (realtime fixes are stamped now)")
    if not realtime and fixes_per_car is None:
        raise ValueError("realtime=False needs fixes_per_car (otherwise it would never finish)")
    if start_ms is not None and (isinstance(start_ms, bool) or not isinstance(start_ms, int) or start_ms < 0):
        raise ValueError(f"start_ms must be a non-negative integer (UTC ms), got {start_ms!r}")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _publish_all(client: aiomqtt.Client, messages: list[tuple[str, bytes]]) -> None:
    for i in range(0, len(messages), PUBLISH_CHUNK):
        await asyncio.gather(*(
            client.publish(topic, payload, qos=1, timeout=PUBLISH_TIMEOUT_S)
            for topic, payload in messages[i:i + PUBLISH_CHUNK]
        ))


async def _sleep_until(deadline: float, stop: asyncio.Event | None) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if stop is None:
        await asyncio.sleep(max(delay, 0.0))
    elif delay > 0:
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass


async def run_cars(
    mqtt_url: str,
    device_ids: list[str],
    *,
    fixes_per_car: int | None = None,
    interval_s: float = 1.0,
    realtime: bool = True,
    seed: int = 0,
    fixes_per_message: int = 1,
    start_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    username: str | None = None,
    password: str | None = None,
) -> int:
    """Simulate one car per device id and publish its fixes to ``vigil/v1/car/{id}/fix`` at QoS 1.

    Simulated time advances ``interval_s`` seconds per tick and every car yields one fix per tick.
    ``realtime=True`` paces ticks at wall-clock ``interval_s`` and stamps fixes with the current UTC ms,
    until ``fixes_per_car`` ticks are done or ``stop`` is set. ``realtime=False`` runs as fast as the
    broker acknowledges, stamping ``start_ms + tick * interval_s * 1000`` (UTC ms; default start so the last
    fix lies ``interval_s`` in the past) and needs ``fixes_per_car``. Each message carries
    ``fixes_per_message`` fixes of one car (the final one possibly fewer); ``seq`` counts a car's messages
    from 1. ``progress`` is called with the running total of published fixes after each flush.

    Returns the number of fixes published: ``len(device_ids) * fixes_per_car`` when it runs to the end.
    Raises ValueError on invalid arguments (before connecting) and BusError when MQTT fails.
    """
    _validate(device_ids, fixes_per_car, interval_s, realtime, fixes_per_message, start_ms)
    host, port = parse_mqtt_url(mqtt_url)
    device_ids = list(device_ids)
    topics = [fix_topic(d) for d in device_ids]
    interval_ms = interval_s * 1000.0
    if not realtime and start_ms is None:
        start_ms = _now_ms() - int(math.ceil(fixes_per_car * interval_ms))

    state = initial_state(len(device_ids), seed=seed)
    rng = np.random.default_rng([seed, 1])  # a stream separate from the one placing the cars
    buffers: list[list[dict]] = [[] for _ in device_ids]
    seqs = [0] * len(device_ids)
    published = 0

    async def flush() -> None:
        nonlocal published
        if not buffers[0]:
            return
        messages = []
        for i, device_id in enumerate(device_ids):
            seqs[i] += 1
            messages.append((topics[i], encode_fix_message(device_id, seqs[i], buffers[i])))
        await _publish_all(client, messages)
        published += sum(len(b) for b in buffers)
        for b in buffers:
            b.clear()
        if progress is not None:
            progress(published)

    identifier = f"vigil-carsim-{secrets.token_hex(6)}"
    try:
        async with aiomqtt.Client(
            host, port=port, identifier=identifier, max_inflight_messages=MAX_INFLIGHT,
            username=username, password=password,
        ) as client:
            client.pending_calls_threshold = PUBLISH_CHUNK  # we keep a chunk pending on purpose; no warning
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            tick = 0
            while (fixes_per_car is None or tick < fixes_per_car) and not (stop is not None and stop.is_set()):
                if tick:
                    state = step(state, interval_s, rng)
                ts = _now_ms() if realtime else start_ms + int(round(tick * interval_ms))
                for buf, fix in zip(buffers, fixes_from_sample(sample(state, rng), ts)):
                    buf.append(fix)
                if len(buffers[0]) >= fixes_per_message:
                    await flush()
                tick += 1
                if realtime and (fixes_per_car is None or tick < fixes_per_car):
                    await _sleep_until(t0 + tick * interval_s, stop)
                else:
                    await asyncio.sleep(0)
            await flush()
    except aiomqtt.MqttError as exc:
        raise BusError(f"car simulator could not publish to {host}:{port}: {exc}") from exc
    return published
