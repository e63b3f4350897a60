"""The city scenario through real Mosquitto, the real gateway and PostgreSQL: exact rows per protocol,
per-device credentials on the embedded broker, and `vigil simulate --scenario city` end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from roads import bundled_pbf, load_graph
from simulators.city import City, CityConfig
from simulators.city_publisher import own_credential_devices, provision, run_city
from simulators.network import prepare
from tests.helpers import count_rows, make_settings, wait_for_rows

REPO = Path(__file__).resolve().parents[1]


async def fetch(db, sql: str, *args):
    async with db.connection() as conn:
        cur = await conn.execute(sql, args)
        return await cur.fetchall()


def small_city(tmp_path: Path, *, duration_s: int, **overrides) -> City:
    graph, _ = load_graph(bundled_pbf(), "driving", cache_dir=tmp_path / "roads")
    cfg = CityConfig(**{
        "cars": 40, "pets": 6, "homes": 8, "seed": 21, "power_cut_at_s": 30.0, "power_cut_radius_m": 2000.0,
        "pet_heartbeat_s": 60, "home_heartbeat_s": 60,
        "pet_rates": {"sos_rate_per_h": 20.0}, "home_rates": {"water_rate_per_h": 10.0, "smoke_rate_per_h": 5.0},
        **overrides,
    })
    start = (int(time.time()) - duration_s - 5) * 1000
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


async def test_devices_log_in_with_their_own_credentials(database_url, runtime_factory, tmp_path):
    settings = dataclasses.replace(make_settings("mqtt://unused", database_url), mqtt_url=None,
                                   data_dir=Path(tempfile.mkdtemp(prefix="vigil-city-auth-")))
    runtime = await runtime_factory(settings)
    assert runtime.broker is not None and runtime.broker.authenticated
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
           "--homes", "5", "--seed", "3", "--duration", "90", "--speedup", "0", "--own-credentials", "4",
           "--truth-dir", str(tmp_path / "truth")]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "provisioned 40 devices; 4 publish with their own MQTT credentials" in proc.stdout
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
