"""The city scenario through real Mosquitto, the real gateway and PostgreSQL: exact rows per protocol,
per-device credentials on the embedded broker, and `vigil simulate --scenario city` end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from ingest import mqtt_auth
from roads import bundled_pbf, load_graph
from simulators import mqtt_device as md
from simulators.city import City, CityConfig
from simulators.city_publisher import own_credential_devices, provision, run_city
from simulators.network import prepare
from tests.helpers import count_rows, make_settings, wait_for_rows
from vigil.settings import parse_mqtt_url

REPO = Path(__file__).resolve().parents[1]


async def fetch(db, sql: str, *args):
    async with db.connection() as conn:
        cur = await conn.execute(sql, args)
        return await cur.fetchall()


def small_city(tmp_path: Path, *, duration_s: int, start_ms: int | None = None, **overrides) -> City:
    graph, _ = load_graph(bundled_pbf(), "driving", cache_dir=tmp_path / "roads")
    cfg = CityConfig(**{
        "cars": 40, "pets": 6, "homes": 8, "seed": 21, "power_cut_at_s": 30.0, "power_cut_radius_m": 2000.0,
        "pet_heartbeat_s": 60, "home_heartbeat_s": 60,
        "pet_rates": {"sos_rate_per_h": 20.0}, "home_rates": {"water_rate_per_h": 10.0, "smoke_rate_per_h": 5.0},
        **overrides,
    })
    start = (int(time.time()) - duration_s - 5) * 1000 if start_ms is None else start_ms
    return City(cfg, prepare(graph, n_places=60, seed=21), start_ms=start)


async def test_every_protocol_lands_in_its_table_exactly(mqtt_url, database_url, runtime_factory, tmp_path):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    city = small_city(tmp_path, duration_s=120)
    await provision(runtime.db, city, own=[], first_owner="demo-customer")
    owners = dict(await fetch(runtime.db, "SELECT device_id, owner FROM devices"))
    assert len(owners) == len(city.devices) == 54
    for first in (city.car0, city.pet0, city.home0):
        assert owners[city.devices[first].device_id] == "demo-customer"
    for kind, first in (("car", city.car0), ("pet", city.pet0), ("home", city.home0)):
        assert owners[city.devices[first + 3].device_id] == "city-customer-00003", kind
    final = await run_city(mqtt_url, city, duration_s=120, speedup=0, truth_dir=tmp_path / "truth")
    c = city.counts
    assert final.sim_s == 120 and final.messages == sum(v for k, v in c.items() if k != "home_events")
    assert min(c["car_json"], c["car_avl"], c["owntracks"], c["pet_fix"], c["pet_sos"], c["pet_heartbeat"],
               c["home_event"], c["home_heartbeat"]) > 0
    expected = city.expected_rows()
    assert await wait_for_rows(runtime.db, "fixes", expected["fixes"]) == expected["fixes"]
    assert await wait_for_rows(runtime.db, "device_events", expected["device_events"]) == expected["device_events"]
    assert await count_rows(runtime.db, "dead_letters") == 0

    protocol = {d.device_id: d.protocol for d in city.devices}
    per_protocol: dict[str, int] = {}
    for device_id, n in await fetch(runtime.db, "SELECT d.device_id, count(*) FROM fixes f"
                                    " JOIN devices d ON d.id = f.device_id GROUP BY 1"):
        per_protocol[protocol[device_id]] = per_protocol.get(protocol[device_id], 0) + n
    assert per_protocol == {"vigil_json": c["car_json"], "teltonika": c["car_avl"], "owntracks": c["owntracks"],
                            "pet_json": c["pet_fix"]}
    events = dict(await fetch(runtime.db, "SELECT type, count(*) FROM device_events GROUP BY 1"))
    assert events["sos"] == c["pet_sos"]
    assert events["heartbeat"] == c["pet_heartbeat"] + c["home_heartbeat"]
    assert events["power_loss"] == int(city.power_cut_hit.sum()) > 0
    truth = json.loads((tmp_path / "truth" / "summary.json").read_text())
    assert truth["expected_rows"] == expected
    # Teltonika odometer and accelerometer arrive in their columns.
    (avl,) = await fetch(runtime.db, "SELECT count(*) FILTER (WHERE odometer_m > 0 AND accel_z > 0.9)"
                         " FROM fixes f JOIN devices d ON d.id = f.device_id WHERE d.device_id ~ '^[0-9]+$'")
    assert avl[0] == c["car_avl"]


async def authenticated_runtime(database_url, runtime_factory):
    """A runtime with its embedded Mosquitto enforcing per-device passwords and the ACL; and its settings."""
    settings = dataclasses.replace(make_settings("mqtt://unused", database_url), mqtt_url=None,
                                   data_dir=Path(tempfile.mkdtemp(prefix="vigil-city-auth-")))
    runtime = await runtime_factory(settings)
    assert runtime.broker is not None and runtime.broker.authenticated
    return runtime, settings


async def test_devices_log_in_with_their_own_credentials(database_url, runtime_factory, tmp_path):
    runtime, _ = await authenticated_runtime(database_url, runtime_factory)
    city = small_city(tmp_path, duration_s=60, cars=12, pets=3, homes=3)
    own = own_credential_devices(city, 6)
    assert len(own) == 6 and {city.devices[i].kind for i in own} == {"car", "pet", "home"}
    passwords = await provision(runtime.db, city, own=own)
    assert set(passwords) == {city.devices[i].device_id for i in own}
    user, password = await runtime.issue_simulator_account()
    # The runtime rewrites the broker's password file within 5 s; run_city retries its connections meanwhile.
    await run_city(runtime.mqtt_url, city, duration_s=60, speedup=0, username=user, password=password,
                   device_passwords=passwords)
    expected = city.expected_rows()
    assert await wait_for_rows(runtime.db, "fixes", expected["fixes"]) == expected["fixes"]
    assert await wait_for_rows(runtime.db, "device_events", expected["device_events"]) == expected["device_events"]
    assert await count_rows(runtime.db, "dead_letters") == 0
    rows = await fetch(runtime.db, "SELECT username FROM mqtt_credentials WHERE role = 'device' ORDER BY 1")
    assert [r[0] for r in rows] == sorted(passwords)


async def test_vigil_simulate_city_end_to_end(mqtt_url, database_url, runtime_factory, tmp_path):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    env = dict(os.environ, VIGIL_MQTT_URL=mqtt_url, VIGIL_DATABASE_URL=database_url, VIGIL_DATA_DIR=str(tmp_path),
               VIGIL_MQTT_USERNAME="", VIGIL_MQTT_PASSWORD="")
    cmd = [sys.executable, "-m", "vigil.cli", "simulate", "--scenario", "city", "--cars", "30", "--pets", "5",
           "--homes", "5", "--seed", "3", "--duration", "90", "--speedup", "0",
           "--truth-dir", str(tmp_path / "truth")]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "provisioned 40 devices; 40 publish with their own MQTT credentials (all of them)" in proc.stdout
    assert "40 MQTT connections open in" in proc.stdout
    creds = await fetch(runtime.db, "SELECT role, count(*) FROM mqtt_credentials GROUP BY 1")
    assert creds == [("device", 40)], "no simulator account when every device has its own login"
    assert "customer profiles: 30 added" in proc.stdout   # one per customer: max(cars, pets, homes)
    assert await count_rows(runtime.db, "customers") == 30
    assert "t=90/90 s simulated" in proc.stdout and "done:" in proc.stdout
    summary = json.loads((tmp_path / "truth" / "summary.json").read_text())
    expected = summary["expected_rows"]
    assert expected["fixes"] > 100
    assert await wait_for_rows(runtime.db, "fixes", expected["fixes"]) == expected["fixes"]
    assert await wait_for_rows(runtime.db, "device_events", expected["device_events"]) == expected["device_events"]
    assert await count_rows(runtime.db, "dead_letters") == 0
    assert (tmp_path / "truth" / "events.jsonl").stat().st_size > 0
    assert list((tmp_path / "truth").glob("fixes-*.npz"))
    # Same seed, same city: a second run publishes the same messages (here: the same counts). Home kit
    # events follow the local time of day, which moved on between the runs, so they may differ.
    again = subprocess.run([*cmd[:-1], str(tmp_path / "truth2"), "--no-provision"], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    counts = json.loads((tmp_path / "truth2" / "summary.json").read_text())["counts"]
    for stream in ("home_event", "home_events"):
        counts.pop(stream), summary["counts"].pop(stream)
    assert counts == summary["counts"]


def test_vigil_simulate_refuses_unclear_requests(tmp_path):
    env = dict(os.environ, VIGIL_DATA_DIR=str(tmp_path))
    cases = [([], "name what to simulate"), (["--scenario", "city", "--speedup", "4"], "needs --duration"),
             (["--scenario", "city", "--cars", "0", "--pets", "0", "--homes", "0"], "at least one device")]
    for args, message in cases:
        proc = subprocess.run([sys.executable, "-m", "vigil.cli", "simulate", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and message in proc.stderr, (args, proc.stderr)


def _expected_per_device(city: City, duration_s: int) -> tuple[dict[str, int], dict[str, int], list]:
    """Fixes and device events per device id from a twin of ``city`` (same seed, same start: the same
    messages), and the twin's next tick (messages the run did not send)."""
    import msgspec

    fixes: dict[str, int] = {}
    events: dict[str, int] = {}
    for _ in range(duration_s):
        for d, topic, payload in city.tick():
            device_id = city.devices[d].device_id
            stream = topic.rsplit("/", 1)[-1]
            if topic.startswith("owntracks/") or stream in ("fix", "avl"):
                fixes[device_id] = fixes.get(device_id, 0) + 1
            elif stream == "event":
                events[device_id] = events.get(device_id, 0) + len(msgspec.json.decode(payload)["events"])
            else:
                events[device_id] = events.get(device_id, 0) + 1
    return fixes, events, city.tick()


