"""The alarm path in a process of its own: its own event loop, so an alarm is never queued behind the
main process's CPU work (decoding fix batches, COPY encoding, trip and geofence steps).

Child (``python -m vigil.alarm_process``, started by :class:`AlarmProcess`): the alarm lane (a gateway
on its own persistent MQTT session reading only :data:`alarms.service.ALARM_TOPICS`) → its own bus →
the storage writer (device events, deduplicated by event id) and the alarm service with every timer:
escalation, the catch-up sweep and supervision. Alarm transactions commit and NOTIFY; the operator
stream (in whichever process serves it) wakes on the notification.

The parent hands the settings over as one JSON line on the child's stdin and keeps that pipe open: the
child stops when it reads end-of-file (the parent is gone, however it died) and, on Linux, also gets
SIGTERM from the kernel then. The child writes JSON lines on stdout: ``{"ready": …}`` once it is
subscribed and serves its API, then its counters whenever they change (the parent shows them at
``/metrics``). Its log goes to the parent's stderr. If the child dies, the parent logs it and starts a
new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn

from vigil.broker import die_with_parent
from vigil.metrics import Metrics
from vigil.settings import Settings

log = logging.getLogger(__name__)

#: How long a child may take to connect to PostgreSQL and the broker and run its first sweep.
READY_TIMEOUT_S = 60.0
#: Restart delays after a crash: doubling from the first to the last, reset once a child ran a minute.
RESTART_DELAY_S = (0.5, 10.0)
#: Device kinds whose topics the alarm lane reads (alarms.service.ALARM_TOPICS), kept in its device cache,
#: refreshed this often (under the registry's 30 s time-to-live: a known device is never looked up).
LANE_KINDS = ("home", "pet")
REGISTRY_REFRESH_S = 10.0


def settings_json(settings: Settings) -> dict:
    return {f.name: (str(v) if isinstance(v, Path) else v)
            for f in dataclasses.fields(settings) for v in [getattr(settings, f.name)]}


def settings_from_json(values: dict) -> Settings:
    paths = {f.name for f in dataclasses.fields(Settings) if "Path" in str(f.type)}
    return Settings(**{k: Path(v) if k in paths and v is not None else v for k, v in values.items()})


# ------------------------------------------------------------------------------------------- parent


class AlarmProcess:
    """Starts the child, mirrors its counters, restarts it when it dies; :meth:`run` supervises."""

    def __init__(self, *, settings: Settings, mqtt_url: str, database_url: str, username: str | None,
                 password: str | None, metrics: Metrics) -> None:
        self.config = {"settings": settings_json(settings), "mqtt_url": mqtt_url, "database_url": database_url,
                       "username": username, "password": password}
        self.metrics = metrics
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.description = ""
        self.http_port: int | None = None
        self._stopping = False
        self._ready: asyncio.Future | None = None
        self._reader: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def http_url(self) -> str:
        """Base URL of the alarm process's assistance-centre API (its operator stream)."""
        host = self.config["settings"]["http_host"]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.http_port}"

    async def start(self) -> None:
        """Start a child and wait until it is subscribed; raises if it exits or hangs first."""
        self._ready = asyncio.get_running_loop().create_future()
        # The packages resolve from this checkout whatever the working directory (Vigil may run uninstalled).
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vigil.alarm_process", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent, env={**os.environ, "PYTHONPATH": path},
            # Its own session: a terminal's Ctrl-C reaches only the parent, which stops the child in order
            # (not as a crash to restart from).
            start_new_session=True)
        self.proc.stdin.write(json.dumps(self.config).encode() + b"\n")
        await self.proc.stdin.drain()
        self._reader = asyncio.create_task(self._read(self.proc, self._ready), name="alarm-process-reader")
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            await asyncio.wait([self._ready, exited], timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        if not self._ready.done():
            await self._kill()
            raise RuntimeError(f"alarm process not ready after {READY_TIMEOUT_S:.0f}s"
                               if self.proc.returncode is None else
                               f"alarm process exited with {self.proc.returncode} during start-up")
        self.description = self._ready.result()["ready"]
        # A restarted child serves on the same port: operator consoles reconnect where they were.
        self.http_port = self.config["http_port"] = self._ready.result()["http_port"]

    async def _read(self, proc: asyncio.subprocess.Process, ready: asyncio.Future) -> None:
        async for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "ready" in message and not ready.done():
                ready.set_result(message)
            if "counters" in message:
                self.metrics.mirror("alarm-process", message["counters"],
                                    {k: tuple(v) for k, v in message.get("described", {}).items()})

    async def run(self) -> None:
        """Until cancelled: when the child exits, log it and start another (with a growing delay)."""
        delay = RESTART_DELAY_S[0]
        while True:
            started = time.monotonic()
            code = await self.proc.wait()
            if self._stopping:
                return
            if time.monotonic() - started > 60:
                delay = RESTART_DELAY_S[0]
            log.error("alarm process (pid %d) exited with %s; starting a new one in %.1fs",
                      self.proc.pid, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_DELAY_S[1])
            try:
                await self.start()
            except RuntimeError as exc:
                log.error("%s", exc)
                continue
            self.restarts += 1
            log.warning("alarm process restarted (pid %d, restart %d)", self.proc.pid, self.restarts)

    async def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except asyncio.TimeoutError:
                log.warning("alarm process did not stop within %.0fs; killing it", timeout_s)
                await self._kill()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


# -------------------------------------------------------------------------------------------- child


async def serve(config: dict, stop: asyncio.Event) -> None:
    """The child's parts, until ``stop`` is set or one of them fails."""
    from alarms.service import ALARM_TOPICS, AlarmService
    from bus import open_bus
    from bus.base import EVENTS, FIXES
    from ingest.gateway import Gateway
    from storage import Database
    from storage.consumer import StorageConsumer

    s = settings_from_json(config["settings"])
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        db = await Database.open(config["database_url"], partitioning=s.partitioning,
                                 ahead_days=s.partitions_ahead_days, min_size=2, max_size=6)
        stack.push_async_callback(db.close)
        bus = open_bus(s)
        await bus.start()
        stack.push_async_callback(bus.stop)
        tasks: list[asyncio.Task] = []
        if not s.kafka_bootstrap:
            # Own in-process bus: the lane's batches are durable (acknowledged to the broker) once this
            # writer stored them; the main process's writer skips its copy by event id.
            for topic in (FIXES, EVENTS):
                bus.subscribe(topic, "storage")
            tasks.append(asyncio.create_task(StorageConsumer(db=db, bus=bus, metrics=metrics).run(), name="writer"))
        service = AlarmService(db=db, bus=bus, metrics=metrics, config=s.alarm_config(),
                               supervise_s=float(s.alarm_supervision_every_s))
        bus.subscribe(EVENTS, "alarms")
        tasks.append(asyncio.create_task(service.run(), name="alarm-service"))
        lane_settings = dataclasses.replace(s, mqtt_client_id=f"{s.mqtt_client_id}-alarms",
                                            mqtt_share_group=f"{s.mqtt_share_group}-alarms")
        lane = Gateway(settings=lane_settings, mqtt_url=config["mqtt_url"], db=db, bus=bus, metrics=Metrics(),
                       username=config["username"], password=config["password"], topics=ALARM_TOPICS,
                       store_rejects=False)
        # Home kits and pet trackers (the kinds whose topics the lane reads) stay cached: an alarm never
        # waits for its device's look-up in a PostgreSQL busy with the main writer's COPY.
        await lane.registry.warm(LANE_KINDS)
        tasks.append(asyncio.create_task(lane.registry.keep_warm(LANE_KINDS, REGISTRY_REFRESH_S), name="lane-devices"))
        tasks.append(asyncio.create_task(lane.run(), name="alarm-lane"))
        server = None
        try:
            for event in (service.ready, lane.subscribed):
                waiter = asyncio.ensure_future(event.wait())
                await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                _raise_if_done(tasks)
            server, port = await _start_api(s, db, config.get("http_port", s.alarm_http_port), tasks)
            _emit({"ready": f"{', '.join(ALARM_TOPICS)} as {lane_settings.mqtt_client_id}", "http_port": port})
            stopper = asyncio.ensure_future(stop.wait())
            sent = None
            while not stop.is_set():
                await asyncio.wait([stopper, *tasks], timeout=0.1, return_when=asyncio.FIRST_COMPLETED)
                _raise_if_done(tasks)
                if (counters := metrics.counters()) != sent:
                    _emit({"counters": counters, "described": metrics.describes()})
                    sent = counters
        finally:
            lane.stopping = True
            if server is not None:
                server.should_exit = True  # closes its listening socket, so a new process can bind the port
                await asyncio.wait([t for t in tasks if t.get_name() == "api"], timeout=5)
                await server.config.app.state.alarm_feed.close()
            for task in reversed(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class _ApiServer(uvicorn.Server):
    """uvicorn leaving the signals to this process's own handlers."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def _start_api(s: Settings, db, port: int | None, tasks: list[asyncio.Task]):
    """The assistance-centre API on ``port`` (None: one the OS picks); returns (server, port)."""
    from accounts.config import AuthConfig
    from api.alarm_app import create_alarm_app

    sock = socket.socket(socket.AF_INET6 if ":" in s.http_host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((s.http_host, port or 0))
    app = create_alarm_app(db=db, auth=AuthConfig.from_settings(s))
    server = _ApiServer(uvicorn.Config(app, log_level="warning", lifespan="off"))
    tasks.append(asyncio.create_task(server.serve(sockets=[sock]), name="api"))
    while not server.started:
        _raise_if_done(tasks)
        await asyncio.sleep(0.02)
    return server, sock.getsockname()[1]


def _raise_if_done(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        if task.done():
            task.result()
            raise RuntimeError(f"{task.get_name()} stopped")


def _emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


#: The alarm process's nice value: it sleeps almost always, and when an alarm arrives it should get a core
#: before the ingest work beside it (bench/alarms.py, idle 2-core machine, two A/B pairs: stream p99 89 and
#: 120 ms at nice 0, 69 and 76 ms at -10). Needs root or CAP_SYS_NICE; otherwise it stays at 0.
ALARM_NICE = -10


def _raise_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, ALARM_NICE)
    except OSError as exc:
        print(f"alarm process stays at nice {os.getpriority(os.PRIO_PROCESS, 0)} ({exc.strerror})", file=sys.stderr)


async def _child_main() -> int:
    _raise_priority()
    loop = asyncio.get_running_loop()
    config = json.loads(await loop.run_in_executor(None, sys.stdin.buffer.readline))
    logging.basicConfig(level=str(config["settings"]["log_level"]).upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s [alarm process]: %(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def watch_parent() -> None:
        # Raw reads until end-of-file (the parent closed the pipe or died); not sys.stdin's buffered
        # reader, whose lock a daemon thread would still hold at interpreter shutdown.
        while os.read(0, 4096):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    await serve(config, stop)
    return 0


def main() -> int:
    try:
        return asyncio.run(_child_main())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
