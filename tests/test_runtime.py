"""The process group: embedded brokers, and `vigil up` starting and stopping cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import aiomqtt
import httpx
import psutil

from tests.services import free_port
from vigil.broker import EmbeddedBroker
from vigil.settings import parse_mqtt_url


async def round_trip(url: str) -> bytes:
    host, port = parse_mqtt_url(url)
    async with aiomqtt.Client(host, port, identifier=f"t-{uuid.uuid4().hex[:6]}") as client:
        await client.subscribe("vigil/v1/car/x/fix", qos=1)
        await client.publish("vigil/v1/car/x/fix", b"ping", qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                return bytes(message.payload)


async def test_embedded_amqtt_broker(tmp_path):
    broker = EmbeddedBroker(tmp_path, port=free_port(), prefer="amqtt")
    url = await broker.start()
    try:
        assert broker.kind.startswith("amqtt")
        assert await round_trip(url) == b"ping"
    finally:
        await broker.stop()


async def test_embedded_mosquitto_broker_leaves_no_process(tmp_path):
    broker = EmbeddedBroker(tmp_path, port=free_port())
    url = await broker.start()
    pid = broker._proc.pid
    try:
        assert broker.kind == "mosquitto"
        assert await round_trip(url) == b"ping"
    finally:
        await broker.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_vigil_up_starts_and_stops_on_ctrl_c(mqtt_url, database_url, tmp_path):
    port = free_port()
    env = dict(os.environ, VIGIL_MQTT_URL=mqtt_url, VIGIL_DATABASE_URL=database_url,
               VIGIL_HTTP_BIND=f"127.0.0.1:{port}", VIGIL_DATA_DIR=str(tmp_path),
               VIGIL_MQTT_CLIENT_ID=f"vigil-up-{uuid.uuid4().hex[:6]}")
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "up"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health["status"] == "ok"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "Vigil is up in" in out and "stopped." in out
    assert f"API           http://127.0.0.1:{port}" in out
