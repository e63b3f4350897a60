"""Harness of bench/ingest.py: private Mosquitto and PostgreSQL, publisher processes (run_cars and a raw
socket publisher), CPU metering and profiling."""

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

from vigil.broker import die_with_parent  # noqa: E402
from tests.services import free_port, postgres_server, scratch_database, wait_for_port  # noqa: E402


log = logging.getLogger("bench.ingest")

MODES = {"batched": 10, "single": 1}  # fixes per MQTT message
TARGETS = {"fixes_per_s": 100_000, "msgs_per_s": 15_000}
DRAIN_TOPIC = "vigil/v1/#"
SEED = 11
INTERVAL_S = 1.0  # simulated seconds between a car's fixes


# ---------------------------------------------------------------------------------------------- services


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
            preexec_fn=die_with_parent,
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


def _raw_publish(mqtt_url: str, packets: list[bytes], window: int = 2000, chunk: int = 200,
                 msgs_per_s: float | None = None) -> None:
    """Send the packets on one clean-session connection, at most ``window`` unacknowledged; returns once
    every PUBACK is in. Packet ids cycle 1..65535, so ``window`` must stay far below that. With
    ``msgs_per_s`` the packets go out at that steady pace (a background load) instead of flat out."""
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
    t0 = time.monotonic()
    while sent < len(packets) and not error:
        if msgs_per_s:
            time.sleep(max(0.0, t0 + sent / msgs_per_s - time.monotonic()))
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
