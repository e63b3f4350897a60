"""Alarm latency under ingest load: publish → operator stream, beside the DB row and a plain MQTT receipt.

A Vigil runtime (gateway, in-process bus, writer, trips, alarms, API) runs in this process on a private
Mosquitto and PostgreSQL. A background process publishes car fixes at ``--load-share`` (0.5) of the
ingest capacity, measured first with bench/ingest.py's end-to-end run (raw publisher, 10 fixes per
message) unless ``--capacity`` gives it. Meanwhile a probe process publishes ``--alarms`` water-leak
events (one per home kit) at uniformly random instants over ``--duration-s`` and times, for each:

- stream: publish → the ``raised`` event on ``GET /v1/operator/alarms/stream`` (SSE), the headline, read
  from the alarm process's API when the runtime runs one (``VIGIL_ALARM_PROCESS``), else from the main API;
- and the same stream from the main API (``main_api_stream``), which shares the ingest process's loop;
- peer, MQTT: publish → receipt by a plain subscriber of the same topic (the broker's own floor);
- peer, DB row: publish → ``alarms.raised_at`` (the alarm transaction's clock; commit comes just after);
- and, to see where the time goes, publish → the gateway's receipt stamp (``device_events.received_at``).

Target (issue 6): stream p99 ≤ 100 ms, 100 % delivered. Last line: ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

import numpy as np  # noqa: E402

import ingest_harness as harness  # noqa: E402
from tests.services import free_port, scratch_database  # noqa: E402

log = logging.getLogger("bench.alarms")
FIXES_PER_MESSAGE = 10


def _bench_ingest():
    """bench/ingest.py as a module (its name clashes with the ``ingest`` package)."""
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def measure_capacity(broker, admin_url, postmaster) -> dict:
    bi = _bench_ingest()
    # Long enough (300k fixes) for the trip processor's steady cost to count, not just a burst into storage.
    args = SimpleNamespace(devices=1000, fixes_per_device=300, publishers=1, stall_s=15.0)
    out = await bi.end_to_end(args, broker, admin_url, postmaster, "raw", "batched", harness.Profiler(None))
    return {"fixes_per_s": out["fixes_per_s"], "complete": out["complete"], "lost": out["lost"]}


# ---------------------------------------------------------------------------------------------- load


def _load_main(mqtt_url: str, ids: list[str], fixes_per_device: int, msgs_per_s: float, ready, go) -> None:
    packets = harness._raw_packets(ids, fixes_per_device, FIXES_PER_MESSAGE, harness.start_ms_for(fixes_per_device),
                                   harness.SEED)
    ready.set()
    go.wait()
    harness._raw_publish(mqtt_url, packets, window=2000, chunk=max(1, int(msgs_per_s / 100)), msgs_per_s=msgs_per_s)


# ---------------------------------------------------------------------------------------------- probe


def _operator_token(settings) -> str:
    """An access token of an operator, signed with the runtime's key (no account or login needed to read)."""
    import datetime as dt

    from accounts import AuthConfig, Caller, issue_access

    caller = Caller(0, "bench-operator", "operator", None)
    return issue_access(AuthConfig.from_settings(settings), caller, now=dt.datetime.now(dt.timezone.utc))[0]


