"""Async adapter of the city scenario: provisioning, credentials, MQTT connections, pacing, progress.

Connections: every device logs in with its own user name and password, issued like ``vigil devices add``
does (an OwnTracks phone ``user:device`` as its topic's ``user``, see
:func:`ingest.mqtt_auth.broker_username`), and publishes on its own connection, so the broker's ACL
checks it as a real device. 10 000 connections live in one process as lean
:class:`simulators.mqtt_device.DeviceConnection` objects (a socket, a few dicts; one keep-alive task for
all). ``own_credentials=K`` limits that to K devices spread over the kinds (small test runs, or a host
whose open-file limit is low); the others then publish through one connection of the *simulator account*
(``vigil/v1/#`` and ``owntracks/#``), which is opened only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ingest.mqtt_auth import broker_username
from simulators.city import City
from simulators.mqtt_device import DeviceConnection, Login, close_all, connect, connect_all, keep_alive, raise_fd_limit
from simulators.truth_log import TruthLog
from vigil.errors import BusError
from vigil.settings import parse_mqtt_url

PUBLISH_CHUNK = 500
MAX_INFLIGHT = 100
PUBLISH_TIMEOUT_S = 30.0
#: Open files besides the device sockets: the database pool, the truth log, stdio, Python's own.
FD_MARGIN = 64
TRUTH_FLUSH_TICKS = 60
RECONNECT_MAX_S = 30.0  # a device whose connection dropped retries after 1 s, doubling to this


@dataclass(frozen=True)
class Progress:
    sim_s: int
    wall_s: float
    messages: int
    expected_rows: dict[str, int]
    connections: int = 0
    connect_s: float = 0.0
    #: Messages of devices whose own connection was down (dropped, as by a box without a buffer), and
    #: how often such a device got back on.
    dropped: int = 0
    reconnects: int = 0


def own_credential_devices(city: City, count: int | None = None) -> list[int]:
    """Indices of the devices that get their own credentials: all when ``count`` is None, else up to
    ``count`` spread evenly over the device list (so over cars, phones, pets and home kits)."""
    n = len(city.devices)
    if count is None or count >= n:
        return list(range(n))
    if count <= 0:
        return []
    return np.unique(np.linspace(0, n - 1, count).round().astype(int)).tolist()


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


async def run_city(
    mqtt_url: str, city: City, *, duration_s: int | None, speedup: float = 1.0,
    username: str | None = None, password: str | None = None, device_passwords: dict[str, str] | None = None,
    truth_dir: Path | None = None, progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 10.0, stop: asyncio.Event | None = None,
    connected: Callable[[Progress], None] | None = None,
) -> Progress:
    """Publish the city at QoS 1 for ``duration_s`` simulated seconds (None: until ``stop``).

    ``speedup``: simulated seconds per wall-clock second; 0 runs as fast as the broker acknowledges.
    The caller picks ``city.start_ms`` so the stamps make sense: now for ``speedup=1``, ``duration_s``
    in the past for a faster run (the gateway refuses fixes more than 5 minutes ahead of its clock).
    ``device_passwords``: device id -> password of the devices that publish on their own connection;
    the others publish through one connection as ``username``/``password`` (the simulator account).
    ``connected`` is called once every connection is open. A device whose own connection drops (broker
    restart, credentials revoked) reconnects in the background with backoff and drops its messages until
    it is back (``Progress.dropped``); the shared connection failing ends the run. Returns the final progress.
    """
    if duration_s is not None and (isinstance(duration_s, bool) or duration_s < 1):
        raise ValueError(f"duration_s must be a positive number of seconds or None, got {duration_s!r}")
    if not (math.isfinite(speedup) and speedup >= 0):
        raise ValueError(f"speedup must be a non-negative number, got {speedup!r}")
    if duration_s is None and speedup != 1.0:
        raise ValueError("an endless run (no duration) goes at speedup 1, or its stamps would leave the present")
    host, port = parse_mqtt_url(mqtt_url)
    index = {d.device_id: i for i, d in enumerate(city.devices)}
    own = device_passwords or {}
    unknown = set(own) - set(index)
    if unknown:
        raise ValueError(f"passwords for devices outside the city: {sorted(unknown)[:5]}")
    shared = len(own) < len(city.devices)
    raise_fd_limit(len(own) + FD_MARGIN)
    tag = secrets.token_hex(4)
    logins = [Login(f"{device_id}-{tag}", broker_username(device_id), pw) for device_id, pw in own.items()]
    if shared:
        logins.append(Login(f"vigil-citysim-{tag}", username, password, max_inflight=MAX_INFLIGHT))
    truth = TruthLog(truth_dir, city) if truth_dir is not None else None
    sent = dropped = reconnects = 0
    loop = asyncio.get_running_loop()
    conns: list[DeviceConnection] = []
    down: dict[int, asyncio.Task] = {}  # device index -> its reconnect task

    async def reconnect(d: int) -> None:
        # A real box reconnects after the broker drops it (broker restart, credentials revoked when the
        # device is suspended, network): with backoff, and forever, without holding up the others.
        nonlocal reconnects
        delay = 1.0
        while True:
            await asyncio.sleep(delay * random.uniform(0.75, 1.25))  # noqa: S311 - jitter, not secrets
            try:
                conn = await connect(host, port, logins[slot[d]])
            except BusError:  # refused (e.g. suspended) or unreachable: stay offline, try again later
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            conns[slot[d]] = by_device[d] = conn
            reconnects += 1
            del down[d]
            return

    def lost(d: int) -> None:
        if d not in down:
            down[d] = asyncio.create_task(reconnect(d))
    try:
        wall0 = time.perf_counter()
        # Connecting the first login retries while a running `vigil up` has not yet re-read its password
        # file (every 5 s); the rest follow in bounded waves.
        conns = await connect_all(host, port, logins)
        connect_s = time.perf_counter() - wall0
        by_device = {index[d]: conn for d, conn in zip(own, conns)}
        slot = {index[d]: i for i, d in enumerate(own)}  # device index -> its login and connection
        bulk = conns[-1] if shared else None
        keeper = asyncio.create_task(keep_alive(conns))
        t0 = last_report = loop.time()
        wall0 = time.perf_counter()

        def report() -> Progress:
            return Progress(city.t, time.perf_counter() - wall0, sent, city.expected_rows(), len(conns), connect_s,
                            dropped, reconnects)

        if connected is not None:
            connected(report())
        try:
            while (duration_s is None or city.t < duration_s) and not (stop is not None and stop.is_set()):
                messages = city.tick()
                # A device's own connection takes its messages at once (a PUBACK future each, no task);
                # the shared connection's go through its in-flight window in chunks.
                # A device whose connection is down drops its messages until it is back.
                acks: list[tuple[int, asyncio.Future]] = []
                rest = []
                lost_now = 0
                for d, topic, payload in messages:
                    if d not in by_device:
                        rest.append((topic, payload))
                    elif d in down:
                        lost_now += 1
                    else:
                        try:
                            acks.append((d, by_device[d].send(topic, payload)))
                        except BusError:  # the connection was already gone
                            lost_now += 1
                            lost(d)
                async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                    for i in range(0, len(rest), PUBLISH_CHUNK):
                        await asyncio.gather(*(bulk.publish(t, p) for t, p in rest[i:i + PUBLISH_CHUNK]))
                    results = await asyncio.gather(*(f for _, f in acks), return_exceptions=True)
                for (d, _), result in zip(acks, results):
                    if isinstance(result, BusError):  # lost before its PUBACK
                        lost_now += 1
                        lost(d)
                    elif isinstance(result, BaseException):
                        raise result
                sent += len(messages) - lost_now
                dropped += lost_now
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
        finally:
            keeper.cancel()
            for task in down.values():
                task.cancel()
    except TimeoutError as exc:
        raise BusError(f"city simulator: the broker at {host}:{port} did not acknowledge within "
                       f"{PUBLISH_TIMEOUT_S:.0f} s") from exc
    except BusError as exc:
        raise BusError(f"city simulator could not publish to {host}:{port}: {exc}") from exc
    finally:
        close_all(conns)
        if truth is not None:
            truth.close()
    final = report()
    if progress is not None:
        progress(final)
    return final
