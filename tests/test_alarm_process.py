"""The alarm path in its own process: killed, it is restarted and alarms flow again, exactly once; it
dies with a `vigil up` killed -9; the in-process mode (VIGIL_ALARM_PROCESS=0) still raises every alarm."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
import uuid

import httpx
import psutil

from alarms.model import RELEVANT, TRIGGERS
from alarms.service import OFF_LANE_TYPES
from ingest.home_json import HomeEventType
from storage import devices
from tests.alarm_helpers import StreamReader, fetch, home_event, logged_in, publish, wait_for
from tests.faults import VigilProcess, forget_session
from tests.helpers import make_settings
from tests.services import free_port
from tests.test_alarms_e2e import each_alarm_type
from vigil.alarm_process import settings_from_json, settings_json

NOW_MS = (int(time.time()) - 5) * 1000


def test_settings_cross_to_the_child_unchanged(tmp_path):
    settings = dataclasses.replace(make_settings("mqtt://127.0.0.1:1", "dbname=x"), certificate_key_dir=tmp_path,
                                   alarm_t1_s=7, mqtt_shared=True)
    assert settings_from_json(settings_json(settings)) == settings


def test_every_device_alarm_event_reaches_the_alarm_process_or_the_main_bus():
    """Types an alarm topic carries (home events, pet SOS) go to the alarm process; the rest must be in
    OFF_LANE_TYPES, which the main process applies from its bus. Supervision makes its own events."""
    supervision = {"offline", "online", "battery_low", "battery_ok"}
    on_lane = set(HomeEventType.__args__) | {"sos"}
    assert RELEVANT - supervision - on_lane == OFF_LANE_TYPES
    assert set(TRIGGERS) & OFF_LANE_TYPES == {"crash"}


async def test_alarm_process_killed_is_restarted_and_alarms_flow_once(mqtt_url, database_url, runtime_factory,
                                                                      caplog):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    first, alarm_api = runtime.alarm_process.pid, runtime.alarm_http_url
    assert alarm_api != runtime.http_url
    assert psutil.Process(first).cmdline()[-1] == "vigil.alarm_process"
    run = uuid.uuid4().hex[:6]
    kits = [f"kit-{run}-{i}" for i in range(3)]
    await devices.provision(runtime.db, kits, kind="home", owner="cust-restart")
    op = await logged_in(runtime, "op-restart", "operator")
    customer = await logged_in(runtime, "cust-restart")
    async with httpx.AsyncClient(base_url=alarm_api, timeout=10) as http:  # same routes, same access rules
        assert (await http.get("/v1/operator/alarms", headers=op)).json() == []
        refused = await http.get("/v1/operator/alarms/stream", headers=customer)
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
        assert (await http.get("/v1/operator/alarms")).status_code == 401
    sql = ("SELECT d.device_id, a.count FROM alarms a JOIN devices d ON d.id = a.device_id"
           " WHERE d.device_id = ANY(%s) ORDER BY 1")
    async with StreamReader(runtime.http_url, op) as stream:  # the main API's: it outlives the alarm process
        await publish(mqtt_url, [home_event(kits[0], 1, NOW_MS, "water_leak", "w-before")])
        assert await wait_for(runtime.db, sql, lambda r: len(r) == 1, kits) == [(kits[0], 1)]

        with caplog.at_level(logging.ERROR, logger="vigil.alarm_process"):
            os.kill(first, signal.SIGKILL)
            # Published while no alarm process runs: the broker keeps them for the lane's session, and
            # the main gateway stores them too.
            await publish(mqtt_url, [home_event(kits[1], 1, NOW_MS, "smoke", "s-while-down")])
            deadline = asyncio.get_running_loop().time() + 60
            while runtime.alarm_process.restarts < 1 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
        assert runtime.alarm_process.restarts == 1 and runtime.alarm_process.pid != first
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
        assert any(f"alarm process (pid {first}) exited with -9" in r.getMessage() for r in caplog.records)

        await publish(mqtt_url, [home_event(kits[2], 1, NOW_MS, "water_leak", "w-after")])
        rows = await wait_for(runtime.db, sql, lambda r: len(r) == 3, kits)
        assert rows == [(k, 1) for k in kits]
        events = await stream.wait_for(
            lambda ev: sum(e["kind"] == "raised" and e["alarm"]["device_id"] in kits for _, e in ev) >= 3)
    assert runtime.alarm_process.http_url == alarm_api  # restarted on the same port
    async with StreamReader(alarm_api, op, after=0) as again:
        replayed = await again.wait_for(
            lambda ev: sum(e["kind"] == "raised" and e["alarm"]["device_id"] in kits for _, e in ev) >= 3)
    assert [i for i, _ in replayed] == sorted(i for i, _ in replayed)
    await asyncio.sleep(2.5)  # a sweep round of the new process: nothing is applied twice
    assert await fetch(runtime.db, sql, kits) == [(k, 1) for k in kits]
    assert sorted(e["alarm"]["device_id"] for _, e in events if e["kind"] == "raised"
                  and e["alarm"]["device_id"] in kits) == sorted(kits)
    assert await fetch(runtime.db, "SELECT count(*) FROM alarm_audit u JOIN alarms a ON a.id = u.alarm_id"
                       " JOIN devices d ON d.id = a.device_id WHERE d.device_id = ANY(%s) AND u.kind = 'raised'",
                       kits) == [(3,)]


async def test_alarm_process_dies_with_vigil_up(mqtt_url, database_url, tmp_path):
    run = uuid.uuid4().hex[:6]
    env = {"VIGIL_MQTT_URL": mqtt_url, "VIGIL_DATABASE_URL": database_url, "VIGIL_DATA_DIR": str(tmp_path),
           "VIGIL_MQTT_CLIENT_ID": f"alarm-orphan-{run}", "VIGIL_HTTP_BIND": f"127.0.0.1:{free_port()}"}
    vigil = VigilProcess(["up"], env, tmp_path / "vigil.log")
    try:
        await vigil.wait_for_output("Vigil is up", 60)
        children = [p for p in psutil.Process(vigil.proc.pid).children()
                    if p.cmdline()[-1] == "vigil.alarm_process"]
        assert len(children) == 1, vigil.tail()
        vigil.kill()
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, vigil.tail()
    finally:
        vigil.kill()
        for client_id in (env["VIGIL_MQTT_CLIENT_ID"], env["VIGIL_MQTT_CLIENT_ID"] + "-alarms"):
            await forget_session(mqtt_url, client_id)


async def test_each_alarm_type_in_process(mqtt_url, database_url, runtime_factory):
    """VIGIL_ALARM_PROCESS=0: the lane and the alarm service in the main process, same outcomes."""
    runtime = await runtime_factory(dataclasses.replace(make_settings(mqtt_url, database_url), alarm_process=False))
    assert runtime.alarm_process is None and runtime.alarm_lane is not None
    await each_alarm_type(runtime, mqtt_url)
