"""10 000 device logins in one process: aiomqtt clients beside the lean publish-only connections of
simulators.mqtt_device, each in a fresh process, against a Mosquitto with Vigil's password file and ACL.

    python bench/mqtt_clients.py             # 10 000 clients each
    python bench/mqtt_clients.py --n 2000

Per client library: connect time (64 connecting at once), RSS added by the clients, CPU seconds per wall
second while idle for 10 s, and while every client publishes one QoS 1 message a second for 10 s (the wall
time that took: above 10 s means the process could not keep that rate). The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from ingest import mqtt_auth  # noqa: E402
from simulators import mqtt_device as md  # noqa: E402
from tests.services import free_port, wait_for_port  # noqa: E402
from vigil.broker import die_with_parent  # noqa: E402

CONCURRENCY = md.CONNECT_CONCURRENCY
SECONDS = 10


async def _aiomqtt(port: int, logins: dict[str, str], stack: contextlib.AsyncExitStack) -> list:
    import aiomqtt

    gate = asyncio.Semaphore(CONCURRENCY)
    clients = []

    async def one(user: str, password: str) -> None:
        async with gate:
            client = aiomqtt.Client("127.0.0.1", port=port, identifier=user, username=user, password=password)
            await stack.enter_async_context(client)
            clients.append((user, client))

    await asyncio.gather(*(one(u, p) for u, p in logins.items()))
    return [(lambda u=u, c=c: c.publish(f"vigil/v1/car/{u}/fix", b"x" * 200, qos=1)) for u, c in clients]


async def _lean(port: int, logins: dict[str, str], stack: contextlib.AsyncExitStack) -> list:
    conns = await md.connect_all("127.0.0.1", port, [md.Login(u, u, p) for u, p in logins.items()],
                                 concurrency=CONCURRENCY)
    keeper = asyncio.create_task(md.keep_alive(conns))
    stack.callback(keeper.cancel)
    stack.callback(md.close_all, conns)
    return [(lambda c=c: c.send(f"vigil/v1/car/{c.username}/fix", b"x" * 200)) for c in conns]


async def measure(kind: str, port: int, logins: dict[str, str]) -> dict:
    me = psutil.Process()
    rss0 = me.memory_info().rss
    async with contextlib.AsyncExitStack() as stack:
        t0 = time.perf_counter()
        senders = await (_aiomqtt if kind == "aiomqtt" else _lean)(port, logins, stack)
        out = {"clients": len(senders), "connect_s": round(time.perf_counter() - t0, 2),
               "rss_added_mb": round((me.memory_info().rss - rss0) / 2**20, 1)}
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        await asyncio.sleep(SECONDS)
        out["idle_cpu_per_s"] = round((sum(me.cpu_times()[:2]) - cpu0) / (time.perf_counter() - t0), 3)
        cpu0, t0 = sum(me.cpu_times()[:2]), time.perf_counter()
        for tick in range(SECONDS):
            await asyncio.gather(*(send() for send in senders))
            delay = t0 + tick + 1 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        wall = time.perf_counter() - t0
        out.update(publish_wall_s=round(wall, 1), publish_cpu_per_s=round((sum(me.cpu_times()[:2]) - cpu0) / wall, 2),
                   messages=len(senders) * SECONDS, messages_per_s=round(len(senders) * SECONDS / wall))
    return out


def child(kind: str, port: int, logins_file: str) -> None:
    logins = json.loads(Path(logins_file).read_text())
    print(json.dumps(asyncio.run(measure(kind, port, logins))), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "PORT", "LOGINS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    md.raise_fd_limit(args.n + 200)
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-clients-"))
    try:
        logins = {f"dev-{i:05d}": mqtt_auth.new_password() for i in range(args.n)}
        (work / "logins.json").write_text(json.dumps(logins))
        (work / "passwd").write_text(mqtt_auth.render_password_file(
            (u, mqtt_auth.hash_password(p)) for u, p in logins.items()))
        (work / "acl").write_text(mqtt_auth.render_acl([], []))
        port = free_port()
        run_as = "user root\n" if os.geteuid() == 0 else ""
        (work / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\npersistence false\n{run_as}"
                                             + mqtt_auth.mosquitto_auth_conf(work / "passwd", work / "acl"))
        with open(work / "mosquitto.log", "wb") as log:
            broker = subprocess.Popen(["mosquitto", "-c", str(work / "mosquitto.conf")], stdout=log,
                                      stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        try:
            wait_for_port(port, broker, work / "mosquitto.log")
            result = {}
            for kind in ("aiomqtt", "lean"):
                proc = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--child", kind, str(port),
                                       str(work / "logins.json")], capture_output=True, text=True, timeout=900)
                if proc.returncode:
                    raise SystemExit(f"{kind}: {proc.stderr[-2000:]}")
                result[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{kind:8}", json.dumps(result[kind]), flush=True)
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["host"] = {"cpus": os.cpu_count(), "note": "shared machine: other jobs ran meanwhile"}
    print("RESULT " + json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
