"""Lean MQTT 3.1.1 device connections: many thousands in one process, each with its own login.

A real device holds one connection under its own user name, so the simulator does too. aiomqtt (on
paho) keeps a client object, a socket reader and a housekeeping task waking every second per client;
with 10 000 of them that costs far more memory and idle CPU than the devices' own traffic (figures in
docs/simulators.md). A :class:`DeviceConnection` is an :class:`asyncio.Protocol` that only publishes:
CONNECT with user name and password, CONNACK check, PUBLISH at QoS 1 with packet ids and PUBACK
tracking, PINGREQ when idle, DISCONNECT. One :func:`keep_alive` task serves every connection, and
:func:`connect_all` opens them in bounded waves so the broker's accept queue is never flooded, retrying
with backoff (a broker that has not yet re-read its password file answers "not authorized").
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
from dataclasses import dataclass
from typing import Iterable

from simulators import mqtt_packets as mp
from vigil.errors import BusError, ConfigError

#: 60 s: the broker drops a client after 1.5 × this without a packet; an idle device pings at half of it.
KEEPALIVE_S = 60
CONNECT_TIMEOUT_S = 10.0
#: 64 connects in flight: measured against Mosquitto 2.0.11, 3000 logins took 1.0 s at 64 and 2.3 s at 128
#: (likely its accept queue overflowing, the dropped SYNs retried after 1 s); 16 gained nothing.
CONNECT_CONCURRENCY = 64
#: 30 s of retries: a running `vigil up` re-reads its password file every 5 s.
RETRY_FOR_S = 30.0


class ConnectRefused(BusError):
    """The broker answered CONNECT with a non-zero return code (``code``, MQTT 3.1.1 section 3.2.2.3)."""

    def __init__(self, username: str | None, code: int) -> None:
        self.code = code
        super().__init__(f"{username or 'anonymous'}: broker refused the connection: "
                         f"{mp.CONNACK_REASONS.get(code, f'return code {code}')} ({code})")


class DeviceConnection(asyncio.Protocol):
    """One connection; create with :func:`connect`. ``max_inflight``: unacknowledged QoS 1 messages
    allowed at once (a device sends a few a second; the shared simulator account sends thousands)."""

    def __init__(self, username: str | None, max_inflight: int = 20) -> None:
        self.username = username
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.last_sent = 0.0
        self.published = 0
        self._reader = mp.PacketReader()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0
        self._window = asyncio.Semaphore(max_inflight)
        self._writable: asyncio.Event | None = None
        self._lost: Exception | None = None

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            for kind, _, body in self._reader.feed(data):
                if kind == mp.PUBACK:
                    fut = self._pending.pop(mp.puback_id(body), None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                elif kind == mp.CONNACK and not self.connack.done():
                    self.connack.set_result(mp.connack_code(body))
        except ValueError as exc:  # a malformed packet: the stream cannot be trusted past it
            self._fail(BusError(f"{self.username}: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(BusError(f"{self.username}: connection lost" + (f": {exc}" if exc else "")))

    def pause_writing(self) -> None:
        self._writable = asyncio.Event()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set()
            self._writable = None

    def _fail(self, exc: Exception) -> None:
        self._lost = self._lost or exc
        if not self.connack.done():
            self.connack.set_exception(exc)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        if self._writable is not None:
            self._writable.set()
        if self.transport is not None:
            self.transport.abort()

    # client
    @property
    def open(self) -> bool:
        return self._lost is None and self.transport is not None and not self.transport.is_closing()

    def _write(self, data: bytes) -> None:
        if self._lost is not None:
            raise self._lost
        self.transport.write(data)
        self.last_sent = asyncio.get_running_loop().time()

    def send(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        """Write a QoS 1 PUBLISH now; the future completes with the broker's PUBACK (or fails with
        :class:`BusError` if the connection is lost first). No in-flight window: for a device that
        sends a few messages a second; the shared simulator account uses :meth:`publish`. Mosquitto
        also acknowledges a publish its ACL refuses, then drops it (MQTT 3.1.1 has no refusal code)."""
        packet_id = self._take_id()
        fut = asyncio.get_running_loop().create_future()
        self._write(mp.publish(topic, payload, qos=1, packet_id=packet_id))
        self._pending[packet_id] = fut
        self.published += 1
        return fut

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Send at QoS 0, or at QoS 1 and return once acknowledged, at most ``max_inflight`` at once."""
        if qos == 0:
            self._write(mp.publish(topic, payload, qos=0))
            return
        async with self._window:
            if self._writable is not None:
                await self._writable.wait()
            await self.send(topic, payload)

    def _take_id(self) -> int:
        for _ in range(0xFFFF):
            self._next_id = self._next_id % 0xFFFF + 1
            if self._next_id not in self._pending:
                return self._next_id
        raise BusError(f"{self.username}: 65535 messages unacknowledged")

    def ping(self) -> None:
        if self.open:
            self._write(mp.PINGREQ_BYTES)

    def close(self) -> None:
        """DISCONNECT (the broker then discards the will and session) and close the socket."""
        if not self.connack.done():
            self.connack.cancel()  # nobody waits for it any more
        if self.open:
            self._write(mp.DISCONNECT_BYTES)
            self.transport.close()
        self._lost = self._lost or BusError(f"{self.username}: closed")