async def test_every_device_publishes_on_its_own_connection(database_url, runtime_factory, tmp_path):
    runtime, settings = await authenticated_runtime(database_url, runtime_factory)
    city = small_city(tmp_path, duration_s=90, cars=40, pets=8, homes=12)
    twin = small_city(tmp_path, duration_s=90, start_ms=city.start_ms, cars=40, pets=8, homes=12)
    assert len(city.devices) == 60 and {d.protocol for d in city.devices} == {
        "vigil_json", "teltonika", "owntracks", "pet_json", "home_json"}
    passwords = await provision(runtime.db, city, own=own_credential_devices(city))
    assert set(passwords) == {d.device_id for d in city.devices}
    # No simulator account exists: a publish through one could not even log in.
    roles = await fetch(runtime.db, "SELECT role, count(*) FROM mqtt_credentials GROUP BY 1 ORDER BY 1")
    assert roles == [("device", 60), ("gateway", 1)]
    final = await run_city(runtime.mqtt_url, city, duration_s=90, speedup=0, device_passwords=passwords)
    assert final.connections == 60

    fixes, events, next_tick = _expected_per_device(twin, 90)
    expected = city.expected_rows()
    assert sum(fixes.values()) == expected["fixes"] and sum(events.values()) == expected["device_events"]
    assert await wait_for_rows(runtime.db, "fixes", expected["fixes"]) == expected["fixes"]
    assert await wait_for_rows(runtime.db, "device_events", expected["device_events"]) == expected["device_events"]
    assert await count_rows(runtime.db, "dead_letters") == 0
    sql = "SELECT d.device_id, count(*) FROM {} r JOIN devices d ON d.id = r.device_id GROUP BY 1"
    assert dict(await fetch(runtime.db, sql.format("fixes"))) == fixes
    assert dict(await fetch(runtime.db, sql.format("device_events"))) == events

    # The broker saw each device log in under its own name (a phone as its OwnTracks user), nobody else.
    log = (settings.data_dir / "mosquitto" / "mosquitto.log").read_text()
    logins = set(re.findall(r"New client connected from \S+ as \S+ \(p\d, c\d, k\d+, u'([^']*)'\)", log))
    assert logins == {mqtt_auth.broker_username(d.device_id) for d in city.devices} | {"vigil-gateway"}

    # The ACL holds for the simulator's devices: a car's credentials cannot publish another car's fix.
    # Mosquitto acknowledges the refused publish and drops it; the marker, published after that
    # acknowledgement on the marker car's own connection, reaches the gateway after it would have.
    host, port = parse_mqtt_url(runtime.mqtt_url)
    json_cars = [m for m in next_tick if city.devices[m[0]].protocol == "vigil_json"]
    (victim, topic, payload), (marker, marker_topic, marker_payload) = json_cars[:2]
    victim_id, marker_id = city.devices[victim].device_id, city.devices[marker].device_id
    conn = await md.connect(host, port, md.Login("marker", marker_id, passwords[marker_id]))
    try:
        await asyncio.wait_for(conn.send(topic, payload), 10)
        await asyncio.wait_for(conn.send(marker_topic, marker_payload), 10)
    finally:
        conn.close()
    assert await wait_for_rows(runtime.db, "fixes", expected["fixes"] + 1) == expected["fixes"] + 1
    after = dict(await fetch(runtime.db, sql.format("fixes")))
    assert after[marker_id] == fixes[marker_id] + 1 and after[victim_id] == fixes[victim_id]