def _probe_main(conn, http_urls: list[str], mqtt_url: str, kits: list[str], duration_s: float, seed: int,
                cursor: int, token: str) -> None:
    try:
        conn.send(("done", asyncio.run(_probe(conn, http_urls, mqtt_url, kits, duration_s, seed, cursor, token))))
    except BaseException as exc:  # noqa: BLE001 — reported to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _probe(conn, http_urls, mqtt_url, kits, duration_s, seed, cursor, token) -> dict:
    """``http_urls``: the API whose stream is the headline, then optionally another one to compare."""
    import aiomqtt
    import httpx

    from vigil.settings import parse_mqtt_url

    host, port = parse_mqtt_url(mqtt_url)
    offsets = np.sort(np.random.default_rng(seed).uniform(0.0, duration_s, len(kits)))
    published: dict[str, float] = {}
    streams: list[dict[str, float]] = [{} for _ in http_urls]
    received: dict[str, float] = {}
    ready = [asyncio.Event() for _ in range(len(http_urls) + 1)]

    async def read_stream(http_url: str, streamed: dict[str, float], connected: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=None, headers={"Authorization": f"Bearer {token}"}) as client:
            async with client.stream("GET", f"{http_url}/v1/operator/alarms/stream?after={cursor}") as response:
                response.raise_for_status()
                connected.set()
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        t = time.time()
                        body = json.loads(line[6:])
                        if body["kind"] == "raised":
                            streamed.setdefault(body["alarm"]["event_id"], t)

    async def read_mqtt() -> None:
        async with aiomqtt.Client(host, port, identifier=f"bench-alarm-sub-{uuid.uuid4().hex[:6]}") as client:
            await client.subscribe("vigil/v1/home/+/event", qos=1)
            ready[-1].set()
            async for message in client.messages:
                t = time.time()
                received.setdefault(json.loads(message.payload)["events"][0]["event_id"], t)

    readers = [asyncio.create_task(read_stream(u, d, e)) for u, d, e in zip(http_urls, streams, ready)]
    readers.append(asyncio.create_task(read_mqtt()))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 30)
    conn.send(("ready",))
    async with aiomqtt.Client(host, port, identifier=f"bench-alarm-pub-{uuid.uuid4().hex[:6]}") as client:
        t0 = time.monotonic()
        for i, (kit, offset) in enumerate(zip(kits, offsets.tolist())):
            await asyncio.sleep(max(0.0, t0 + offset - time.monotonic()))
            event_id = f"bench-{i}"
            now = time.time()
            payload = {"v": 1, "seq": 1, "events": [{"ts": int(now * 1000), "type": "water_leak",
                                                     "event_id": event_id, "sensor": "bench"}]}
            published[event_id] = now
            await client.publish(f"vigil/v1/home/{kit}/event", json.dumps(payload).encode(), qos=1)
    deadline = time.monotonic() + 30
    while min(map(len, streams)) < len(kits) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {"published": published, "streamed": streams[0], "other_streams": streams[1:], "received": received}


# ---------------------------------------------------------------------------------------------- run


def _latencies_ms(published: dict[str, float], seen: dict[str, float]) -> np.ndarray:
    return np.array([(seen[k] - t) * 1000.0 for k, t in published.items() if k in seen])


def _stats(ms: np.ndarray) -> dict:
    if not len(ms):
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    p = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(float(p[0]), 1), "p95_ms": round(float(p[1]), 1), "p99_ms": round(float(p[2]), 1),
            "max_ms": round(float(ms.max()), 1)}


async def _from_probe(conn, proc) -> tuple:
    while not conn.poll():
        if not proc.is_alive():
            raise RuntimeError(f"probe exited with {proc.exitcode}")
        await asyncio.sleep(0.05)
    message = conn.recv()
    if message[0] == "error":
        raise RuntimeError(f"probe failed: {message[1]}")
    return message


def _dump_tasks() -> None:
    """SIGUSR1: print where every task waits (a run that seems stuck)."""
    for task in asyncio.all_tasks():
        task.print_stack(limit=6, file=sys.stderr)


