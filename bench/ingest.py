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


# ---------------------------------------------------------------------------------------------- services


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a server we started gets SIGTERM if the benchmark is killed, so no orphan.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


@dataclass
class Broker:
    url: str
    host: str
    port: int
    pid: int
    conf: str


@contextlib.contextmanager
def mosquitto(max_inflight: int, max_queued: int) -> Iterator[Broker]:
    """A private Mosquitto on a free port: no persistence, in-flight and queue limits as given."""
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if binary is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-mqtt-"))
    conf = (
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"max_inflight_messages {max_inflight}\nmax_queued_messages {max_queued}\nmax_queued_bytes 0\n"
    )
    (workdir / "mosquitto.conf").write_text(conf)
    logfile = workdir / "mosquitto.log"
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            [binary, "-c", str(workdir / "mosquitto.conf")], stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    try:
        wait_for_port(port, proc, logfile)
        yield Broker(f"mqtt://127.0.0.1:{port}", "127.0.0.1", port, proc.pid, conf.replace("\n", "; ").strip("; "))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str, int | None]]:
    """(admin URL, postmaster pid when on this machine): ``VIGIL_BENCH_DATABASE_URL`` if set, else a
    private pgserver instance."""
    import psycopg

    url = os.environ.get("VIGIL_BENCH_DATABASE_URL")
    with contextlib.nullcontext(url) if url else postgres_server() as admin_url:
        postmaster = None
        with contextlib.suppress(Exception), psycopg.connect(admin_url) as conn:
            backend = psutil.Process(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            if backend.name().startswith("postgres"):  # else the server is elsewhere: no CPU figures for it
                postmaster = backend.ppid()
        yield admin_url, postmaster


def forget_session(broker: Broker, client_id: str) -> None:
    """Discard a persistent session: a clean-session connect with the same id drops it and its queue."""
    if shutil.which("mosquitto_sub") is None:
        return
    subprocess.run(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-i", client_id, "-t", "vigil-bench/none", "-E"],
        check=False, timeout=10, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


# ---------------------------------------------------------------------------------------------- publisher


def _publisher_main(conn, kind: str, mqtt_url: str, ids: list[str], fixes_per_device: int, fixes_per_message: int,
                    start_ms: int, seed: int) -> None:
    from simulators.publisher import run_cars

    packets = _raw_packets(ids, fixes_per_device, fixes_per_message, start_ms, seed) if kind == "raw" else None
    conn.send(("ready", os.getpid()))
    if conn.recv() != "go":
        return
    t0 = time.monotonic()
    try:
        if packets is not None:
            _raw_publish(mqtt_url, packets)
            n = len(ids) * fixes_per_device
        else:
            n = asyncio.run(run_cars(
                mqtt_url, ids, fixes_per_car=fixes_per_device, interval_s=INTERVAL_S, realtime=False,
                fixes_per_message=fixes_per_message, start_ms=start_ms, seed=seed,
            ))
    except BaseException as exc:  # noqa: BLE001 — reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("done", n, t0, time.monotonic()))


def _raw_packets(
    ids: list[str], fixes_per_device: int, fixes_per_message: int, start_ms: int, seed: int
) -> list[bytes]:
    """run_cars' messages (same simulator, payload encoder, order and seq) as ready MQTT 3.1.1 QoS 1
    PUBLISH packets, built before the clock starts: a load generator that costs almost no CPU."""
    from simulators.cars import encode_fix_message, fix_topic, fixes_from_sample, initial_state, sample, step

    state = initial_state(len(ids), seed=seed)
    rng = np.random.default_rng([seed, 1])
    topics = [fix_topic(d).encode() for d in ids]
    buffers: list[list[dict]] = [[] for _ in ids]
    seqs = [0] * len(ids)
    packets: list[bytes] = []

    def flush() -> None:
        for i, device_id in enumerate(ids):
            seqs[i] += 1
            payload = encode_fix_message(device_id, seqs[i], buffers[i])
            head = len(topics[i]).to_bytes(2, "big") + topics[i] + (len(packets) % 65535 + 1).to_bytes(2, "big")
            packets.append(b"\x32" + _varint(len(head) + len(payload)) + head + payload)
            buffers[i] = []

    for tick in range(fixes_per_device):
        if tick:
            state = step(state, INTERVAL_S, rng)
        ts = start_ms + int(round(tick * INTERVAL_S * 1000))
        for buf, fix in zip(buffers, fixes_from_sample(sample(state, rng), ts)):
            buf.append(fix)
        if len(buffers[0]) >= fixes_per_message:
            flush()
    if buffers[0]:
        flush()
    return packets


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, b = divmod(n, 128)
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _raw_publish(mqtt_url: str, packets: list[bytes], window: int = 2000, chunk: int = 200) -> None:
    """Send the packets on one clean-session connection, at most ``window`` unacknowledged; returns once
    every PUBACK is in. Packet ids cycle 1..65535, so ``window`` must stay far below that."""
    import socket
    import threading

    from vigil.settings import parse_mqtt_url

    host, port = parse_mqtt_url(mqtt_url)
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_id = f"bench-raw-{uuid.uuid4().hex[:8]}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    sock.sendall(b"\x10" + _varint(len(body)) + body)
    connack = sock.recv(4)
    if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
        raise RuntimeError(f"MQTT CONNECT refused: {connack!r}")
    acked = 0
    done = threading.Condition()
    error: list[str] = []

    def read_acks() -> None:
        nonlocal acked
        rest = b""
        while acked < len(packets):
            data = sock.recv(1 << 16)
            if not data:
                error.append("broker closed the connection")
                break
            rest += data
            k = len(rest) // 4
            if any(rest[i] != 0x40 for i in range(0, 4 * k, 4)):
                error.append(f"unexpected packet from the broker: {rest[:8]!r}")
                break
            rest = rest[4 * k:]
            with done:
                acked += k
                done.notify()
        with done:
            done.notify()

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    sent = 0
    while sent < len(packets) and not error:
        with done:
            while sent - acked >= window and not error:
                done.wait()
        end = min(len(packets), sent + chunk, acked + window)
        sock.sendall(b"".join(packets[sent:end]))
        sent = end
    reader.join()
    if error:
        raise RuntimeError(error[0])
    sock.sendall(b"\xe0\x00")
    sock.close()


class Publisher:
    """A publisher (``run_cars``, or the pre-encoded ``raw`` stream) in a spawned process; ``go()`` starts
    publishing once its imports (and encoding) are done."""

    def __init__(self, kind: str, mqtt_url: str, ids: list[str], fixes_per_device: int, fixes_per_message: int,
                 start_ms: int, seed: int = SEED):
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_publisher_main, name="bench-publisher", daemon=True,
            args=(child, kind, mqtt_url, ids, fixes_per_device, fixes_per_message, start_ms, seed),
        )
        self.pid = 0
        self.published = 0
        self.t0 = self.t1 = 0.0
        self.done = False

    async def start(self) -> None:
        if self.proc.pid is None:
            self.proc.start()
        while not self._conn.poll():
            if not self.proc.is_alive():
                raise RuntimeError(f"publisher exited with {self.proc.exitcode} before it was ready")
            await asyncio.sleep(0.01)
        self.pid = self._conn.recv()[1]

    def go(self) -> None:
        self._conn.send("go")

    def poll(self) -> bool:
        """True once publishing has finished (every PUBACK received); raises if it failed."""
        if self.done:
            return True
        if not self._conn.poll():
            if not self.proc.is_alive():
                raise RuntimeError(f"publisher exited with {self.proc.exitcode}")
            return False
        msg = self._conn.recv()
        if msg[0] == "error":
            raise RuntimeError(f"publisher failed: {msg[1]}")
        _, self.published, self.t0, self.t1 = msg
        self.done = True
        return True

    def stop(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(Exception):
                self._conn.send("quit")
            self.proc.join(2)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        self._conn.close()


class Publishers:
    """``count`` publisher processes, each with its own slice of the devices (and its own MQTT client)."""

    def __init__(self, kind: str, count: int, mqtt_url: str, ids: list[str], fixes_per_device: int,
                 fixes_per_message: int):
        start_ms = start_ms_for(fixes_per_device)
        count = max(1, min(count, len(ids)))
        self.members = [
            Publisher(kind, mqtt_url, ids[k::count], fixes_per_device, fixes_per_message, start_ms, SEED + k)
            for k in range(count)
        ]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.members]

    @property
    def published(self) -> int:
        return sum(p.published for p in self.members)

    @property
    def t0(self) -> float:
        return min(p.t0 for p in self.members)

    @property
    def t1(self) -> float:
        return max(p.t1 for p in self.members)

    async def start(self) -> None:
        for p in self.members:
            p.proc.start()
        for p in self.members:
            await p.start()

    def go(self) -> None:
        for p in self.members:
            p.go()

    def poll(self) -> bool:
        return all([p.poll() for p in self.members])

    def stop(self) -> None:
        for p in self.members:
            p.stop()


# ---------------------------------------------------------------------------------------------- CPU


class CpuMeter:
    """CPU seconds per named group of processes between :meth:`start` and :meth:`stop`, and how busy
    the whole machine was (share of all cores)."""

    def __init__(self, groups: dict[str, list[int]], postmaster: int | None) -> None:
        self.groups = groups
        self.postmaster = postmaster
        self._a: dict[str, dict[int, float]] = {}
        self._sys_a = None
        self._t_a = 0.0

    def _pids(self) -> dict[str, list[int]]:
        groups = {k: list(v) for k, v in self.groups.items()}
        if self.postmaster:
            with contextlib.suppress(psutil.Error):
                pm = psutil.Process(self.postmaster)
                groups["postgres"] = [pm.pid] + [c.pid for c in pm.children()]
        return groups

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, pids in self._pids().items():
            out[name] = {}
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    t = psutil.Process(pid).cpu_times()
                    out[name][pid] = t.user + t.system
        return out

    def start(self) -> None:
        self._a = self._sample()
        self._sys_a = psutil.cpu_times()
        self._t_a = time.monotonic()

    def stop(self) -> dict[str, float]:
        b = self._sample()
        sys_b = psutil.cpu_times()
        wall = time.monotonic() - self._t_a
        out = {
            name: round(sum(t - self._a.get(name, {}).get(pid, 0.0) for pid, t in pids.items()), 2)
            for name, pids in b.items()
        }
        d_busy = _busy(sys_b) - _busy(self._sys_a)
        d_total = d_busy + (sys_b.idle + sys_b.iowait) - (self._sys_a.idle + self._sys_a.iowait)
        # CPU seconds of everything else on the machine (other jobs, py-spy, the kernel): a benchmark
        # sharing its cores with strangers measures them too, so say how much.
        out["others"] = round(max(0.0, d_busy - sum(out.values())), 2)
        out["machine_busy_pct"] = round(100 * d_busy / d_total, 1) if d_total else 0.0
        out["wall_s"] = round(wall, 2)
        return out


def _busy(t) -> float:
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


# ---------------------------------------------------------------------------------------------- end to end


_NOT_PROCESSES = ("others", "machine_busy_pct", "wall_s")


def cpu_cost(cpu_s: dict[str, float], units: int) -> dict[str, float]:
    """CPU µs per unit (fix or message) of each of our processes, and their total.

    Robust to other jobs on the machine, unlike rates; ``cores / total`` bounds the rate our processes
    could reach with the machine's cores to themselves and perfect overlap.
    """
    ours = {k: v for k, v in cpu_s.items() if k not in _NOT_PROCESSES}
    out = {k: round(v * 1e6 / units, 1) for k, v in ours.items()}
    out["total"] = round(sum(ours.values()) * 1e6 / units, 1)
    return out


def device_ids(n: int) -> list[str]:
    return [f"bench-car-{i:05d}" for i in range(n)]


def start_ms_for(fixes_per_device: int) -> int:
    """Fixes end a minute before now: in the past, never 'in the future', inside the ready partitions."""
    return time.time_ns() // 1_000_000 - 60_000 - int(fixes_per_device * INTERVAL_S * 1000)


@dataclass
class Profiler:
    """py-spy recording the given processes while a mode runs (``--profile DIR``)."""

    out_dir: Path | None
    rate: int = 200
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, label: str, pids: dict[str, int]) -> None:
        if self.out_dir is None:
            return
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        for name, pid in pids.items():
            out = self.out_dir / f"{label}-{name}.txt"
            self.procs.append(subprocess.Popen(
                [pyspy, "record", "--pid", str(pid), "--rate", str(self.rate), "--format", "raw", "--idle",
                 "--nonblocking", "-o", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()


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
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, preexec_fn=_die_with_parent,
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
