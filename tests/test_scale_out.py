"""Scale-out on real components: gateways sharing one MQTT subscription, writers on the Kafka bus."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import psycopg

from simulators.publisher import run_cars
from storage import Database, devices
from tests.helpers import count_rows, make_settings, wait_for_rows


async def test_two_gateways_share_the_stream_over_kafka(mqtt_url, database_url, kafka_bootstrap, runtime_factory):
    base = make_settings(mqtt_url, database_url, kafka=kafka_bootstrap)
    gateways = []
    for i in range(2):
        settings = make_settings(mqtt_url, database_url, kafka=kafka_bootstrap)
        settings = type(settings)(**{**{f: getattr(settings, f) for f in settings.__dataclass_fields__},
                                     "kafka_topic_prefix": base.kafka_topic_prefix, "mqtt_shared": True,
                                     "mqtt_share_group": f"g-{base.mqtt_client_id}"})
        gateways.append(await runtime_factory(settings, parts=frozenset({"gateway"})))
    writer = await runtime_factory(base, parts=frozenset({"writer"}))
    ids = [f"share-car-{i:02d}" for i in range(40)]
    await devices.provision(writer.db, ids, kind="car")
    assert await run_cars(mqtt_url, ids, fixes_per_car=25, realtime=False, seed=5) == 1000
    assert await wait_for_rows(writer.db, "fixes", 1000) == 1000
    await asyncio.sleep(0.5)
    assert await count_rows(writer.db, "fixes") == 1000
    received = [g.metrics.get("vigil_ingest_messages_total") for g in gateways]
    assert sum(received) == 1000 and min(received) > 0, received  # each gateway took a share


def test_vigil_gateway_workers_processes(mqtt_url, database_url, tmp_path):
    client_id = f"gw-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, VIGIL_MQTT_URL=mqtt_url, VIGIL_DATABASE_URL=database_url,
               VIGIL_DATA_DIR=str(tmp_path), VIGIL_MQTT_CLIENT_ID=client_id,
               VIGIL_MQTT_SHARE_GROUP=f"g-{client_id}")
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "gateway", "--workers", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        async def scenario():
            db = await Database.open(database_url)
            try:
                ids = [f"wk-car-{i:02d}" for i in range(20)]
                await devices.provision(db, ids, kind="car")
                for _ in range(600):      # both workers subscribed: start-up takes seconds on a busy machine
                    if sum("gateway subscribed to" in line for line in list(lines)) >= 2:
                        break
                    await asyncio.sleep(0.1)
                await run_cars(mqtt_url, ids, fixes_per_car=30, realtime=False, seed=6)
                assert await wait_for_rows(db, "fixes", 600) == 600
                await asyncio.sleep(0.5)
                assert await count_rows(db, "fixes") == 600
            finally:
                await db.close()

        asyncio.run(scenario())
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=10)
        out = "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "started 2 gateway processes" in out
    assert out.count("subscribed as") == 2 and f"{client_id}-1" in out and f"{client_id}-2" in out
