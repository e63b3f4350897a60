"""The process group behind ``vigil up``: broker, database, bus, storage writer, gateway and API.

Every part is started in order and stopped in reverse; embedded defaults stand in for what the
settings leave unset.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field

import uvicorn

from accounts.config import AuthConfig
from alarms.service import ALARM_TOPICS, OFF_LANE_TYPES, AlarmService
from api.app import create_app
from api.certificate_service import certificate_context
from api.find_service import WalkGraph
from bus import open_bus
from bus.base import EVENTS, FIXES, Bus
from ingest import mqtt_auth
from ingest.gateway import Gateway
from ingest.teltonika_tcp import TeltonikaListener
from roads import bundled_pbf
from trips.processor import TripProcessor
from geofence.processor import GeofenceProcessor
from notify import CHANNELS, Dispatcher, LoggingSender
from storage import Database, EmbeddedPostgres
from storage.consumer import StorageConsumer
from vigil.alarm_process import AlarmProcess
from vigil.broker import EmbeddedBroker
from vigil.metrics import Metrics
from vigil.retry import retry_forever
from vigil.settings import Settings

log = logging.getLogger(__name__)


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns Ctrl-C and stops every part."""

    def install_signal_handlers(self) -> None:
        return None

    @contextlib.contextmanager
    def capture_signals(self):
        yield


#: The parts a runtime can run. The broker and database are started only when not configured.
PARTS = frozenset({"gateway", "writer", "trips", "api", "geofence", "notify", "alarms"})


