"""Ingest benchmark: simulated cars → Mosquitto → gateway → bus → PostgreSQL, beside its two limits.

In one run, on this machine, with the same rows:

* **end to end**, per mode — ``batched`` (10 fixes per MQTT message) and ``single`` (1 fix per message).
  ``--devices`` provisioned cars publish ``--fixes-per-device`` fixes each at QoS 1, as fast as the broker
  acknowledges, stamped in the past (``run_cars(realtime=False)``), from a separate process, so publisher
  and pipeline share the cores as they would share one host. A vigil :class:`Runtime` (gateway, in-process
  bus, storage writer, API) runs in this process on a fresh database. The clock runs from the publisher's
  first publish until the storage writer has committed every expected fix; then the rows are counted in SQL.
* **peer (a), PostgreSQL alone**: the same number of rows, from the same simulator and seed, written with
  :class:`storage.fixes.FixWriter` (encode + COPY into staging + merge into ``fixes``), and as a raw binary
  COPY into the staging table without the merge. The database side of the storage design, CPU to itself.
* **peer (b), MQTT alone**: ``mosquitto_sub -q 1 -c`` (persistent session) draining the stream of the same
  publisher, same mode, same sizes, output to /dev/null. The broker + publisher ceiling.

Each of these runs with two publishers: ``run_cars`` (the headline, realistic but itself CPU-hungry) and
``raw`` (the same messages pre-encoded and written on a plain socket: what the pipeline does when the load
costs the server nothing, as real devices do). Every line reports CPU µs per message of each process.

Run from the repository root: ``python bench/ingest.py [--quick]``. The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402  (a dependency of pgserver, so always present with Vigil)

from tests.services import free_port, postgres_server, scratch_database, wait_for_port  # noqa: E402

log = logging.getLogger("bench.ingest")

MODES = {"batched": 10, "single": 1}  # fixes per MQTT message
TARGETS = {"fixes_per_s": 100_000, "msgs_per_s": 15_000}
DRAIN_TOPIC = "vigil/v1/#"
SEED = 11
INTERVAL_S = 1.0  # simulated seconds between a car's fixes

from vigil.broker import die_with_parent  # noqa: E402
from bench.ingest_harness import (  # noqa: E402
    Broker,
    mosquitto,
    postgres,
    forget_session,
    Publishers,
    CpuMeter,
    cpu_cost,
    device_ids,
    start_ms_for,
    Profiler,
)




async def end_to_end(args, broker: Broker, admin_url: str, postmaster: int | None, kind: str, mode: str,
                     profiler: Profiler) -> dict:
    from storage import devices
    from vigil.runtime import Runtime
    from vigil.settings import Settings

    per_message = MODES[mode]
    ids = device_ids(args.devices)
    expected = args.devices * args.fixes_per_device
    messages = args.devices * -(-args.fixes_per_device // per_message)
    client_id = f"vigil-bench-{uuid.uuid4().hex[:8]}"
    data_dir = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    out: dict = {"publisher": kind, "mode": mode, "fixes_per_message": per_message, "expected_fixes": expected,
                 "messages": messages}
    publisher = None
    with scratch_database(admin_url) as db_url:
        runtime = Runtime(Settings(
            mqtt_url=broker.url, database_url=db_url, http_port=free_port(), data_dir=data_dir,
            mqtt_client_id=client_id, log_level="WARNING",
        ))
        try:
            await runtime.start()
            await devices.provision(runtime.db, ids, kind="car")
            batch_sizes: list[int] = []
            enqueue = runtime.bus.enqueue

            async def counting_enqueue(topic, batch):
                batch_sizes.append(len(batch))
                return await enqueue(topic, batch)

            runtime.bus.enqueue = counting_enqueue  # observation only: the gateway's batch sizes
            publisher = Publishers(kind, args.publishers, broker.url, ids, args.fixes_per_device, per_message)
            await publisher.start()
            m = runtime.metrics
            base = m.get("vigil_storage_fixes_total")
            dup_base = m.get("vigil_storage_duplicates_total")
            cpu = CpuMeter({"pipeline": [os.getpid()], "publisher": publisher.pids, "mosquitto": [broker.pid]},
                           postmaster)
            cpu.start()
            profiler.start(f"{kind}-{mode}", {"pipeline": os.getpid(),
                                              **{f"publisher{k}": pid for k, pid in enumerate(publisher.pids)}})
            publisher.go()
            t_stored = None
            last, last_change = -1, time.monotonic()
            while True:
                now = time.monotonic()
                stored = m.get("vigil_storage_fixes_total") - base
                if stored != last:
                    last, last_change = stored, now
                if stored >= expected and t_stored is None:
                    t_stored = now
                if publisher.poll() and (t_stored is not None or now - last_change > args.stall_s):
                    break
                await asyncio.sleep(0.005)
            profiler.stop()
            out["cpu_s"] = cpu.stop()
            await asyncio.sleep(0.5)  # a late duplicate or stray would show now
            async with runtime.db.connection() as conn:
                rows, distinct = await (await conn.execute(
                    "SELECT count(*), count(DISTINCT (device_id, ts)) FROM fixes")).fetchone()
                dead = (await (await conn.execute("SELECT count(*) FROM dead_letters")).fetchone())[0]
            t_end = t_stored if t_stored is not None else last_change
            elapsed = t_end - publisher.t0
            out["cpu_us_per_fix"] = cpu_cost(out["cpu_s"], expected)
            out["cpu_us_per_msg"] = cpu_cost(out["cpu_s"], messages)
            out["cpu_bound_fixes_per_s"] = round((os.cpu_count() or 1) * 1e6 / out["cpu_us_per_fix"]["total"])
            out.update({
                "published": publisher.published,
                "stored": int(rows),
                "lost": max(0, expected - int(rows)),
                "duplicated": max(0, int(rows) - expected) + (int(rows) - int(distinct)),
                "redelivered_skipped": m.get("vigil_storage_duplicates_total") - dup_base,
                "dead_letters": int(dead),
                "complete": t_stored is not None,
                "elapsed_s": round(elapsed, 3),
                "fixes_per_s": round(int(rows) / elapsed),
                "msgs_per_s": round(messages * int(rows) / expected / elapsed),
                "publish_s": round(publisher.t1 - publisher.t0, 3),
                "publish_msgs_per_s": round(messages / (publisher.t1 - publisher.t0)),
                "gateway_batches": len(batch_sizes),
                "gateway_batch_fixes_mean": round(float(np.mean(batch_sizes)), 1) if batch_sizes else 0,
                "gateway_batch_fixes_max": max(batch_sizes, default=0),
            })
            return out
        finally:
            profiler.stop()
            if publisher is not None:
                publisher.stop()
            await runtime.stop()
            forget_session(broker, client_id)
            shutil.rmtree(data_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- peer (b)


async def mqtt_drain(args, broker: Broker, kind: str, mode: str) -> dict:
    """The same publisher, same mode and sizes, drained by ``mosquitto_sub`` instead of the gateway."""
    per_message = MODES[mode]
    messages = args.devices * -(-args.fixes_per_device // per_message)
    if shutil.which("mosquitto_sub") is None:
        return {"mode": mode, "skipped": "mosquitto_sub not installed (apt-get install mosquitto-clients)"}
    client_id = f"bench-drain-{uuid.uuid4().hex[:8]}"
    hp = ("-h", broker.host, "-p", str(broker.port))
    # The persistent session and its subscription exist before the first publish: nothing can be missed.
    sub_args = ["mosquitto_sub", *hp, "-c", "-i", client_id, "-q", "1", "-t", DRAIN_TOPIC]
    subprocess.run([*sub_args, "-E"], check=True, timeout=10)
    publisher = Publishers(
        kind, args.publishers, broker.url, device_ids(args.devices), args.fixes_per_device, per_message
    )
    sub = None
    try:
        await publisher.start()
        sub = await asyncio.create_subprocess_exec(
            *sub_args, "-C", str(messages),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, preexec_fn=die_with_parent,
        )
        cpu = CpuMeter({"mosquitto_sub": [sub.pid], "publisher": publisher.pids, "mosquitto": [broker.pid]}, None)
        cpu.start()
        publisher.go()
        exited = asyncio.ensure_future(sub.wait())
        while not exited.done():
            await asyncio.wait({exited}, timeout=0.05)
            if not exited.done() and publisher.poll() and time.monotonic() - publisher.t1 > args.stall_s:
                break
        t_end = time.monotonic() if exited.done() else None
        deadline = time.monotonic() + args.stall_s
        while not publisher.poll():
            if time.monotonic() > deadline:
                raise RuntimeError("the publisher did not get every PUBACK")
            await asyncio.sleep(0.01)
        cpu_s = cpu.stop()
        complete = t_end is not None and sub.returncode == 0
        elapsed = (t_end if t_end is not None else time.monotonic()) - publisher.t0
        return {
            "publisher": kind, "mode": mode, "messages": messages, "complete": complete, "elapsed_s": round(elapsed, 3),
            "msgs_per_s": round(messages / elapsed) if complete else None,
            "fixes_per_s": round(messages * per_message / elapsed) if complete else None,
            "publish_msgs_per_s": round(messages / (publisher.t1 - publisher.t0)),
            "cpu_s": cpu_s, "cpu_us_per_msg": cpu_cost(cpu_s, messages),
        }
    finally:
        if sub is not None and sub.returncode is None:
            sub.kill()
            await sub.wait()
        publisher.stop()
        forget_session(broker, client_id)


# ---------------------------------------------------------------------------------------------- peer (a)


def simulated_rows(codes: np.ndarray, fixes_per_device: int, start_ms: int):
    """The publisher's rows (same simulator, same seed), in tick order, as one FixBatch."""
    from simulators.cars import initial_state, sample, step
    from vigil.batch import FixBatch

    n = len(codes)
    state = initial_state(n, seed=SEED)
    rng = np.random.default_rng([SEED, 1])
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("lat", "lon", "speed_kmh", "heading_deg", "accuracy_m",
                                                         "ignition", "accel")}
    for tick in range(fixes_per_device):
        if tick:
            state = step(state, INTERVAL_S, rng)
        smp = sample(state, rng)
        for k in cols:
            cols[k].append(smp["accel_g" if k == "accel" else k])
    accel = np.concatenate(cols["accel"])
    total = n * fixes_per_device
    now = time.time_ns() // 1_000_000
    return FixBatch(
        device=np.tile(codes, fixes_per_device),
        ts_ms=np.repeat(start_ms + np.arange(fixes_per_device, dtype=np.int64) * int(INTERVAL_S * 1000), n),
        lat=np.concatenate(cols["lat"]), lon=np.concatenate(cols["lon"]),
        speed_kmh=np.concatenate(cols["speed_kmh"]), heading_deg=np.concatenate(cols["heading_deg"]),
        accuracy_m=np.concatenate(cols["accuracy_m"]),
        ignition=np.concatenate(cols["ignition"]).astype(np.int8),
        accel_x=accel[:, 0], accel_y=accel[:, 1], accel_z=accel[:, 2],
        seq=np.ones(total, np.int64), received_ms=np.full(total, now, np.int64),
    )


