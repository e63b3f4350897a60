"""Faults mid-stream on real components: every fix a device had acknowledged is stored exactly once.

Each test runs a fleet of cars publishing at a steady pace with a device's discipline (a message stays
buffered until its PUBACK, and is published again after a reconnect), breaks one component while the
stream flows, brings it back, lets the stream run on, and then compares the stored (device, ts) set
with the acknowledged one: same count, no duplicate, nothing missing, nothing invented.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid

import pytest

from storage import devices
from tests.faults import (
    AckingPublisher,
    RestartableMosquitto,
    RestartablePostgres,
    VigilProcess,
    assert_exactly_acked,
    forget_session,
    stored_fixes,
    wait_for_fixes,
    wait_until,
)
from tests.helpers import make_settings
from tests.services import scratch_database

DEVICES = 10
RATE_HZ = 20.0  # messages per device per second: 200 messages/s in all
MAX_TICKS = int(RATE_HZ * 60)  # the stream is ended explicitly; this only bounds a run gone wrong
AFTER_RECOVERY_S = 2.0  # the stream keeps flowing this long once the broken part is back


def _fleet(tag: str) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"fault-{tag}-{run}-{i:02d}" for i in range(DEVICES)]


def _report(name: str, publisher: AckingPublisher, stored: int, **timings) -> None:
    line = {"test": name, "stored": stored, **publisher.summary(), **{k: round(v, 2) for k, v in timings.items()}}
    print(f"\nFAULT {json.dumps(line)}")


async def _snapshot(database_url: str, publisher: AckingPublisher) -> tuple[int, int, int]:
    """(acknowledged, stored, acknowledged but not stored) fixes right now: the last is what the broker
    (or the bus) holds for Vigil at the moment of the fault, and must all arrive later."""
    acked = set(publisher.acked)
    stored = set(await stored_fixes(database_url, publisher.device_ids))
    return len(acked), len(stored), len(acked - stored)


async def _finish(run: asyncio.Task, publisher: AckingPublisher, timeout: float = 60.0) -> None:
    """Let the stream flow a little longer, end it, and wait until every message is acknowledged."""
    assert publisher.generating, "the stream ended before the fault was over; the test proves nothing"
    await asyncio.sleep(AFTER_RECOVERY_S)
    publisher.stop_generating()
    await asyncio.wait_for(run, timeout)


async def _cancel(run: asyncio.Task | None) -> None:
    if run is not None and not run.done():
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)


async def test_gateway_sigkill_and_restart_mid_stream(mqtt_url, database_url, db, tmp_path):
    """`vigil gateway` is killed -9 while storing; a new one on the same client id resumes the session."""
    ids = _fleet("gwkill")
    await devices.provision(db, ids, kind="car")
    env = {
        "VIGIL_MQTT_URL": mqtt_url, "VIGIL_DATABASE_URL": database_url, "VIGIL_DATA_DIR": str(tmp_path),
        "VIGIL_MQTT_CLIENT_ID": f"fault-gw-{uuid.uuid4().hex[:8]}",
        # Batches of ~250 ms keep tens of messages received but unacknowledged at any instant, so the
        # kill always leaves in-flight messages for the broker to redeliver.
        "VIGIL_BATCH_MAX_DELAY_MS": "250",
    }
    publisher = AckingPublisher(mqtt_url, ids, rate_hz=RATE_HZ)
    processes: list[VigilProcess] = []
    run = None
    try:
        first = VigilProcess(["gateway"], env, tmp_path / "gateway-1.log")
        processes.append(first)
        # The persistent session must exist before the stream starts, or the broker keeps nothing for it.
        await first.wait_for_output("gateway subscribed to", 30)
        t0 = time.monotonic()
        run = asyncio.create_task(publisher.run(ticks=MAX_TICKS))
        assert await wait_for_fixes(database_url, ids, 400, 30) >= 400, first.tail()
        first.kill()
        t_kill = time.monotonic()
        acked_at_kill, stored_at_kill, backlog = await _snapshot(database_url, publisher)
        await asyncio.sleep(1.0)  # the stream goes on with no gateway: the broker queues for the session

        second = VigilProcess(["gateway"], env, tmp_path / "gateway-2.log")
        processes.append(second)
        await second.wait_for_output("gateway subscribed to", 30)
        t_back = time.monotonic()
        await _finish(run, publisher)
        rows = await assert_exactly_acked(database_url, publisher)
        assert stored_at_kill < len(rows)
        _report("gateway_sigkill", publisher, len(rows), acked_at_kill=acked_at_kill, stored_at_kill=stored_at_kill,
                backlog_at_kill=backlog, killed_after_s=t_kill - t0, gateway_down_s=t_back - t_kill,
                total_s=time.monotonic() - t0)
    finally:
        await _cancel(run)
        for proc in processes:
            proc.kill()
        await forget_session(mqtt_url, env["VIGIL_MQTT_CLIENT_ID"])


async def test_broker_restart_mid_stream(database_url, runtime_factory):
    """Mosquitto (persistence on) is stopped and started again; gateway and devices reconnect."""
    broker = RestartableMosquitto()
    run = None
    try:
        broker.start()
        # ~250 ms batches: the gateway always holds tens of received, unacknowledged messages.
        settings = dataclasses.replace(make_settings(broker.url, database_url), batch_max_delay_ms=250)
        runtime = await runtime_factory(settings)
        gateway = runtime.gateway
        ids = _fleet("broker")
        await devices.provision(runtime.db, ids, kind="car")
        publisher = AckingPublisher(broker.url, ids, rate_hz=RATE_HZ)
        t0 = time.monotonic()
        run = asyncio.create_task(publisher.run(ticks=MAX_TICKS))
        assert await wait_for_fixes(database_url, ids, 400, 30) >= 400
        acked_at_stop, stored_at_stop, backlog = await _snapshot(database_url, publisher)
        # Frozen first, so publishes and the gateway's PUBACKs are in flight when the broker goes.
        broker.freeze()
        await asyncio.sleep(0.5)
        broker.stop()  # SIGTERM: Mosquitto saves sessions, queued and in-flight messages on the way out
        t_stop = time.monotonic()
        assert await wait_until(lambda: not gateway.subscribed.is_set(), 5), "gateway did not notice the broker go"
        await asyncio.sleep(2.0)
        broker.start()
        t_start = time.monotonic()
        assert await wait_until(gateway.subscribed.is_set, 30), "gateway did not come back to the broker"
        t_gateway_back = time.monotonic()
        await _finish(run, publisher)
        rows = await assert_exactly_acked(database_url, publisher)
        assert publisher.connection_losses >= 1
        assert stored_at_stop < len(rows)
        _report("broker_restart", publisher, len(rows), acked_at_stop=acked_at_stop, stored_at_stop=stored_at_stop,
                backlog_at_stop=backlog, duplicates=runtime.metrics.get("vigil_storage_duplicates_total"),
                stopped_after_s=t_stop - t0, broker_down_s=t_start - t_stop,
                gateway_resubscribed_after_s=t_gateway_back - t_start, total_s=time.monotonic() - t0)
    finally:
        await _cancel(run)
        broker.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restart_mid_stream(mqtt_url, runtime_factory, mode):
    """PostgreSQL is shut down for a few seconds, cleanly or as by a crash; the writer retries, the pool
    reconnects."""
    pg = await asyncio.to_thread(RestartablePostgres)
    run = None
    try:
        with scratch_database(pg.admin_url) as database_url:
            settings = make_settings(mqtt_url, database_url)
            runtime = await runtime_factory(settings)
            try:
                ids = _fleet("pg")
                await devices.provision(runtime.db, ids, kind="car")
                publisher = AckingPublisher(mqtt_url, ids, rate_hz=RATE_HZ)
                t0 = time.monotonic()
                run = asyncio.create_task(publisher.run(ticks=MAX_TICKS))
                assert await wait_for_fixes(database_url, ids, 400, 30) >= 400
                await asyncio.to_thread(pg.stop, mode)
                t_stop = time.monotonic()
                stored_at_stop = int(runtime.metrics.get("vigil_storage_fixes_total"))
                acked_at_stop = publisher.acked_fixes
                await asyncio.sleep(3.0)
                await asyncio.to_thread(pg.start)
                t_start = time.monotonic()
                # Storing resumes: the writer's retry finds a fresh connection in the pool.
                assert await wait_until(
                    lambda: runtime.metrics.get("vigil_storage_fixes_total") > stored_at_stop, 30, 0.1
                ), "nothing stored after PostgreSQL came back"
                t_storing = time.monotonic()
                await _finish(run, publisher)
                rows = await assert_exactly_acked(database_url, publisher)
                assert stored_at_stop < len(rows)
                _report(f"postgres_restart_{mode}", publisher, len(rows), acked_at_stop=acked_at_stop,
                        stored_at_stop=stored_at_stop, duplicates=runtime.metrics.get("vigil_storage_duplicates_total"),
                        stopped_after_s=t_stop - t0, pg_down_s=t_start - t_stop,
                        storing_again_after_s=t_storing - t_start, total_s=time.monotonic() - t0)
            finally:
                await _cancel(run)
                await runtime.stop()  # before the database is dropped under it
                await forget_session(mqtt_url, settings.mqtt_client_id)
    finally:
        await asyncio.to_thread(pg.close)


async def test_kafka_writer_sigkill_and_replacement_mid_stream(
    mqtt_url, database_url, kafka_bootstrap, runtime_factory, tmp_path
):
    """`vigil writer` on the Kafka bus is killed -9 while storing; its replacement takes over the group."""
    settings = make_settings(mqtt_url, database_url, kafka=kafka_bootstrap)
    runtime = await runtime_factory(settings, parts=frozenset({"gateway"}))
    ids = _fleet("kafka")
    await devices.provision(runtime.db, ids, kind="car")
    env = {
        "VIGIL_KAFKA_BOOTSTRAP": kafka_bootstrap, "VIGIL_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "VIGIL_DATABASE_URL": database_url, "VIGIL_MQTT_URL": mqtt_url, "VIGIL_DATA_DIR": str(tmp_path),
    }
    publisher = AckingPublisher(mqtt_url, ids, rate_hz=RATE_HZ)
    processes: list[VigilProcess] = []
    run = None
    try:
        first = VigilProcess(["writer"], env, tmp_path / "writer-1.log")
        processes.append(first)
        t0 = time.monotonic()
        run = asyncio.create_task(publisher.run(ticks=MAX_TICKS))
        # Joining the group takes Tansu about half a session timeout (more if a departed member lingers).
        assert await wait_for_fixes(database_url, ids, 400, 40) >= 400, first.tail()
        first.kill()
        t_kill = time.monotonic()
        acked_at_kill, stored_at_kill, backlog = await _snapshot(database_url, publisher)

        second = VigilProcess(["writer"], env, tmp_path / "writer-2.log")
        processes.append(second)
        # The killed members hold their partitions until their session times out (10 s).
        assert await wait_for_fixes(database_url, ids, stored_at_kill + 1, 45) > stored_at_kill, second.tail()
        t_storing = time.monotonic()
        await _finish(run, publisher)
        rows = await assert_exactly_acked(database_url, publisher)
        assert stored_at_kill < len(rows)
        _report("kafka_writer_sigkill", publisher, len(rows), acked_at_kill=acked_at_kill,
                stored_at_kill=stored_at_kill, backlog_at_kill=backlog, killed_after_s=t_kill - t0,
                replacement_storing_after_s=t_storing - t_kill, total_s=time.monotonic() - t0)
    finally:
        await _cancel(run)
        for proc in processes:
            proc.kill()
        await runtime.stop()
        await forget_session(mqtt_url, settings.mqtt_client_id)
