"""Fault-injection helpers: a publisher that keeps what it has not had acknowledged, servers that can be
stopped and started again, Vigil processes that can be killed, and exact reads of what was stored."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import psycopg

from simulators.cars import encode_fix_message, fix_topic
from tests.services import free_port, wait_for_port
from vigil.settings import parse_mqtt_url

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------------
# The publisher


@dataclass(frozen=True, slots=True)
class _Message:
    key: int
    topic: str
    payload: bytes
    fixes: tuple[tuple[str, int], ...]  # (device id, ts UTC ms) of every fix in the payload


class AckingPublisher:
    """Cars publishing Vigil car payload v1 at QoS 1, as black boxes with a buffer do.

    Every tick (``1 / rate_hz`` s of wall time) each device produces one message of ``fixes_per_message``
    fixes, stamped ``start_ms + n * 1000`` (one simulated second apart, so every (device, ts) is unique).
    A message stays buffered until its PUBACK arrives. A lost connection (or a publish that times out)
    ends the connection; the publisher reconnects every ``reconnect_delay_s`` and publishes the whole
    buffer again, oldest first, before new messages. ``acked`` holds exactly the fixes of messages whose
    PUBACK this publisher received; ``generated`` every fix it produced.
    """

    def __init__(
        self,
        mqtt_url: str,
        device_ids: list[str],
        *,
        rate_hz: float = 10.0,
        fixes_per_message: int = 1,
        start_ms: int | None = None,
        publish_timeout_s: float = 15.0,
        reconnect_delay_s: float = 0.2,
        max_inflight: int = 100,
    ) -> None:
        self.host, self.port = parse_mqtt_url(mqtt_url)
        self.device_ids = list(device_ids)
        self.topics = [fix_topic(d) for d in self.device_ids]
        self.interval_s = 1.0 / rate_hz
        self.fixes_per_message = fixes_per_message
        # An hour back leaves room for a long run at one simulated second per fix without going future.
        self.start_ms = start_ms if start_ms is not None else (time.time_ns() // 1_000_000 // 1000 - 3600) * 1000
        self.publish_timeout_s = publish_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        self.max_inflight = max_inflight
        self.client_prefix = f"fault-pub-{uuid.uuid4().hex[:8]}"

        self.messages: list[_Message] = []
        self.unacked: dict[int, _Message] = {}  # insertion order is key order: oldest first
        self.generated: set[tuple[str, int]] = set()
        self.acked: set[tuple[str, int]] = set()
        self.acked_messages = 0
        self.publishes = 0  # PUBLISH packets handed to the client, resends included
        self.resends = 0  # of those, publishes of a message already published on an earlier connection
        self.connections = 0
        self.connect_failures = 0
        self.connection_losses = 0
        self.max_unacked = 0
        self.generating = False
        self._attempted: set[int] = set()
        self._wake = asyncio.Event()
        self._generated_all = asyncio.Event()
        self._stop_generating = asyncio.Event()
        self._error: BaseException | None = None

    # -- public ---------------------------------------------------------------------------------

    async def run(self, *, ticks: int, drain_timeout_s: float = 45.0) -> None:
        """Publish ``ticks`` messages per device at a steady pace, then wait until every message is
        acknowledged; raises TimeoutError if the buffer has not drained ``drain_timeout_s`` after the
        last message was generated."""
        generator = asyncio.create_task(self._generate(ticks), name="fault-publisher-generate")
        sender = asyncio.create_task(self._connect_forever(), name="fault-publisher-send")
        try:
            await generator
            await asyncio.wait_for(asyncio.shield(sender), drain_timeout_s)
        finally:
            for task in (generator, sender):
                task.cancel()
            await asyncio.gather(generator, sender, return_exceptions=True)

    def stop_generating(self) -> None:
        """End the stream early (after the current tick); what was generated still drains."""
        self._stop_generating.set()

    @property
    def acked_fixes(self) -> int:
        return len(self.acked)

    def summary(self) -> dict[str, int]:
        return {
            "devices": len(self.device_ids),
            "messages": len(self.messages),
            "fixes_generated": len(self.generated),
            "fixes_acked": len(self.acked),
            "messages_acked": self.acked_messages,
            "unacked_messages": len(self.unacked),
            "publishes": self.publishes,
            "resends": self.resends,
            "connections": self.connections,
            "connect_failures": self.connect_failures,
            "connection_losses": self.connection_losses,
            "max_unacked": self.max_unacked,
        }

    # -- generation -----------------------------------------------------------------------------

    def _fix(self, device_index: int, n: int) -> dict:
        ts = self.start_ms + n * 1000
        return {
            "ts": ts,
            "lat": 60.1699 + 0.001 * device_index + 1e-5 * (n % 1000),
            "lon": 24.9384 + 1e-5 * (n % 1000),
            "speed_kmh": float(n % 90),
            "heading_deg": float((n * 7) % 360),
            "accuracy_m": 5.0,
            "ignition": True,
            "accel_g": [0.01, 0.0, 1.0],
        }

    async def _generate(self, ticks: int) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        self.generating = True
        try:
            for tick in range(ticks):
                if self._stop_generating.is_set():
                    break
                for i, (device_id, topic) in enumerate(zip(self.device_ids, self.topics)):
                    fixes = [self._fix(i, tick * self.fixes_per_message + j) for j in range(self.fixes_per_message)]
                    msg = _Message(
                        key=len(self.messages), topic=topic,
                        payload=encode_fix_message(device_id, tick + 1, fixes),
                        fixes=tuple((device_id, f["ts"]) for f in fixes),
                    )
                    self.messages.append(msg)
                    self.unacked[msg.key] = msg
                    self.generated.update(msg.fixes)
                self.max_unacked = max(self.max_unacked, len(self.unacked))
                self._wake.set()
                delay = t0 + (tick + 1) * self.interval_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        finally:
            self.generating = False
            self._generated_all.set()
            self._wake.set()

    # -- sending --------------------------------------------------------------------------------

    def _drained(self) -> bool:
        return self._generated_all.is_set() and not self.unacked

    async def _connect_forever(self) -> None:
        while not self._drained():
            client = aiomqtt.Client(
                self.host, self.port, identifier=f"{self.client_prefix}-{self.connections + self.connect_failures}",
                clean_session=True, max_inflight_messages=self.max_inflight, timeout=5,
            )
            client.pending_calls_threshold = 1_000_000  # a full buffer is resent at once on purpose
            connected = False
            try:
                async with client:
                    connected = True
                    self.connections += 1
                    await self._pump(client)
                    return
            except aiomqtt.MqttError:
                if connected:
                    self.connection_losses += 1
                else:
                    self.connect_failures += 1
                await asyncio.sleep(self.reconnect_delay_s)

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Publish the buffer, then new messages as they come, until drained or the connection fails."""
        self._error = None
        inflight: set[asyncio.Task] = set()
        watcher = asyncio.create_task(self._watch(client))
        try:
            backlog = list(self.unacked.values())
            cursor = len(self.messages)
            while True:
                self._wake.clear()
                if self._error is not None:
                    raise aiomqtt.MqttError(f"publish failed: {self._error}")
                if self._drained():
                    return
                fresh = self.messages[cursor:]
                cursor += len(fresh)
                for msg in (*backlog, *fresh):
                    if msg.key not in self.unacked:
                        continue
                    if msg.key in self._attempted:
                        self.resends += 1
                    self._attempted.add(msg.key)
                    self.publishes += 1
                    task = asyncio.create_task(self._publish(client, msg))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                backlog = []
                waker = asyncio.create_task(self._wake.wait())
                await asyncio.wait([waker, watcher], return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                if watcher.done():
                    watcher.result()  # raises the MqttError of the lost connection
                    raise aiomqtt.MqttError("connection ended")
        finally:
            watcher.cancel()
            for task in inflight:
                task.cancel()
            await asyncio.gather(watcher, *inflight, return_exceptions=True)

    async def _watch(self, client: aiomqtt.Client) -> None:
        # Nothing is subscribed: the iterator only ever ends by raising when the connection is lost.
        async for _ in client.messages:
            pass

    async def _publish(self, client: aiomqtt.Client, msg: _Message) -> None:
        try:
            await client.publish(msg.topic, msg.payload, qos=1, timeout=self.publish_timeout_s)
        except aiomqtt.MqttError as exc:
            self._error = exc
            self._wake.set()
            return
        if self.unacked.pop(msg.key, None) is not None:
            self.acked.update(msg.fixes)
            self.acked_messages += 1
        self._wake.set()


async def forget_session(mqtt_url: str, client_id: str) -> None:
    """End a persistent MQTT session, so the broker stops queueing messages for a gateway that is gone."""
    host, port = parse_mqtt_url(mqtt_url)
    with contextlib.suppress(aiomqtt.MqttError):
        async with aiomqtt.Client(host, port, identifier=client_id, clean_session=True, timeout=5):
            pass


# ---------------------------------------------------------------------------------------------------
# Servers that can be restarted


class RestartableMosquitto:
    """A private Mosquitto with persistence on, on a fixed port, that can be stopped and started again."""

    def __init__(self) -> None:
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if binary is None:
            raise RuntimeError("mosquitto is not installed: run `make test`, which installs it")
        self.binary = binary
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="vigil-fault-mqtt-"))
        self.log = self.workdir / "mosquitto.log"
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\n"
            "max_queued_messages 100000\nmax_inflight_messages 100\n"
            # As root Mosquitto drops to user "mosquitto", which cannot write the root-owned directory.
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc, self.log)
        self.starts += 1

    def freeze(self) -> None:
        """SIGSTOP: the broker keeps its sockets open but reads and answers nothing, like a hung host."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the broker (thawing it if frozen); SIGTERM makes it save its persistence file first."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        proc.send_signal(signal.SIGCONT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class RestartablePostgres:
    """A private pgserver PostgreSQL (on a Unix socket) that can be stopped and started with pg_ctl."""

    def __init__(self) -> None:
        import pgserver

        self.workdir = Path(tempfile.mkdtemp(prefix="vpgf-"))
        self.server = pgserver.get_server(self.workdir / "data", cleanup_mode="delete")
        info = self.server.get_postmaster_info()
        self.pgdata = self.server.pgdata
        self.socket_dir = info.socket_dir
        self.port = info.port
        self.admin_url = self.server.get_uri("postgres")

    def _pg_ctl(self, args: list[str], timeout: float = 60.0) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(args, pgdata=self.pgdata, user=self.server.system_user, timeout=timeout)

    def stop(self, mode: str = "fast") -> None:
        """``fast``: open sessions are terminated, as on a restart for maintenance; ``immediate``: every
        process quits at once without a checkpoint, as on a crash (the next start replays the WAL)."""
        self._pg_ctl(["-w", "-m", mode, "stop"])

    def start(self) -> None:
        # The options pgserver started it with: no TCP, the same socket directory and port.
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-o", f"-p {self.port}",
                      "-l", str(self.server.log), "start"])

    def close(self) -> None:
        # pgserver remembers the first postmaster's pid only, so stop the current one ourselves.
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._pg_ctl(["-w", "-m", "immediate", "stop"], timeout=30)
        with contextlib.suppress(Exception):
            self.server.cleanup()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# Vigil processes


class VigilProcess:
    """``python -m vigil.cli ARGS`` with its output in a log file; ``kill()`` is SIGKILL."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.started = time.monotonic()
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vigil.cli", *args], cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    async def wait_for_output(self, text: str, timeout: float) -> float:
        """Seconds since start when ``text`` appeared in the output; raises if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                raise AssertionError(f"vigil exited with {self.proc.returncode} before {text!r}:\n{self.tail()}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} not seen within {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ---------------------------------------------------------------------------------------------------
# What was stored


async def stored_fixes(database_url: str, device_ids: list[str]) -> list[tuple[str, int]]:
    """Every stored fix of ``device_ids`` as (device id, ts UTC ms), one entry per row."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT d.device_id, (extract(epoch FROM f.ts) * 1000)::bigint"
            " FROM fixes f JOIN devices d ON d.id = f.device_id WHERE d.device_id = ANY(%s)",
            (device_ids,),
        )
        return [(d, int(ts)) for d, ts in await cur.fetchall()]