async def copy_limit(args, admin_url: str, postmaster: int | None, batch_sizes: list[int]) -> dict:
    """FixWriter alone on the same rows, for each batch size; and raw COPY into staging (no merge)."""
    from storage import Database, FixWriter, devices
    from storage.fixes import _CREATE_STAGE, _STAGE_COLUMNS, copy_payload

    out: dict = {"rows": args.devices * args.fixes_per_device, "fixwriter": {}, "raw_copy": {}}
    with scratch_database(admin_url) as url:
        db = await Database.open(url)
        try:
            found = await devices.provision(db, device_ids(args.devices), kind="car")
            rows = simulated_rows(np.array([d.id for d in found], np.int64), args.fixes_per_device,
                                  start_ms_for(args.fixes_per_device))
            n = len(rows)
            for size in batch_sizes:
                size = max(1, min(int(size), n))
                batches = [rows.take(np.arange(i, min(i + size, n))) for i in range(0, n, size)]
                async with db.connection() as conn:
                    await conn.execute("TRUNCATE fixes, device_last_fix")
                    await conn.commit()
                writer = FixWriter(db)
                cpu = CpuMeter({"bench": [os.getpid()]}, postmaster)
                cpu.start()
                t0 = time.perf_counter()
                inserted = 0
                for b in batches:
                    inserted += await writer.write(b)
                dt = time.perf_counter() - t0
                cpu_s = cpu.stop()
                async with db.connection() as conn:
                    stored = (await (await conn.execute("SELECT count(*) FROM fixes")).fetchone())[0]
                out["fixwriter"][str(size)] = {
                    "fixes_per_s": round(n / dt), "elapsed_s": round(dt, 3), "inserted": inserted,
                    "stored": int(stored), "cpu_s": cpu_s,
                }
                t0 = time.perf_counter()
                payloads = [copy_payload(b) for b in batches]
                encode_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                async with db.connection() as conn:
                    for payload in payloads:
                        async with conn.transaction():
                            await conn.execute(_CREATE_STAGE)
                            async with conn.cursor() as cur:
                                async with cur.copy(
                                    f"COPY fixes_stage ({_STAGE_COLUMNS}) FROM STDIN (FORMAT BINARY)"
                                ) as cp:
                                    await cp.write(payload)
                copy_s = time.perf_counter() - t0
                out["raw_copy"][str(size)] = {
                    "fixes_per_s": round(n / (encode_s + copy_s)), "encode_fixes_per_s": round(n / encode_s),
                    "copy_only_fixes_per_s": round(n / copy_s),
                }
        finally:
            await db.close()
    return out