async def run(args) -> dict:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
    from storage import devices
    from vigil.runtime import Runtime
    from vigil.settings import Settings

    result: dict = {"alarms": args.alarms, "duration_s": args.duration_s, "load_share": args.load_share,
                    "cpus": os.cpu_count(), "parts": args.parts, "alarm_process": not args.in_process}
    with harness.mosquitto(20_000, 10_000_000) as broker, harness.postgres() as (admin_url, postmaster):
        capacity = args.capacity
        if capacity is None:
            measured = await measure_capacity(broker, admin_url, postmaster)
            result["capacity_run"] = measured
            capacity = measured["fixes_per_s"]
        target = capacity * args.load_share
        result.update(capacity_fixes_per_s=capacity, load_target_fixes_per_s=round(target))
        data_dir = Path(tempfile.mkdtemp(prefix="vigil-bench-alarms-"))
        with scratch_database(admin_url) as db_url:
            runtime = Runtime(Settings(mqtt_url=broker.url, database_url=db_url, http_port=free_port(),
                                       data_dir=data_dir, mqtt_client_id=f"vigil-bench-{uuid.uuid4().hex[:8]}",
                                       log_level="WARNING", alarm_process=not args.in_process),
                              parts=frozenset(args.parts.split(",")))
            ctx = mp.get_context("spawn")
            load = probe = None
            try:
                await runtime.start()
                cars = harness.device_ids(args.cars)
                kits = [f"bench-kit-{i:05d}" for i in range(args.alarms)]
                await devices.provision(runtime.db, cars, kind="car")
                await devices.provision(runtime.db, kits, kind="home", owner="bench-customer")
                load_s = args.duration_s + 15
                fixes_per_device = max(FIXES_PER_MESSAGE, int(target * load_s / len(cars)))
                ready, go = ctx.Event(), ctx.Event()
                load = ctx.Process(target=_load_main, daemon=True, args=(
                    broker.url, cars, fixes_per_device, target / FIXES_PER_MESSAGE, ready, go))
                load.start()
                while not ready.wait(0.01):
                    if not load.is_alive():
                        raise RuntimeError(f"load publisher exited with {load.exitcode} before it was ready")
                    await asyncio.sleep(0.05)
                parent, child = ctx.Pipe()
                # Headline: the alarm process's stream when there is one; the main API's beside it.
                apis = list(dict.fromkeys([runtime.alarm_http_url, runtime.http_url]))
                probe = ctx.Process(target=_probe_main, daemon=True, args=(
                    child, apis, broker.url, kits, args.duration_s, args.seed, 0, _operator_token(runtime.settings)))
                go.set()
                stored0, t_load = runtime.metrics.get("vigil_storage_fixes_total"), time.monotonic()
                await asyncio.sleep(3.0)  # the load reaches its pace before the first alarm
                probe.start()
                await _from_probe(parent, probe)  # ready: stream and subscriber connected
                probe_out = (await _from_probe(parent, probe))[1]
                stored = runtime.metrics.get("vigil_storage_fixes_total") - stored0
                result["load_achieved_fixes_per_s"] = round(stored / (time.monotonic() - t_load))
                async with runtime.db.connection() as conn:
                    cur = await conn.execute("SELECT event_id, extract(epoch FROM raised_at) FROM alarms"
                                             " WHERE event_id LIKE 'bench-%%'")
                    rows = {r[0]: float(r[1]) for r in await cur.fetchall()}
                    cur = await conn.execute("SELECT event_id, extract(epoch FROM received_at) FROM device_events"
                                             " WHERE event_id LIKE 'bench-%%'")
                    arrived = {r[0]: float(r[1]) for r in await cur.fetchall()}
            finally:
                if probe is not None and probe.is_alive():
                    probe.terminate()
                if load is not None and load.is_alive():
                    load.terminate()
                    load.join(5)
                await runtime.stop()
                shutil.rmtree(data_dir, ignore_errors=True)
    published = probe_out["published"]
    stream = _latencies_ms(published, probe_out["streamed"])
    result.update({
        "sent": len(published), "delivered": len(stream), **_stats(stream),
        "stream_from": "alarm process API" if len(probe_out["other_streams"]) else "main API",
        "main_api_stream": ({"delivered": len(probe_out["other_streams"][0]),
                             **_stats(_latencies_ms(published, probe_out["other_streams"][0]))}
                            if probe_out["other_streams"] else None),
        "peer_db_row": {"rows": len(rows), **_stats(_latencies_ms(published, rows))},
        # Where the time goes: publish → the receipt stamp of the first stored copy (broker + inbox of the
        # alarm lane, in the alarm process when there is one).
        "gateway_receipt": _stats(_latencies_ms(published, arrived)),
        "peer_mqtt_receipt": {"received": len(probe_out["received"]),
                              **_stats(_latencies_ms(published, probe_out["received"]))},
        "target": {"p99_ms": 100, "delivered_share": 1.0},
    })
    result["met"] = bool(result["delivered"] == result["sent"] and result["p99_ms"] is not None
                         and result["p99_ms"] <= 100)
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--alarms", type=int, default=1000)
    p.add_argument("--duration-s", type=float, default=60.0, help="alarms are spread over this long")
    p.add_argument("--cars", type=int, default=1000, help="cars of the background load")
    p.add_argument("--capacity", type=float, default=None, help="ingest capacity, fixes/s (default: measure it)")
    p.add_argument("--load-share", type=float, default=0.5, help="background load as a share of the capacity")
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--parts", default="gateway,writer,trips,alarms,api",
                   help="runtime parts under test (diagnosis: leave out trips to see its share of the latency)")
    p.add_argument("--in-process", action="store_true",
                   help="alarm lane, service and stream in the main process (VIGIL_ALARM_PROCESS=0), as before issue 6")
    p.add_argument("--quick", action="store_true", help="200 alarms over 15 s")
    args = p.parse_args(argv)
    if args.quick:
        args.alarms, args.duration_s = 200, 15.0
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    result = asyncio.run(run(args))
    print(f"alarms: {result['delivered']}/{result['sent']} on the operator stream; p50 {result['p50_ms']} ms,"
          f" p99 {result['p99_ms']} ms (target 100) under {result.get('load_achieved_fixes_per_s')} fixes/s"
          f" of load (target {result['load_target_fixes_per_s']}, capacity {result['capacity_fixes_per_s']})")
    print(f"stream read from the {result['stream_from']}; main API stream: {result['main_api_stream']}")
    print(f"peer DB row: {result['peer_db_row']}")
    print(f"peer MQTT receipt: {result['peer_mqtt_receipt']}")
    print("RESULT " + json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
