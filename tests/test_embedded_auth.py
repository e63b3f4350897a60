"""`vigil up` defaults: the embedded Mosquitto only admits provisioned devices, each on its own topics."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path

import aiomqtt
import pytest

from ingest import mqtt_auth
from simulators.cars import encode_fix_message
from simulators.publisher import run_cars
from storage import devices
from tests.helpers import count_rows, make_settings, wait_for_rows
from vigil.settings import parse_mqtt_url


def fix_message(device_id: str, ts_ms: int) -> bytes:
    fix = {"ts": ts_ms, "lat": 60.17, "lon": 24.94, "speed_kmh": 10.0, "heading_deg": 0.0, "accuracy_m": 5.0,
           "ignition": True, "accel_g": [0.0, 0.0, 1.0]}
    return encode_fix_message(device_id, 1, [fix])


async def test_embedded_broker_authenticates_devices(database_url, runtime_factory):
    settings = dataclasses.replace(
        make_settings("mqtt://unused", database_url), mqtt_url=None,
        data_dir=Path(tempfile.mkdtemp(prefix="vigil-auth-")),
    )
    runtime = await runtime_factory(settings)
    assert runtime.broker is not None and runtime.broker.authenticated
    await devices.provision(runtime.db, ["car-a", "car-b"], kind="car")
    passwords = await mqtt_auth.issue_device_credentials(runtime.db, ["car-a", "car-b"])
    host, port = parse_mqtt_url(runtime.mqtt_url)

    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(host, port, identifier="anonymous-1"):
            pass

    # The runtime notices the new credentials within its refresh period and reloads Mosquitto.
    now_ms = 1_795_000_000_000
    for attempt in range(40):
        try:
            async with aiomqtt.Client(host, port, username="car-a", password=passwords["car-a"]) as a:
                await a.publish("vigil/v1/car/car-b/fix", fix_message("car-b", now_ms), qos=1)  # not its topic
                await a.publish("vigil/v1/car/car-a/fix", fix_message("car-a", now_ms), qos=1)
            break
        except aiomqtt.MqttError:
            await asyncio.sleep(0.25)
    else:
        pytest.fail("car-a was never admitted")
    assert await wait_for_rows(runtime.db, "fixes", 1) == 1
    async with runtime.db.connection() as conn:
        cur = await conn.execute("SELECT d.device_id FROM fixes f JOIN devices d ON d.id = f.device_id")
        assert [r[0] for r in await cur.fetchall()] == ["car-a"]  # the broker dropped the spoofed message

    user, password = await runtime.issue_simulator_account()
    assert await run_cars(runtime.mqtt_url, ["car-b"], fixes_per_car=5, realtime=False, username=user,
                          password=password) == 5
    assert await wait_for_rows(runtime.db, "fixes", 6) == 6
    assert await count_rows(runtime.db, "dead_letters") == 0