# ---------------------------------------------------------------------------------------------- driver


def machine_busy_pct(seconds: float = 1.0) -> float:
    """How busy the machine's cores are before we start: other jobs make every rate here lower."""
    return round(psutil.cpu_percent(interval=seconds), 1)


async def run(args) -> dict:
    modes = [m for m in args.modes.split(",") if m]
    kinds = [k for k in args.publisher.split(",") if k]
    baseline = machine_busy_pct()
    if baseline > 10:
        log.warning("the machine is already %.0f%% busy: rates will be low; CPU µs per fix still hold", baseline)
    profiler = Profiler(Path(args.profile) if args.profile else None)
    if profiler.out_dir:
        profiler.out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"devices": args.devices, "fixes_per_device": args.fixes_per_device,
                    "fixes": args.devices * args.fixes_per_device, "publishers": args.publishers,
                    "machine_busy_before_pct": baseline,
                    "runs": {k: {} for k in kinds}, "drain": {k: {} for k in kinds}}
    with mosquitto(args.broker_inflight, args.broker_queued) as broker, postgres() as (admin_url, postmaster):
        result["broker"] = broker.conf.split("; ", 1)[1]
        for kind in kinds:
            for mode in modes:
                if not args.no_drain:
                    log.warning("peer (b): mosquitto_sub drains %s mode from the %s publisher", mode, kind)
                    result["drain"][kind][mode] = await mqtt_drain(args, broker, kind, mode)
                log.warning("end to end: %s mode from the %s publisher", mode, kind)
                result["runs"][kind][mode] = await end_to_end(args, broker, admin_url, postmaster, kind, mode, profiler)
        sizes = {min(args.copy_batch, result["fixes"])} | {
            int(round(r["gateway_batch_fixes_mean"]))
            for runs in result["runs"].values() for r in runs.values() if r["gateway_batches"]
        }
        log.warning("peer (a): FixWriter / COPY alone, batches of %s fixes", sorted(sizes))
        result["copy"] = await copy_limit(args, admin_url, postmaster, sorted(sizes, reverse=True))
    return summarize(args, result)