@dataclass(frozen=True)
class Login:
    client_id: str
    username: str | None
    password: str | None
    max_inflight: int = 20


async def connect(host: str, port: int, login: Login, *, keepalive_s: int = KEEPALIVE_S,
                  timeout_s: float = CONNECT_TIMEOUT_S) -> DeviceConnection:
    """One attempt: TCP connect, CONNECT, wait for CONNACK. Raises :class:`ConnectRefused` on a
    non-zero return code, :class:`BusError` on a network failure or timeout."""
    loop = asyncio.get_running_loop()
    conn: DeviceConnection | None = None
    try:
        async with asyncio.timeout(timeout_s):
            _, conn = await loop.create_connection(lambda: DeviceConnection(login.username, login.max_inflight),
                                                   host, port)
            conn._write(mp.connect(login.client_id, username=login.username, password=login.password,
                                   keepalive_s=keepalive_s))
            code = await conn.connack
    except (OSError, TimeoutError) as exc:
        if conn is not None:
            conn.close()
        raise BusError(f"{login.username or 'anonymous'} could not connect to {host}:{port}: {exc!r}") from exc
    if code != 0:
        conn.close()
        raise ConnectRefused(login.username, code)
    return conn


async def connect_retrying(host: str, port: int, login: Login, *, retry_for_s: float = RETRY_FOR_S,
                           keepalive_s: int = KEEPALIVE_S) -> DeviceConnection:
    """:func:`connect`, retried with exponential backoff (0.25 s doubling to 2 s, ±25 % jitter so a
    wave does not come back in step) until ``retry_for_s`` has passed; then the last error."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for_s
    delay = 0.25
    while True:
        try:
            return await connect(host, port, login, keepalive_s=keepalive_s)
        except BusError:
            if loop.time() + delay > deadline:
                raise
        await asyncio.sleep(delay * random.uniform(0.75, 1.25))  # noqa: S311 - jitter, not secrets
        delay = min(delay * 2, 2.0)


async def connect_all(host: str, port: int, logins: Iterable[Login], *, concurrency: int = CONNECT_CONCURRENCY,
                      retry_for_s: float = RETRY_FOR_S, keepalive_s: int = KEEPALIVE_S) -> list[DeviceConnection]:
    """Open every login's connection, at most ``concurrency`` connecting at once; the result is in the
    order of ``logins``. The first login goes alone (a broker still loading new credentials refuses it
    and it retries), so the rest do not all retry together. All or nothing: on a failure the
    connections already open are closed and the error raised."""
    logins = list(logins)
    if not logins:
        return []
    first = await connect_retrying(host, port, logins[0], retry_for_s=retry_for_s, keepalive_s=keepalive_s)
    gate = asyncio.Semaphore(concurrency)
    out: list[DeviceConnection | None] = [first] + [None] * (len(logins) - 1)

    async def one(i: int) -> None:
        async with gate:
            out[i] = await connect_retrying(host, port, logins[i], retry_for_s=retry_for_s, keepalive_s=keepalive_s)

    try:
        async with asyncio.TaskGroup() as tg:
            for i in range(1, len(logins)):
                tg.create_task(one(i))
    except BaseException as exc:
        close_all(c for c in out if c is not None)
        if isinstance(exc, BaseExceptionGroup):
            raise exc.exceptions[0] from None
        raise
    return out


async def keep_alive(conns: list[DeviceConnection], keepalive_s: int = KEEPALIVE_S) -> None:
    """Run until cancelled: every ``keepalive_s / 4`` s, PINGREQ on each connection silent for half
    the keep-alive. One task for all connections instead of one timer each."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(keepalive_s / 4)
        idle_since = loop.time() - keepalive_s / 2
        for conn in conns:
            if conn.last_sent < idle_since:
                with contextlib.suppress(BusError):
                    conn.ping()


def close_all(conns: Iterable[DeviceConnection]) -> None:
    for conn in conns:
        conn.close()


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft limit of open files to at least ``needed`` (up to the hard limit) and
    return it; :class:`ConfigError` when the hard limit is lower (each connection holds a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(f"{needed} open files needed (one socket per device connection), but the hard limit "
                          f"is {hard}: raise it (ulimit -Hn, LimitNOFILE=) or give fewer devices own connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
