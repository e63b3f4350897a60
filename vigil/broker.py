"""The embedded MQTT broker default: Mosquitto when installed, else an in-process amqtt broker."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the broker will: a port in TIME_WAIT after the last run is free to listen on.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(preferred: int = 1883) -> int:
    """``preferred`` if free on loopback, else any free port."""
    if _port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    # PR_SET_PDEATHSIG: the broker gets SIGTERM if vigil dies without cleaning up, so no orphan.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _broker_preexec() -> None:
    die_with_parent()
    # One socket per device connection: a desktop's default soft limit (1024) would cap the broker at
    # about a thousand devices, though the hard limit allows far more.
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class EmbeddedBroker:
    """Start with :meth:`start` (returns the mqtt:// URL), stop with :meth:`stop`."""

    def __init__(self, data_dir: Path, *, port: int | None = None, prefer: str = "mosquitto") -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.prefer = prefer
        self.kind = ""
        self._proc: subprocess.Popen | None = None
        self._amqtt = None
        self._auth = False

    def _mosquitto_binary(self) -> str | None:
        return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)

    def prefers_mosquitto(self) -> bool:
        return self.prefer == "mosquitto" and self._mosquitto_binary() is not None

    async def start(self, auth_conf: str = "") -> str:
        """Start and return the mqtt:// URL. ``auth_conf``: Mosquitto lines enabling password file and
        ACL (see :func:`ingest.mqtt_auth.mosquitto_auth_conf`); amqtt ignores it and stays anonymous."""
        port = self.port or pick_port()
        if self.prefers_mosquitto():
            await self._start_mosquitto(self._mosquitto_binary(), port, auth_conf)
        else:
            if auth_conf:
                log.warning("amqtt fallback broker: no per-device authentication (install mosquitto for it)")
            await self._start_amqtt(port)
        self.port = port
        log.info("embedded MQTT broker: %s on 127.0.0.1:%d", self.kind, port)
        return f"mqtt://127.0.0.1:{port}"

    @property
    def authenticated(self) -> bool:
        return self._proc is not None and self._auth

    def reload(self) -> None:
        """Make Mosquitto re-read its password file and ACL (it also drops clients no longer allowed)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGHUP)

    async def _start_mosquitto(self, binary: str, port: int, auth_conf: str = "") -> None:
        workdir = self.data_dir / "mosquitto"
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "mosquitto.conf"
        # Persistence keeps the gateway's QoS 1 session (and messages queued for it) across restarts.
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {workdir}/\n"
            "max_queued_messages 100000\nmax_inflight_messages 1000\n"
            # As root Mosquitto would drop to user "mosquitto", which can neither read the 0600 password
            # file nor write persistence under a root-owned data dir; this broker is private to vigil.
            + ("user root\n" if os.geteuid() == 0 else "")
            + auth_conf
        )
        self._auth = bool(auth_conf)
        log_file = open(workdir / "mosquitto.log", "ab")
        # A session of its own: Ctrl-C (sent to the terminal's whole process group) must not stop the broker
        # before vigil's orderly shutdown has let the gateway and the simulators disconnect; vigil stops it.
        self._proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_broker_preexec,
            start_new_session=True,
        )
        log_file.close()
        self.kind = "mosquitto"
        for _ in range(200):
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}; see {workdir}/mosquitto.log")
            if not _port_free(port):
                return
            await asyncio.sleep(0.025)
        raise RuntimeError(f"mosquitto did not listen on {port}")

    async def _start_amqtt(self, port: int) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._amqtt = Broker(config)
        await self._amqtt.start()
        self.kind = "amqtt (in-process)"

    async def stop(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 5)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._amqtt is not None:
            broker, self._amqtt = self._amqtt, None
            await broker.shutdown()