def _headline(r: dict, kind: str) -> dict:
    runs, drain = r["runs"].get(kind, {}), r["drain"].get(kind, {})
    size = str(min(r["copy_batch"], r["fixes"]))
    copy = r["copy"]["fixwriter"][size]["fixes_per_s"]
    fixes_per_s = runs.get("batched", {}).get("fixes_per_s")
    msgs_per_s = runs.get("single", {}).get("msgs_per_s")
    drain_rate = drain.get("single", {}).get("msgs_per_s")
    return {
        "fixes_per_s": fixes_per_s,
        "msgs_per_s": msgs_per_s,
        "copy_limit_fixes_per_s": copy,
        "raw_copy_fixes_per_s": r["copy"]["raw_copy"][size]["fixes_per_s"],
        "ratio_to_copy": round(fixes_per_s / copy, 3) if fixes_per_s else None,
        "mqtt_drain_msgs_per_s": drain_rate,
        "mqtt_drain_batched_msgs_per_s": drain.get("batched", {}).get("msgs_per_s"),
        "ratio_to_mqtt_drain": round(msgs_per_s / drain_rate, 3) if msgs_per_s and drain_rate else None,
        "met": {
            "fixes_per_s": bool(fixes_per_s and fixes_per_s >= TARGETS["fixes_per_s"]),
            "msgs_per_s": bool(msgs_per_s and msgs_per_s >= TARGETS["msgs_per_s"]),
        },
    }


