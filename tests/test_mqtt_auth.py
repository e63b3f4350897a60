"""MQTT credentials: the hash format against ``mosquitto_passwd``, and the generated password file + ACL
enforced by a real Mosquitto with a real PostgreSQL behind them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import aiomqtt
import pytest

from ingest import mqtt_auth
from storage import devices
from tests.services import free_port, wait_for_port
from vigil.errors import NotFound, RejectedInput

#: Bound on every network wait in this module (s).
WAIT = 10.0


def _binary(name: str, fallback: str) -> str:
    found = shutil.which(name) or (fallback if os.path.exists(fallback) else None)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `make test`, which installs it")
    return found


# --- pure parts -------------------------------------------------------------------------------------


def test_hash_format_and_round_trip():
    encoded = mqtt_auth.hash_password("s3cret")
    empty, algo, iterations, salt, digest = encoded.split("$")
    assert (empty, algo, iterations) == ("", "7", "101")
    assert len(base64.b64decode(salt, validate=True)) == 12
    assert len(base64.b64decode(digest, validate=True)) == 64
    assert mqtt_auth.verify_password("s3cret", encoded)
    assert not mqtt_auth.verify_password("s3cret ", encoded)
    assert mqtt_auth.hash_password("s3cret") != encoded, "each hash gets a fresh salt"


def test_hash_is_deterministic_given_salt_and_iterations():
    a = mqtt_auth.hash_password("pw", salt=b"0123456789ab", iterations=7)
    assert a == mqtt_auth.hash_password("pw", salt=b"0123456789ab", iterations=7)
    assert a.startswith("$7$7$MDEyMzQ1Njc4OWFi$")
    assert mqtt_auth.verify_password("pw", a)


@pytest.mark.parametrize(
    "encoded", ["", "plain", "$7$101$!!$!!", "$7$x$AAAA$AAAA", "$7$0$AAAA$AAAA", "$5$AAAA$AAAA", "$7$101$AAAA"]
)
def test_malformed_hash_matches_nothing(encoded):
    assert not mqtt_auth.verify_password("pw", encoded)


@pytest.mark.parametrize("algorithm", ["sha512-pbkdf2", "sha512"])
def test_mosquitto_passwd_hashes_verify(tmp_path, algorithm):
    passwd = tmp_path / "passwd"
    subprocess.run(
        [_binary("mosquitto_passwd", "/usr/bin/mosquitto_passwd"), "-H", algorithm, "-b", "-c", str(passwd),
         "alice", "correct horse"],
        check=True, capture_output=True, timeout=WAIT,
    )
    username, encoded = passwd.read_text().strip().split(":", 1)
    assert username == "alice"
    assert mqtt_auth.verify_password("correct horse", encoded)
    assert not mqtt_auth.verify_password("correct horse!", encoded)
    if algorithm == "sha512-pbkdf2":
        _, _, iterations, salt, _ = encoded.split("$")
        ours = mqtt_auth.hash_password("correct horse", salt=base64.b64decode(salt), iterations=int(iterations))
        assert ours == encoded


def test_new_password_is_long_and_url_safe():
    passwords = {mqtt_auth.new_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) >= 24
        assert set(password) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_render_files():
    h = mqtt_auth.hash_password("x")
    assert mqtt_auth.render_password_file([("A", h), ("gw", h)]) == f"A:{h}\ngw:{h}\n"
    acl = mqtt_auth.render_acl(["gw"], ["sim"])
    lines = [line for line in acl.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "pattern write vigil/v1/+/%u/+",
        "pattern read vigil/v1/+/%u/cmd",
        "pattern write owntracks/%u/+",
        "user gw",
        "topic read vigil/v1/#",
        "topic read owntracks/#",
        "user sim",
        "topic write vigil/v1/#",
        "topic write owntracks/#",
    ]
    conf = mqtt_auth.mosquitto_auth_conf(Path("/etc/vigil/passwd"), Path("/etc/vigil/acl"))
    assert conf == "allow_anonymous false\npassword_file /etc/vigil/passwd\nacl_file /etc/vigil/acl\n"


@pytest.mark.parametrize("username", ["", "a/b", "a+", "#", "a:b", "a b", "a\nb", "$SYS", "x" * 65])
def test_unsafe_usernames_are_refused(username):
    with pytest.raises(RejectedInput) as err:
        mqtt_auth.render_password_file([(username, mqtt_auth.hash_password("x"))])
    assert err.value.reason == "invalid_username"
    with pytest.raises(RejectedInput):
        mqtt_auth.render_acl([username], [])


# --- storage ----------------------------------------------------------------------------------------


async def test_issue_and_rotate_device_credentials(db, tmp_path):
    await devices.provision(db, ["A", "B"], kind="car")
    first = await mqtt_auth.issue_device_credentials(db, ["A", "B"])
    assert set(first) == {"A", "B"}
    second = await mqtt_auth.issue_device_credentials(db, ["A"])
    assert second["A"] != first["A"]
    passwd, acl = await mqtt_auth.write_broker_files(db, tmp_path)
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    hashes = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    assert set(hashes) == {"A", "B"}
    assert mqtt_auth.verify_password(second["A"], hashes["A"])
    assert not mqtt_auth.verify_password(first["A"], hashes["A"])
    assert mqtt_auth.verify_password(first["B"], hashes["B"])
    assert "user " not in acl.read_text()
    async with db.connection() as conn:
        cur = await conn.execute("SELECT username, role, device_id IS NOT NULL FROM mqtt_credentials ORDER BY 1")
        assert await cur.fetchall() == [("A", "device", True), ("B", "device", True)]


async def test_usernames_cannot_cross_roles(db):
    await devices.provision(db, ["A"], kind="car")
    with pytest.raises(NotFound):
        await mqtt_auth.issue_device_credentials(db, ["A", "nope"])
    with pytest.raises(RejectedInput) as err:
        await mqtt_auth.issue_account(db, "A", "gateway")
    assert err.value.reason == "username_taken"
    await mqtt_auth.issue_account(db, "gw", "gateway")
    with pytest.raises(RejectedInput) as err:
        await mqtt_auth.issue_account(db, "gw", "simulator")
    assert err.value.reason == "username_taken"
    await devices.provision(db, ["gw"], kind="car")
    with pytest.raises(RejectedInput) as err:
        await mqtt_auth.issue_device_credentials(db, ["A", "gw"])
    assert err.value.reason == "username_taken"
    with pytest.raises(ValueError):
        await mqtt_auth.issue_account(db, "x", "device")
    async with db.connection() as conn:
        cur = await conn.execute("SELECT username, role FROM mqtt_credentials ORDER BY 1")
        assert await cur.fetchall() == [("gw", "gateway")], "the failed batches wrote nothing"


# --- against a real Mosquitto -----------------------------------------------------------------------


@dataclass
class Broker:
    port: int
    proc: subprocess.Popen
    log: Path

    def reload(self) -> None:
        """Mosquitto re-reads its password file and ACL on SIGHUP."""
        self.proc.send_signal(signal.SIGHUP)


@contextlib.contextmanager
def auth_broker(auth_conf: str) -> Iterator[Broker]:
    """A private Mosquitto on a free port with the given auth lines, modelled on services.mosquitto_broker."""
    binary = _binary("mosquitto", "/usr/sbin/mosquitto")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="vigil-mqtt-auth-"))
    conf = workdir / "mosquitto.conf"
    # Run as root, Mosquitto drops to user "mosquitto" before reading the password file, which then
    # cannot read a 0600 file of root's; "user root" keeps it as the user who wrote the files.
    run_as = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"listener {port} 127.0.0.1\npersistence false\n{run_as}{auth_conf}")
    log = workdir / "mosquitto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "-c", str(conf), "-v"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, log)
        yield Broker(port, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Setup:
    broker: Broker
    passwords: dict[str, str]
    files: Path

    def client(self, username: str | None, password: str | None = None) -> aiomqtt.Client:
        if password is None and username is not None:
            password = self.passwords[username]
        return aiomqtt.Client("127.0.0.1", self.broker.port, username=username, password=password, timeout=WAIT)


@pytest.fixture
async def setup(db, tmp_path):
    await devices.provision(db, ["A", "B"], kind="car")
    passwords = await mqtt_auth.issue_device_credentials(db, ["A", "B"])
    passwords["gw"] = await mqtt_auth.issue_account(db, "gw", "gateway")
    passwords["sim"] = await mqtt_auth.issue_account(db, "sim", "simulator")
    passwd, acl = await mqtt_auth.write_broker_files(db, tmp_path)
    with auth_broker(mqtt_auth.mosquitto_auth_conf(passwd, acl)) as broker:
        yield Setup(broker, passwords, tmp_path)


async def collect_until(client: aiomqtt.Client, last_payload: bytes) -> list[tuple[str, bytes]]:
    """Messages received up to and including the first whose payload is ``last_payload``, within WAIT s.

    Mosquitto queues a QoS 1 message to its subscribers before it acknowledges the PUBLISH, and keeps
    one publisher's messages in order: a message refused before the marker would, had it been let
    through, have arrived before it. Non-delivery is shown without sleeping, and never vacuously."""
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(WAIT):
        async for message in client.messages:
            got.append((str(message.topic), bytes(message.payload)))
            if message.payload == last_payload:
                return got
    raise AssertionError("message iteration ended")


async def test_anonymous_and_wrong_passwords_are_refused(setup):
    for username, password in [(None, None), ("A", "wrong"), ("A", setup.passwords["B"]), ("nobody", "x")]:
        with pytest.raises(aiomqtt.MqttError):
            async with setup.client(username, password):
                pass
    async with setup.client("A"):
        pass


async def test_device_publishes_only_its_own_topics(setup):
    async with setup.client("gw") as gw, setup.client("A") as a:
        await gw.subscribe("vigil/v1/#", qos=1)
        await gw.subscribe("owntracks/#", qos=1)
        await a.publish("vigil/v1/car/A/fix", b"own", qos=1)
        await a.publish("vigil/v1/car/B/fix", b"spoof", qos=1)
        await a.publish("owntracks/B/phone", b"spoof", qos=1)
        await a.publish("vigil/v1/car/A/x/y", b"too deep", qos=1)
        await a.publish("owntracks/A/phone", b"own phone", qos=1)
        await a.publish("vigil/v1/car/A/fix", b"marker", qos=1)
        got = await collect_until(gw, b"marker")
    assert got == [
        ("vigil/v1/car/A/fix", b"own"),
        ("owntracks/A/phone", b"own phone"),
        ("vigil/v1/car/A/fix", b"marker"),
    ]


async def test_gateway_shared_subscription(setup):
    async with setup.client("gw") as gw, setup.client("A") as a:
        await gw.subscribe("$share/vigil/vigil/v1/+/+/+", qos=1)
        await a.publish("vigil/v1/car/A/fix", b"shared", qos=1)
        assert await collect_until(gw, b"shared") == [("vigil/v1/car/A/fix", b"shared")]


async def test_device_reads_only_its_own_command_topic(setup):
    async with setup.client("A") as a, setup.client("sim") as sim, setup.client("gw") as gw:
        # Mosquitto 2.0 grants every SUBSCRIBE and applies read rights to each message it delivers.
        await a.subscribe("vigil/v1/car/B/cmd", qos=1)
        await a.subscribe("vigil/v1/#", qos=1)
        await gw.publish("vigil/v1/car/A/cmd", b"gateways only read", qos=1)
        await sim.publish("vigil/v1/car/B/cmd", b"for B", qos=1)
        await sim.publish("vigil/v1/car/B/fix", b"B's fix", qos=1)
        await sim.publish("vigil/v1/car/A/cmd", b"for A", qos=1)
        assert await collect_until(a, b"for A") == [("vigil/v1/car/A/cmd", b"for A")]


async def test_simulator_writes_any_device_topic_and_reads_nothing(setup):
    async with setup.client("gw") as gw, setup.client("sim") as sim:
        await gw.subscribe("vigil/v1/#", qos=1)
        await sim.subscribe("vigil/v1/#", qos=1)
        await sim.publish("vigil/v1/car/B/fix", b"simulated", qos=1)
        await sim.publish("owntracks/B/phone", b"not granted", qos=1)
        await sim.publish("vigil/v1/car/A/fix", b"marker", qos=1)
        assert await collect_until(gw, b"marker") == [
            ("vigil/v1/car/B/fix", b"simulated"),
            ("vigil/v1/car/A/fix", b"marker"),
        ]
        # Bounded wait for a negative: the gateway has had both messages, so the broker has routed them.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await anext(aiter(sim.messages))


async def test_suspended_device_is_locked_out_after_reload(setup, db):
    await devices.set_status(db, "B", "suspended")
    async with setup.client("B") as b, setup.client("A") as a, setup.client("gw") as gw:
        await gw.subscribe("vigil/v1/#", qos=1)
        passwd, _ = await mqtt_auth.write_broker_files(db, setup.files)
        assert [line.split(":")[0] for line in passwd.read_text().splitlines()] == ["A", "gw", "sim"]
        setup.broker.reload()
        # Mosquitto 2.0 re-checks connected clients on reload and drops those no longer in the file.
        with pytest.raises(aiomqtt.MqttError):
            async with asyncio.timeout(WAIT):
                async for _ in b.messages:
                    pass
        await a.publish("vigil/v1/car/A/fix", b"still here", qos=1)
        assert await collect_until(gw, b"still here") == [("vigil/v1/car/A/fix", b"still here")]
    with pytest.raises(aiomqtt.MqttError):
        async with setup.client("B"):
            pass
    await devices.set_status(db, "B", "active")
    await mqtt_auth.write_broker_files(db, setup.files)
    setup.broker.reload()
    await _connects_within("B", setup)


async def _connects_within(username: str, setup: Setup) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            try:
                async with setup.client(username):
                    return
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)
