"""`vigil up` is killed -9 while SOS alarms stream in; a new one on the same MQTT session takes over.
Every alarm arrives exactly once: one row, count 1, one "raised" audit row, one raise stage, three notices."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiomqtt
import json

from storage import devices
from tests.alarm_helpers import fetch, wait_for
from tests.faults import VigilProcess, forget_session
from tests.services import free_port
from vigil.settings import parse_mqtt_url

PETS = 200
RATE_HZ = 100.0  # SOS presses per second


async def _press_sos(mqtt_url: str, ids: list[str], t0_ms: int) -> None:
    host, port = parse_mqtt_url(mqtt_url)
    async with aiomqtt.Client(host, port, max_inflight_messages=100) as client:
        for i, pet in enumerate(ids):
            payload = {"v": 1, "seq": 1, "ts": t0_ms + i, "event_id": f"sos-{pet}", "lat": 60.1 + i * 1e-4,
                       "lon": 24.9, "accuracy_m": 10}
            await client.publish(f"vigil/v1/pet/{pet}/sos", json.dumps(payload).encode(), qos=1)
            await asyncio.sleep(1.0 / RATE_HZ)


async def test_vigil_killed_while_alarms_are_in_flight(mqtt_url, database_url, db, tmp_path):
    run = uuid.uuid4().hex[:6]
    ids = [f"pet-{run}-{i:03d}" for i in range(PETS)]
    await devices.provision(db, ids, kind="pet", owner="cust-kill")
    env = {
        "VIGIL_MQTT_URL": mqtt_url, "VIGIL_DATABASE_URL": database_url, "VIGIL_DATA_DIR": str(tmp_path),
        "VIGIL_MQTT_CLIENT_ID": f"alarm-kill-{run}", "VIGIL_HTTP_BIND": f"127.0.0.1:{free_port()}",
        # Batches of ~250 ms keep messages received but not yet acknowledged at any instant.
        "VIGIL_BATCH_MAX_DELAY_MS": "250",
    }
    count_sql = "SELECT count(*) FROM alarms"
    processes = []
    presses = None
    try:
        first = VigilProcess(["up"], env, tmp_path / "vigil-1.log")
        processes.append(first)
        await first.wait_for_output("Vigil is up", 60)
        presses = asyncio.create_task(_press_sos(mqtt_url, ids, (int(time.time()) - 5) * 1000))
        rows = await wait_for(db, count_sql, lambda r: r[0][0] >= 40, timeout=30)
        assert rows[0][0] >= 40, first.tail()
        first.kill()
        at_kill = (await fetch(db, count_sql))[0][0]
        assert at_kill < PETS, "the stream ended before the kill; the test proves nothing"
        await asyncio.sleep(1.0)  # presses go on with no Vigil: the broker queues them for the session

        second = VigilProcess(["up"], env, tmp_path / "vigil-2.log")
        processes.append(second)
        await second.wait_for_output("Vigil is up", 60)
        await asyncio.wait_for(presses, 30)
        rows = await wait_for(db, count_sql, lambda r: r[0][0] >= PETS, timeout=60)
        assert rows[0][0] == PETS, second.tail()
        await asyncio.sleep(2.5)  # one more sweep round: nothing may arrive twice
    finally:
        if presses is not None and not presses.done():
            presses.cancel()
        for proc in processes:
            proc.kill()
        for client_id in (env["VIGIL_MQTT_CLIENT_ID"], env["VIGIL_MQTT_CLIENT_ID"] + "-alarms"):
            await forget_session(mqtt_url, client_id)

    alarms = await fetch(db, "SELECT d.device_id, a.type, a.count FROM alarms a JOIN devices d ON d.id = a.device_id")
    assert sorted(a[0] for a in alarms) == ids and {(a[1], a[2]) for a in alarms} == {("sos", 1)}
    assert await fetch(db, "SELECT kind, count(*) FROM alarm_audit GROUP BY kind ORDER BY kind") == [
        ("notified", PETS), ("raised", PETS)]
    assert await fetch(db, "SELECT count(*), count(DISTINCT alarm_id) FROM alarm_steps WHERE step = 0") == [(PETS, PETS)]
    assert await fetch(db, "SELECT channel, count(*) FROM notifications GROUP BY channel ORDER BY channel") == [
        ("email", PETS), ("push", PETS), ("sms", PETS)]
    assert await fetch(db, "SELECT count(*) FROM device_events WHERE type = 'sos'") == [(PETS,)]
    swept = [line for line in processes[1].output().splitlines() if "alarm sweep applied" in line]
    print(f"\nFAULT alarms at kill: {at_kill} of {PETS}; recovered by the sweep: {swept}")