def summarize(args, r: dict) -> dict:
    """Headline figures from the first publisher kind (run_cars by default); the pre-encoded ``raw``
    publisher's figures, when run, go under ``pipeline_only``: what the pipeline does when the load
    generator costs next to nothing, as real devices cost the server nothing."""
    r["copy_batch"] = args.copy_batch
    kinds = list(r["runs"])
    r.update(_headline(r, kinds[0]))
    if "raw" in kinds[1:]:
        r["pipeline_only"] = _headline(r, "raw")
    every = [m for runs in r["runs"].values() for m in runs.values()]
    r.update({
        "publisher": kinds[0],
        "lost": sum(m["lost"] for m in every),
        "duplicated": sum(m["duplicated"] for m in every),
        "targets": TARGETS,
        "cpus": os.cpu_count(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    })
    return r


def _cpu_text(cpu_us: dict, cpu_s: dict) -> str:
    parts = [f"{k} {v:g}" for k, v in cpu_us.items()]
    return " ".join(parts) + f" | others {cpu_s['others']:g} s, busy {cpu_s['machine_busy_pct']:g}%"


def print_table(r: dict) -> None:
    print(f"\nIngest benchmark: {r['devices']} devices x {r['fixes_per_device']} fixes = {r['fixes']} fixes per run,"
          f" {r['cpus']} CPUs, machine {r['machine_busy_before_pct']}% busy before start")
    print(f"broker: {r['broker']}")
    print(f"\n{'':44}{'fixes/s':>9}{'msgs/s':>9}{'secs':>7}{'lost':>6}{'dup':>5}  CPU µs per message by process")
    for kind, runs in r["runs"].items():
        for mode, m in runs.items():
            d = r["drain"][kind].get(mode)
            if d and not d.get("skipped"):
                print(f"  {f'MQTT drain, mosquitto_sub, {kind} {mode}':42}{d['fixes_per_s'] or '-':>9}"
                      f"{d['msgs_per_s'] or '-':>9}{d['elapsed_s']:>7.2f}{'':>11}"
                      f"  {_cpu_text(d['cpu_us_per_msg'], d['cpu_s'])}")
            print(f"  {f'end to end, {kind} {mode}':42}{m['fixes_per_s']:>9}{m['msgs_per_s']:>9}{m['elapsed_s']:>7.2f}"
                  f"{m['lost']:>6}{m['duplicated']:>5}  {_cpu_text(m['cpu_us_per_msg'], m['cpu_s'])}")
            print(f"  {'':42}publisher got PUBACKs at {m['publish_msgs_per_s']} msgs/s;"
                  f" gateway made {m['gateway_batches']}"
                  f" batches, mean {m['gateway_batch_fixes_mean']:g} fixes, max {m['gateway_batch_fixes_max']}")
    for size, c in r["copy"]["fixwriter"].items():
        raw = r["copy"]["raw_copy"][size]
        print(f"  {f'FixWriter alone, {size}-fix batches':42}{c['fixes_per_s']:>9}{'':>9}{c['elapsed_s']:>7.2f}{'':>11}"
              f"  raw COPY to staging {raw['fixes_per_s']}/s (encode {raw['encode_fixes_per_s']}/s,"
              f" COPY {raw['copy_only_fixes_per_s']}/s)")
    print()
    for label, h in (("", r), ("pipeline only (raw publisher): ", r.get("pipeline_only"))):
        if h:
            print(f"  {label}batched {h['fixes_per_s']} fixes/s = {h['ratio_to_copy']} x FixWriter alone;"
                  f" single {h['msgs_per_s']} msgs/s = {h['ratio_to_mqtt_drain']} x MQTT drain; met {h['met']}")
    print(f"  targets {r['targets']}; lost {r['lost']}, duplicated {r['duplicated']}\n")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--fixes-per-device", type=int, default=120)
    p.add_argument("--quick", action="store_true", help="~20 s smoke run: 500 devices x 40 fixes, run_cars only")
    p.add_argument("--modes", default="batched,single", help="comma-separated: batched, single")
    p.add_argument("--publisher", default="run_cars,raw",
                   help="comma-separated, the first gives the headline: run_cars = simulators.publisher (aiomqtt),"
                        " the realistic load; raw = the same messages pre-encoded and written on a plain socket,"
                        " which shows the pipeline without the publisher's CPU")
    p.add_argument("--publishers", type=int, default=1,
                   help="publisher processes, each with a slice of the devices (1: one client, as run_cars is)")
    p.add_argument("--copy-batch", type=int, default=20_000,
                   help="fixes per FixWriter batch in peer (a); default = a full gateway batch of 2000 x 10")
    p.add_argument("--broker-inflight", type=int, default=20_000,
                   help="Mosquitto max_inflight_messages (per client, broker → client); 0 = unlimited")
    p.add_argument("--broker-queued", type=int, default=10_000_000, help="Mosquitto max_queued_messages")
    p.add_argument("--no-drain", action="store_true", help="skip peer (b)")
    p.add_argument("--stall-s", type=float, default=15.0, help="give up this long after the last progress")
    p.add_argument("--profile", metavar="DIR", help="py-spy record (raw format) pipeline and publishers into DIR")
    args = p.parse_args(argv)
    if args.quick:
        args.devices, args.fixes_per_device = 500, 40
        if "--publisher" not in " ".join(sys.argv if argv is None else argv):
            args.publisher = "run_cars"
    unknown = {k for k in args.publisher.split(",") if k} - {"run_cars", "raw"}
    if unknown:
        p.error(f"unknown publisher {sorted(unknown)}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    # SIGTERM stops like Ctrl-C, so the servers and processes started here are stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    result = asyncio.run(run(args))
    print_table(result)
    print("RESULT " + json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