@dataclass
class Runtime:
    settings: Settings
    parts: frozenset[str] = PARTS
    mqtt_url: str = ""
    database_url: str = ""
    db: Database | None = None
    bus: Bus | None = None
    gateway: Gateway | None = None
    metrics: Metrics = field(default_factory=Metrics)
    broker: EmbeddedBroker | None = None
    trip_processor: TripProcessor | None = None
    geofence_processor: GeofenceProcessor | None = None
    alarm_service: AlarmService | None = None
    alarm_lane: Gateway | None = None
    alarm_db: Database | None = None
    alarm_process: AlarmProcess | None = None
    teltonika_port: int | None = None
    mqtt_credentials: tuple[str, str] | None = None
    startup_s: float = 0.0
    descriptions: list[str] = field(default_factory=list)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _api: _ApiServer | None = None
    walk_graph: WalkGraph = field(default_factory=WalkGraph)
    _walk_graph_task: asyncio.Task | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    @property
    def alarm_http_url(self) -> str:
        """Where the operator stream is quickest: the alarm process's API when it runs, else the main one."""
        return self.alarm_process.http_url if self.alarm_process is not None else self.http_url

    async def start(self) -> None:
        t0 = time.perf_counter()
        s = self.settings
        try:
            await self._start_parts(s)
        except BaseException:
            await self.stop()
            raise
        self.startup_s = time.perf_counter() - t0

    async def _start_parts(self, s: Settings) -> None:
        unknown = set(self.parts) - PARTS
        if unknown:
            raise ValueError(f"unknown runtime parts {sorted(unknown)}")
        if "gateway" in self.parts and not s.kafka_bootstrap:
            # In-process, a batch is durable once this process's writer stored it: no writer, no acks.
            self.parts = frozenset(self.parts | {"writer"})
        if "gateway" not in self.parts:
            self.mqtt_url = s.mqtt_url or ""
        elif s.mqtt_url:
            self.mqtt_url = s.mqtt_url
            self.descriptions.append(f"MQTT broker   {self.mqtt_url} (configured)")
        await self._start_database(s)
        if "gateway" in self.parts and not s.mqtt_url:
            await self._start_embedded_broker(s)

        self.bus = open_bus(s)
        await self.bus.start()
        self._stack.push_async_callback(self.bus.stop)
        self.descriptions.append(f"bus           {'Kafka ' + s.kafka_bootstrap if s.kafka_bootstrap else 'in-process'}")

        if "writer" in self.parts:
            consumer = StorageConsumer(db=self.db, bus=self.bus, metrics=self.metrics)
            for topic in (FIXES, EVENTS):
                self.bus.subscribe(topic, "storage")
            self._spawn(consumer.run(), "storage-writer")
            self.descriptions.append("writer        storing fixes and events (binary COPY)")
        if "trips" in self.parts:
            self.trip_processor = TripProcessor(db=self.db, bus=self.bus, metrics=self.metrics)
            self.bus.subscribe(FIXES, "trips")
            self._spawn(self.trip_processor.run(), "trip-processor")
            await self._until(self.trip_processor.ready, self._tasks[-1], "trip processor")
            self.descriptions.append("trips         segmenting trips, scoring driving style")
        if "geofence" in self.parts:
            self.geofence_processor = GeofenceProcessor(db=self.db, bus=self.bus, metrics=self.metrics,
                                                        notice_max_age_s=s.geofence_notice_max_age_s)
            self.bus.subscribe(FIXES, "geofence")
            self._spawn(self.geofence_processor.run(), "geofence-processor")
            await self._until(self.geofence_processor.ready, self._tasks[-1], "geofence processor")
            self.descriptions.append("geofence      enter/exit/cross events, customer notices")
        if "notify" in self.parts:
            dispatcher = Dispatcher(db=self.db, senders={c: LoggingSender(c) for c in CHANNELS})
            self._spawn(dispatcher.run(), "notify-dispatcher")
            self.descriptions.append("notify        sending queued notices (logging senders)")
        if "alarms" in self.parts and self._separate_alarms(s):
            await self._start_off_lane_alarms(s)
        elif "alarms" in self.parts:
            # Its own small pool: an alarm never waits for a connection behind the writer's COPYs.
            self.alarm_db = await Database.open(self.database_url, partitioning=s.partitioning, min_size=2, max_size=4)
            self._stack.push_async_callback(self.alarm_db.close)
            self.alarm_service = AlarmService(db=self.alarm_db, bus=self.bus, metrics=self.metrics,
                                              config=s.alarm_config(), supervise_s=float(s.alarm_supervision_every_s))
            self.bus.subscribe(EVENTS, "alarms")
            self._spawn(self.alarm_service.run(), "alarm-service")
            await self._until(self.alarm_service.ready, self._tasks[-1], "alarm service")
            self.descriptions.append("alarms        escalation chains, supervision, assistance-centre queue")
        if "gateway" in self.parts:
            user, password = self.mqtt_credentials or (s.mqtt_username, s.mqtt_password)
            self.gateway = Gateway(settings=s, mqtt_url=self.mqtt_url, db=self.db, bus=self.bus, metrics=self.metrics,
                                   username=user, password=password)
            self._spawn(self.gateway.run(), "gateway")
            await self._until(self.gateway.subscribed, self._tasks[-1], "gateway", timeout=30)
            if self._separate_alarms(s):
                await self._start_alarm_process(s, user, password)
            elif s.alarm_lane:
                await self._start_alarm_lane(s, user, password)
            shared = " (shared subscription)" if s.mqtt_shared else ""
            self.descriptions.append(f"gateway       subscribed as {s.mqtt_client_id}{shared}")
            if s.teltonika_tcp_port is not None:
                listener = TeltonikaListener(submit=self.gateway.submit, registry=self.gateway.registry,
                                             host=s.http_host, port=s.teltonika_tcp_port)
                self.teltonika_port = await listener.start()
                self._stack.push_async_callback(listener.stop)
                self.descriptions.append(f"Teltonika     TCP {s.http_host}:{self.teltonika_port}")
        if "api" in self.parts:
            await self._start_api(s)

    def _separate_alarms(self, s: Settings) -> bool:
        return s.alarm_process and s.alarm_lane and {"alarms", "gateway"} <= self.parts

    async def _start_off_lane_alarms(self, s: Settings) -> None:
        """With the alarm process: on the in-process bus, apply here only the alarm events no alarm topic
        carries (the trip processor's crashes); timers, sweep and supervision run in the alarm process.
        On Kafka the alarm process consumes the whole events topic itself."""
        if s.kafka_bootstrap:
            return
        self.alarm_db = await Database.open(self.database_url, partitioning=s.partitioning, min_size=1, max_size=2)
        self._stack.push_async_callback(self.alarm_db.close)
        self.alarm_service = AlarmService(db=self.alarm_db, bus=self.bus, metrics=self.metrics,
                                          config=s.alarm_config(), timers=False, types=OFF_LANE_TYPES)
        self.bus.subscribe(EVENTS, "alarms")
        self._spawn(self.alarm_service.run(), "alarm-service")
        await self._until(self.alarm_service.ready, self._tasks[-1], "alarm service")

    async def _start_alarm_process(self, s: Settings, user: str | None, password: str | None) -> None:
        """The alarm lane and the alarm service (with every timer) in a child process of their own."""
        self.alarm_process = AlarmProcess(settings=s, mqtt_url=self.mqtt_url, database_url=self.database_url,
                                          username=user, password=password, metrics=self.metrics)
        await self.alarm_process.start()
        self._stack.push_async_callback(self.alarm_process.stop)
        self._spawn(self.alarm_process.run(), "alarm-process")
        self.descriptions.append(f"alarms        process {self.alarm_process.pid}: lane"
                                 f" {self.alarm_process.description}, escalation, supervision")
        self.descriptions.append(f"alarm API     {self.alarm_process.http_url}  (operator stream on the alarm"
                                 " process's own loop)")

    async def _start_alarm_lane(self, s: Settings, user: str | None, password: str | None) -> None:
        """A second gateway on its own MQTT session reading only alarm-bearing topics, so an alarm is not
        queued in the broker or the gateway behind fixes. The main gateway reads them too (and is the one
        that dead-letters bad ones); storage and the alarm service skip the second copy by event id."""
        lane_settings = dataclasses.replace(s, mqtt_client_id=f"{s.mqtt_client_id}-alarms",
                                            mqtt_share_group=f"{s.mqtt_share_group}-alarms")
        # Device look-ups on the alarm pool too, when there is one: not behind the writer's connections.
        self.alarm_lane = Gateway(settings=lane_settings, mqtt_url=self.mqtt_url, db=self.alarm_db or self.db,
                                  bus=self.bus, metrics=Metrics(), username=user, password=password,
                                  topics=ALARM_TOPICS, store_rejects=False)
        self._spawn(self.alarm_lane.run(), "alarm-lane")
        await self._until(self.alarm_lane.subscribed, self._tasks[-1], "alarm lane", timeout=30)
        self.descriptions.append(f"alarm lane    {', '.join(ALARM_TOPICS)} as {lane_settings.mqtt_client_id}")

    async def _start_database(self, s: Settings) -> None:
        if s.database_url:
            self.database_url = s.database_url
            self.descriptions.append("database      configured PostgreSQL (VIGIL_DATABASE_URL)")
        else:
            pg = EmbeddedPostgres(s.data_dir)
            self.database_url = await pg.start()
            self._stack.push_async_callback(pg.stop)
            self.descriptions.append(f"database      embedded PostgreSQL under {pg.pgdata}")
        self.db = await Database.open(self.database_url, partitioning=s.partitioning, ahead_days=s.partitions_ahead_days)
        self._stack.push_async_callback(self.db.close)
        self.descriptions.append(f"fixes table   {self.db.fixes_mode} partitioning")

    async def _start_embedded_broker(self, s: Settings) -> None:
        """Mosquitto with per-device passwords and ACL generated from the database (amqtt: anonymous)."""
        broker = EmbeddedBroker(s.data_dir)
        auth_dir = s.data_dir / "mosquitto"
        auth_conf = ""
        if broker.prefers_mosquitto():
            self.mqtt_credentials = ("vigil-gateway", await mqtt_auth.issue_account(self.db, "vigil-gateway", "gateway"))
            passwd, acl = await mqtt_auth.write_broker_files(self.db, auth_dir)
            auth_conf = mqtt_auth.mosquitto_auth_conf(passwd, acl)
        self.mqtt_url = await broker.start(auth_conf)
        self.broker = broker
        self._stack.push_async_callback(broker.stop)
        mode = "per-device passwords + ACL" if broker.authenticated else "anonymous"
        self.descriptions.append(f"MQTT broker   {self.mqtt_url} (embedded {broker.kind}, {mode})")
        if broker.authenticated:
            self._spawn(self._refresh_broker_auth(auth_dir), "broker-auth")

    async def _refresh_broker_auth(self, auth_dir, every_s: float = 5.0) -> None:
        """Regenerate the password file and ACL; reload Mosquitto when devices or accounts changed."""
        previous = None
        while True:
            passwd, acl = await retry_forever(mqtt_auth.write_broker_files, self.db, auth_dir,
                                              what="writing broker auth files", log=log)
            current = (passwd.read_bytes(), acl.read_bytes())
            if previous is not None and current != previous:
                self.broker.reload()
                log.info("device credentials changed: Mosquitto reloaded its password file and ACL")
            previous = current
            await asyncio.sleep(every_s)

    async def issue_simulator_account(self) -> tuple[str, str] | None:
        """An account allowed to publish for every device (load generators, the demo), when auth is on."""
        if self.broker is None or not self.broker.authenticated:
            return None
        password = await mqtt_auth.issue_account(self.db, "vigil-simulator", "simulator")
        await mqtt_auth.write_broker_files(self.db, self.settings.data_dir / "mosquitto")
        self.broker.reload()
        await asyncio.sleep(0.2)  # Mosquitto reloads asynchronously on SIGHUP
        return "vigil-simulator", password

    async def _start_api(self, s: Settings) -> None:
        self._start_walk_graph(s)
        app = create_app(db=self.db, metrics=self.metrics, certificates=certificate_context(s),
                         walk_graph=self.walk_graph, walk_speed_kmh=s.walk_speed_kmh,
                         auth=AuthConfig.from_settings(s))
        self._stack.push_async_callback(app.state.alarm_feed.close)
        if self.alarm_process is not None:
            app.state.alarm_api_port = self.alarm_process.http_port  # kept across the child's restarts
        config = uvicorn.Config(app, host=s.http_host, port=s.http_port, log_level="warning", lifespan="off")
        self._api = _ApiServer(config)
        self._spawn(self._api.serve(), "api")
        while not self._api.started:
            if self._tasks[-1].done():
                self._tasks[-1].result()
                raise RuntimeError(f"API could not start on {s.http_bind}")
            await asyncio.sleep(0.02)
        self.descriptions.append(f"API           {self.http_url}  (docs {self.http_url}/docs)")

    def _start_walk_graph(self, s: Settings) -> None:
        """Load the walking graph in the background: the API answers (straight lines) meanwhile. Not a
        part in ``_tasks``: it finishes, and ``wait`` treats a finished part as a failure."""
        pbf = s.osm_pbf if s.osm_pbf is not None else bundled_pbf()
        if pbf is None or str(pbf) == "off":
            self.descriptions.append("walking graph off (Find-Vehicle answers with straight lines)")
            return
        self.walk_graph.status, self.walk_graph.detail = "loading", f"loading {pbf.name}"  # before any request
        self._walk_graph_task = asyncio.create_task(self.walk_graph.load(pbf, cache_dir=s.data_dir / "roads"),
                                                    name="walk-graph")
        self.descriptions.append(f"walking graph {pbf.name} (loading in the background)")

    async def _until(self, ready: asyncio.Event, task: asyncio.Task, what: str, timeout: float = 300) -> None:
        """Wait for a part to be ready; fail at once if it dies first."""
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait([waiter, task], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()
            raise RuntimeError(f"{what} stopped during start-up")
        if not ready.is_set():
            raise RuntimeError(f"{what} not ready after {timeout:.0f}s")

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    async def wait(self) -> None:
        """Until any part stops on its own (which is a failure: they run forever)."""
        await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)

    async def stop(self) -> None:
        for gateway in (self.gateway, self.alarm_lane):
            if gateway is not None:
                gateway.stopping = True
        if self._api is not None:
            # Let uvicorn close its listening socket itself, so the port is free at once.
            self._api.should_exit = True
            api_task = next((t for t in self._tasks if t.get_name() == "api"), None)
            if api_task is not None:
                await asyncio.wait([api_task], timeout=5)
        if self._walk_graph_task is not None:
            self._walk_graph_task.cancel()
        for task in reversed(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        processor, self.trip_processor = self.trip_processor, None
        if processor is not None and processor.ready.is_set():
            try:
                await processor.save()
            except Exception:
                log.exception("could not save the trip processor's state; it will replay on start")
        geofence, self.geofence_processor = self.geofence_processor, None
        if geofence is not None and geofence.ready.is_set():
            try:
                await geofence.save()
            except Exception:
                log.exception("could not save the geofence processor's state; it will replay on start")
        await self._stack.aclose()


def _report_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception())
