"""Async adapter of the city scenario: provisioning, credentials, MQTT connections, pacing, progress.

Connections: one MQTT connection per device is what real devices do, but 10k connections from one
process cost 10k sockets, keep-alive timers and paho client objects (and more file descriptors than a
default ``ulimit -n`` of 1024). So ``own_credentials`` devices (100 in a ``CityRun``, 500 from the CLI;
spread over cars, pets and home kits) each log in with their own username and password, issued like
``vigil devices add`` does, and publish on their own connection — the broker's ACL then checks them as
real devices; all other devices publish through one *simulator account* connection (``vigil/v1/#`` and
``owntracks/#``). OwnTracks phones always use the simulator account: their registry id
``user:device`` cannot be a broker username (``:`` separates the password file's fields).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import aiomqtt
import numpy as np

from simulators.city import City
from simulators.truth_log import TruthLog
from vigil.errors import BusError
from vigil.settings import parse_mqtt_url

PUBLISH_CHUNK = 500
MAX_INFLIGHT = 100
PUBLISH_TIMEOUT_S = 30.0
CONNECT_ATTEMPTS = 40  # × 0.5 s: a running `vigil up` picks up new credentials within 5 s
TRUTH_FLUSH_TICKS = 60


@dataclass(frozen=True)
class Progress:
    sim_s: int
    wall_s: float
    messages: int
    expected_rows: dict[str, int]


def own_credential_devices(city: City, count: int) -> list[int]:
    """Indices of up to ``count`` devices (no phones), spread evenly over the device list."""
    eligible = [i for i, d in enumerate(city.devices) if d.protocol != "owntracks"]
    if count <= 0 or not eligible:
        return []
    picks = np.unique(np.linspace(0, len(eligible) - 1, min(count, len(eligible))).round().astype(int))
    return [eligible[i] for i in picks]


async def provision(db, city: City, *, own: list[int], first_owner: str | None = None) -> dict[str, str]:
    """Register every device of the city (customer ``k`` owns car ``k``, pet ``k`` and home kit ``k``;
    customer 0 is ``first_owner`` when given) and issue MQTT passwords for the devices in ``own``.
    Returns device id -> password (the only place the plaintext exists)."""
    from ingest import mqtt_auth
    from storage import devices

    prefix = city.config.prefix
    by_kind: dict[str, list[str]] = {}
    owners: list[tuple[str, str]] = []
    counters = {"car": 0, "pet": 0, "home": 0}
    for dev in city.devices:
        by_kind.setdefault(dev.kind, []).append(dev.device_id)
        k = counters[dev.kind]
        counters[dev.kind] += 1
        owners.append((dev.device_id, first_owner if k == 0 and first_owner else f"{prefix}customer-{k:05d}"))
    for kind, ids in by_kind.items():
        await devices.provision(db, ids, kind=kind, timezone=city.config.timezone)
    async with db.connection() as conn:
        # Owners in one statement: provisioning device by device would cost a round trip each.
        await conn.execute(
            "UPDATE devices d SET owner = o.owner FROM unnest(%s::text[], %s::text[]) AS o(device_id, owner)"
            " WHERE d.device_id = o.device_id AND d.owner IS NULL",
            ([d for d, _ in owners], [o for _, o in owners]),
        )
    ids = [city.devices[i].device_id for i in own]
    return await mqtt_auth.issue_device_credentials(db, ids) if ids else {}


async def _connect(stack: contextlib.AsyncExitStack, host: str, port: int, *, identifier: str,
                   username: str | None, password: str | None) -> aiomqtt.Client:
    last: Exception | None = None
    for _ in range(CONNECT_ATTEMPTS):
        client = aiomqtt.Client(host, port=port, identifier=identifier, max_inflight_messages=MAX_INFLIGHT,
                                username=username, password=password)
        try:
            await stack.enter_async_context(client)
        except aiomqtt.MqttError as exc:
            last = exc
            await asyncio.sleep(0.5)
            continue
        client.pending_calls_threshold = PUBLISH_CHUNK
        return client
    raise BusError(f"{username or 'anonymous'} could not connect to {host}:{port}: {last}")


async def run_city(
    mqtt_url: str, city: City, *, duration_s: int | None, speedup: float = 1.0,
    username: str | None = None, password: str | None = None, device_passwords: dict[str, str] | None = None,
    truth_dir: Path | None = None, progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 10.0, stop: asyncio.Event | None = None,
) -> Progress:
    """Publish the city at QoS 1 for ``duration_s`` simulated seconds (None: until ``stop``).

    ``speedup``: simulated seconds per wall-clock second; 0 runs as fast as the broker acknowledges.
    The caller picks ``city.start_ms`` so the stamps make sense: now for ``speedup=1``, ``duration_s``
    in the past for a faster run (the gateway refuses fixes more than 5 minutes ahead of its clock).
    ``device_passwords``: devices that publish on their own connection. Returns the final progress.
    """
    if duration_s is not None and (isinstance(duration_s, bool) or duration_s < 1):
        raise ValueError(f"duration_s must be a positive number of seconds or None, got {duration_s!r}")
    if not (math.isfinite(speedup) and speedup >= 0):
        raise ValueError(f"speedup must be a non-negative number, got {speedup!r}")
    if duration_s is None and speedup != 1.0:
        raise ValueError("an endless run (no duration) goes at speedup 1, or its stamps would leave the present")
    host, port = parse_mqtt_url(mqtt_url)
    index = {d.device_id: i for i, d in enumerate(city.devices)}
    unknown = set(device_passwords or {}) - set(index)
    if unknown:
        raise ValueError(f"passwords for devices outside the city: {sorted(unknown)[:5]}")
    truth = TruthLog(truth_dir, city) if truth_dir is not None else None
    sent = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    wall0 = time.perf_counter()
    last_report = t0

    def report() -> Progress:
        return Progress(city.t, time.perf_counter() - wall0, sent, city.expected_rows())

    try:
        async with contextlib.AsyncExitStack() as stack:
            tag = secrets.token_hex(4)
            bulk = await _connect(stack, host, port, identifier=f"vigil-citysim-{tag}", username=username,
                                  password=password)
            clients: dict[int, aiomqtt.Client] = {}
            for device_id, pw in (device_passwords or {}).items():
                clients[index[device_id]] = await _connect(
                    stack, host, port, identifier=f"{device_id}-{tag}", username=device_id, password=pw)
            while (duration_s is None or city.t < duration_s) and not (stop is not None and stop.is_set()):
                messages = city.tick()
                for i in range(0, len(messages), PUBLISH_CHUNK):
                    await asyncio.gather(*(
                        clients.get(d, bulk).publish(topic, payload, qos=1, timeout=PUBLISH_TIMEOUT_S)
                        for d, topic, payload in messages[i:i + PUBLISH_CHUNK]
                    ))
                sent += len(messages)
                if truth is not None and city.t % TRUTH_FLUSH_TICKS == 0:
                    truth.flush()
                now = loop.time()
                if progress is not None and now - last_report >= progress_every_s:
                    last_report = now
                    progress(report())
                if speedup > 0:
                    delay = t0 + city.t / speedup - loop.time()
                    if delay > 0 and stop is not None:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), delay)
                    elif delay > 0:
                        await asyncio.sleep(delay)
                else:
                    await asyncio.sleep(0)
    except aiomqtt.MqttError as exc:
        raise BusError(f"city simulator could not publish to {host}:{port}: {exc}") from exc
    finally:
        if truth is not None:
            truth.close()
    final = report()
    if progress is not None:
        progress(final)
    return final