async def count_fixes(database_url: str, device_ids: list[str]) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM fixes f JOIN devices d ON d.id = f.device_id WHERE d.device_id = ANY(%s)",
            (device_ids,),
        )
        return (await cur.fetchone())[0]


async def count_dead_letters(database_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM dead_letters")
        return (await cur.fetchone())[0]


async def wait_for_fixes(database_url: str, device_ids: list[str], expected: int, timeout: float) -> int:
    """Poll until at least ``expected`` fixes of ``device_ids`` are stored or time runs out; the last count."""
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.OperationalError):
            n = await count_fixes(database_url, device_ids)
            if n >= expected:
                return n
        await asyncio.sleep(0.2)
    return n


async def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


async def assert_exactly_acked(database_url: str, publisher: AckingPublisher, *, settle_s: float = 1.0,
                               timeout: float = 45.0) -> list[tuple[str, int]]:
    """Wait until the acknowledged fixes are stored, let the pipeline settle, then assert the stored
    fixes are exactly the acknowledged ones: same count, no duplicate, same (device, ts) set."""
    assert not publisher.unacked, f"{len(publisher.unacked)} messages never acknowledged: {publisher.summary()}"
    assert publisher.acked == publisher.generated
    expected = len(publisher.acked)
    n = await wait_for_fixes(database_url, publisher.device_ids, expected, timeout)
    assert n >= expected, f"only {n} of {expected} acknowledged fixes stored within {timeout}s"
    await asyncio.sleep(settle_s)  # anything redelivered late would show up now
    rows = await stored_fixes(database_url, publisher.device_ids)
    stored = set(rows)
    assert len(rows) == len(stored), "duplicate (device, ts) rows"
    assert not publisher.acked - stored, f"acknowledged but not stored: {sorted(publisher.acked - stored)[:10]}"
    assert not stored - publisher.generated, f"stored but never published: {sorted(stored - publisher.generated)[:10]}"
    assert len(rows) == expected
    assert await count_dead_letters(database_url) == 0
    return rows