async def test_a_dropped_device_reconnects_and_the_others_carry_on(db, tmp_path):
    """A device suspended mid-run is dropped by the broker and refused on reconnecting: the run goes on
    for the others, counting its messages as dropped; reactivated, it logs in again and publishes."""
    from storage import devices as registry
    from tests.test_mqtt_auth import auth_broker
    from tests.test_simulator_mqtt_device import broker_files

    city = small_city(tmp_path, duration_s=60, cars=6, pets=0, homes=0, phone_share=0.0, teltonika_share=0.0)
    passwords = await provision(db, city, own=own_credential_devices(city))
    gateway_password = await mqtt_auth.issue_account(db, "gw", "gateway")
    victim = city.devices[0].device_id
    received: dict[str, int] = {}
    last_seen: dict[str, float] = {}
    reactivated_at: list[float] = []
    loop = asyncio.get_running_loop()
    with auth_broker(await broker_files(db, tmp_path / "auth")) as broker:
        url = f"mqtt://127.0.0.1:{broker.port}"

        async def refresh() -> None:
            await broker_files(db, tmp_path / "auth")
            broker.reload()

        async def subscriber(ready: asyncio.Event) -> None:
            async with aiomqtt.Client("127.0.0.1", broker.port, username="gw", password=gateway_password,
                                      identifier="counter", timeout=10) as client:
                await client.subscribe("vigil/v1/#", qos=1)
                ready.set()
                async for message in client.messages:
                    device = str(message.topic).split("/")[3]
                    received[device] = received.get(device, 0) + 1
                    last_seen[device] = loop.time()

        async def suspend_then_reactivate() -> None:
            await asyncio.sleep(1.0)
            await registry.set_status(db, victim, "suspended")
            await refresh()
            await asyncio.sleep(2.5)   # refused meanwhile: its connection attempts back off
            await registry.set_status(db, victim, "active")
            await refresh()
            reactivated_at.append(loop.time())

        ready = asyncio.Event()
        counter = asyncio.create_task(subscriber(ready))
        await asyncio.wait_for(ready.wait(), 10)
        chaos: list[asyncio.Task] = []
        final = await run_city(url, city, duration_s=60, speedup=4, device_passwords=passwords,
                               connected=lambda _: chaos.append(asyncio.create_task(suspend_then_reactivate())))
        await chaos[0]
        async with asyncio.timeout(10):
            while sum(received.values()) < final.messages:
                await asyncio.sleep(0.05)
        counter.cancel()
    assert final.connections == 6
    assert final.dropped > 0 and final.reconnects == 1
    assert sum(received.values()) == final.messages   # every acknowledged message, nothing else
    assert {d.device_id for d in city.devices} == set(received)
    assert last_seen[victim] > reactivated_at[0]   # back on after reactivation, on its own credentials
