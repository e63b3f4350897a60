"""City simulator connections: every device on its own MQTT login and connection in one process, beside
the shared simulator-account connection as the peer, against a Mosquitto enforcing Vigil's password
file and ACL.

    python bench/city_connections.py            # 10 000 devices (8000 cars, 1000 pets, 1000 home kits)
    python bench/city_connections.py --quick    # 2000 devices

Lines:
  provision  registering the devices and issuing every password (PBKDF2 hashing, one batch insert) in a
             private PostgreSQL; writing the broker files; from SIGHUP until the broker accepts the
             first new login (a running `vigil up` adds up to 5 s of refresh interval before that);
  own        run_city at speedup 0 for --sim-s simulated seconds, each device on its own connection:
             connect time, RSS added by the connections (and the process's RSS then), CPU seconds per wall second while publishing,
             messages sent, received by a counting subscriber (mosquitto_sub as the gateway account) and
             lost (must be 0); fixes/s delivered;
  shared     the same city and seconds through one simulator-account connection (the peer);
  realtime   own connections at speedup 1 for --rt-s seconds: CPU seconds per wall second at the city's
             real rate, and whether it kept up.
The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from ingest import mqtt_auth  # noqa: E402
from roads import bundled_pbf, load_graph  # noqa: E402
from simulators.city import City, CityConfig  # noqa: E402
from simulators.city_publisher import own_credential_devices, provision, run_city  # noqa: E402
from simulators.mqtt_device import Login, connect_retrying, raise_fd_limit  # noqa: E402
from simulators.network import prepare  # noqa: E402
from storage import Database  # noqa: E402
from tests.services import free_port, postgres_server, scratch_database, wait_for_port  # noqa: E402
from vigil.broker import die_with_parent  # noqa: E402

START_MS = 1_795_000_000_000
ME = psutil.Process()


@contextlib.contextmanager
def auth_mosquitto(workdir: Path, auth_conf: str):
    port = free_port()
    run_as = "user root\n" if os.geteuid() == 0 else ""
    (workdir / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\npersistence false\nmax_queued_messages 1000000\nmax_queued_bytes 0\n"
        f"max_inflight_messages 100\n{run_as}{auth_conf}")
    log = workdir / "mosquitto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["mosquitto", "-c", str(workdir / "mosquitto.conf")], stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        wait_for_port(port, proc, log)
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def counter(port: int, password: str, workdir: Path, name: str):
    """mosquitto_sub as the gateway account, QoS 1; yields a function returning messages received so far."""
    out_path = workdir / f"sub-{name}.txt"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-p", str(port), "-u", "gw", "-P", password, "-q", "1", "-d",
                                 "-i", f"bench-{name}", "-t", "vigil/v1/#", "-t", "owntracks/#", "-F", "%t"],
                                stdout=out, stderr=subprocess.STDOUT)

    def received() -> int:
        with open(out_path, "rb") as f:
            return f.read().count(b"received PUBLISH")

    try:
        deadline = time.monotonic() + 10
        while b"received SUBACK" not in out_path.read_bytes():
            if time.monotonic() > deadline:
                raise SystemExit(f"mosquitto_sub did not subscribe: {out_path.read_text()[-500:]}")
            time.sleep(0.05)
        yield received
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def settle(received, sent: int, timeout_s: float = 60.0) -> int:
    """Messages received once the count reaches ``sent`` or stops growing for 3 s."""
    last, still = -1, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = received()
        if n >= sent:
            return n
        if n != last:
            last, still = n, time.monotonic()
        elif time.monotonic() - still > 3:
            break
        time.sleep(0.2)
    return received()


def run_mode(network, cfg, port, sim_s, speedup, passwords, sim_password, received) -> dict:
    city = City(cfg, network, start_ms=START_MS)
    seen: dict = {}
    rss0 = ME.memory_info().rss

    def connected(p) -> None:
        rss = ME.memory_info().rss
        seen["rss_added_mb"], seen["rss_mb"] = round((rss - rss0) / 2**20, 1), round(rss / 2**20)
        seen["cpu0"] = sum(ME.cpu_times()[:2])
        seen["t0"] = time.perf_counter()

    def progress(p) -> None:  # the last call comes as the run ends, before the process winds down
        seen["cpu"] = sum(ME.cpu_times()[:2]) - seen["cpu0"]

    final = asyncio.run(run_city(
        f"mqtt://127.0.0.1:{port}", city, duration_s=sim_s, speedup=speedup,
        username=None if passwords else "sim", password=None if passwords else sim_password,
        device_passwords=passwords, connected=connected, progress=progress))
    wall, cpu = final.wall_s, seen["cpu"]
    got = settle(received, final.messages)
    fixes = final.expected_rows["fixes"]
    return {"connections": final.connections, "connect_s": round(final.connect_s, 2),
            "rss_added_mb": seen["rss_added_mb"], "rss_mb": seen["rss_mb"], "sim_s": final.sim_s, "wall_s": round(wall, 1),
            "cpu_per_wall_s": round(cpu / wall, 2), "messages": final.messages, "received": got,
            "lost": final.messages - got, "fixes": fixes, "fixes_per_s": round(fixes / wall),
            "realtime_factor": round(final.sim_s / wall, 2)}


async def register(url: str, city: City, workdir: Path) -> tuple[dict, str, float]:
    """Devices and the two accounts; broker files without device passwords yet."""
    db = await Database.open(url)
    try:
        t0 = time.perf_counter()
        await provision(db, city, own=[])
        register_s = time.perf_counter() - t0
        accounts = {"gw": await mqtt_auth.issue_account(db, "gw", "gateway"),
                    "sim": await mqtt_auth.issue_account(db, "sim", "simulator")}
        passwd, acl = await mqtt_auth.write_broker_files(db, workdir)
    finally:
        await db.close()
    return accounts, mqtt_auth.mosquitto_auth_conf(passwd, acl), register_s


async def issue_and_reload(url: str, city: City, workdir: Path, port: int, broker) -> tuple[dict, dict]:
    """Every device's password in one batch, the files rewritten, SIGHUP, until the first new login works."""
    db = await Database.open(url)
    try:
        t0 = time.perf_counter()
        passwords = await mqtt_auth.issue_device_credentials(db, [d.device_id for d in city.devices])
        issue_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        await mqtt_auth.write_broker_files(db, workdir)
        files_s = time.perf_counter() - t0
    finally:
        await db.close()
    t0 = time.perf_counter()
    broker.send_signal(signal.SIGHUP)
    first = city.devices[-1].device_id
    conn = await connect_retrying("127.0.0.1", port, Login("probe", mqtt_auth.broker_username(first), passwords[first]),
                                  retry_for_s=30)
    reload_s = time.perf_counter() - t0
    conn.close()
    return passwords, {"issue_credentials_s": round(issue_s, 2), "write_broker_files_s": round(files_s, 2),
                       "reload_to_first_login_s": round(reload_s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sim-s", type=int, default=None, help="simulated seconds per mode (default 120; quick 60)")
    ap.add_argument("--rt-s", type=int, default=30, help="seconds of the real-time run")
    args = ap.parse_args()
    cars, pets, homes = (1600, 200, 200) if args.quick else (8000, 1000, 1000)
    sim_s = args.sim_s or (60 if args.quick else 120)
    print(f"open files: soft limit raised to {raise_fd_limit(cars + pets + homes + 200)}", flush=True)
    graph, _ = load_graph(bundled_pbf(), "driving", cache_dir=Path(tempfile.gettempdir()) / "vigil-bench-roads")
    network = prepare(graph, n_places=300, seed=1)
    cfg = CityConfig(cars=cars, pets=pets, homes=homes, seed=1)
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-conns-"))
    result: dict = {}
    with contextlib.ExitStack() as cleanup, postgres_server() as admin, scratch_database(admin) as url:
        cleanup.callback(shutil.rmtree, workdir, True)
        city = City(cfg, network, start_ms=START_MS)
        assert len(own_credential_devices(city)) == len(city.devices)
        accounts, auth_conf, register_s = asyncio.run(register(url, city, workdir))
        with auth_mosquitto(workdir, auth_conf) as (port, broker):
            passwords, figures = asyncio.run(issue_and_reload(url, city, workdir, port, broker))
            result["provision"] = {"devices": len(city.devices), "register_s": round(register_s, 2), **figures}
            print("provision", json.dumps(result["provision"]), flush=True)
            for name, own in (("own", passwords), ("shared", {})):
                with counter(port, accounts["gw"], workdir, name) as received:
                    result[name] = run_mode(network, cfg, port, sim_s, 0, own, accounts["sim"], received)
                print(f"{name:9}", json.dumps(result[name]), flush=True)
            with counter(port, accounts["gw"], workdir, "realtime") as received:
                result["realtime"] = run_mode(network, cfg, port, args.rt_s, 1.0, passwords, None, received)
            print("realtime ", json.dumps(result["realtime"]), flush=True)
    result["host"] = {"cpus": os.cpu_count(), "note": "shared machine: other jobs ran meanwhile"}
    print("RESULT " + json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
