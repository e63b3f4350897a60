"""The lean device client against a real Mosquitto with the password file and ACL Vigil generates:
logins and their CONNACK codes, QoS 1 acknowledgements, what the ACL does to a refused QoS 1 publish,
OwnTracks phones on their own credentials, waves of connections waiting for late credentials,
keep-alive, and a connection the broker drops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from ingest import mqtt_auth
from simulators import mqtt_device as md
from storage import devices
from tests.test_mqtt_auth import WAIT, auth_broker, collect_until
from vigil.errors import BusError, RejectedInput


async def broker_files(db, directory: Path) -> str:
    passwd, acl = await mqtt_auth.write_broker_files(db, directory)
    return mqtt_auth.mosquitto_auth_conf(passwd, acl)


@pytest.fixture
async def creds(db):
    await devices.provision(db, ["A", "B"], kind="car")
    await devices.provision(db, ["u1:phone", "u2:phone"], kind="car")
    passwords = await mqtt_auth.issue_device_credentials(db, ["A", "B", "u1:phone"])
    passwords["gw"] = await mqtt_auth.issue_account(db, "gw", "gateway")
    return passwords


def gateway(port: int, password: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username="gw", password=password, timeout=WAIT)


async def test_device_publishes_at_qos1_and_disconnects_cleanly(db, creds, tmp_path):
    with auth_broker(await broker_files(db, tmp_path)) as broker:
        async with gateway(broker.port, creds["gw"]) as gw:
            await gw.subscribe("vigil/v1/#", qos=1)
            conn = await md.connect("127.0.0.1", broker.port, md.Login("cid-A", "A", creds["A"]))
            acks = [conn.send("vigil/v1/car/A/fix", b"one"), conn.send("vigil/v1/car/A/fix", b"two")]
            await asyncio.wait_for(asyncio.gather(*acks), WAIT)
            await asyncio.wait_for(conn.publish("vigil/v1/car/A/heartbeat", b"three"), WAIT)
            assert conn.published == 3
            assert await collect_until(gw, b"three") == [
                ("vigil/v1/car/A/fix", b"one"), ("vigil/v1/car/A/fix", b"two"), ("vigil/v1/car/A/heartbeat", b"three")]
            conn.close()
            assert not conn.open
            with pytest.raises(BusError):
                conn.send("vigil/v1/car/A/fix", b"after close")
        await _logged(broker.log, "Received DISCONNECT from cid-A")


async def _logged(log: Path, line: str) -> None:
    async with asyncio.timeout(WAIT):
        while line not in log.read_text():
            await asyncio.sleep(0.05)


async def test_refused_logins_carry_the_connack_code(db, creds, tmp_path):
    with auth_broker(await broker_files(db, tmp_path)) as broker:
        # Mosquitto 2.0 answers every failed password check with 5 (not authorized), not 4.
        for username, password in [("A", "wrong"), ("A", creds["B"]), ("nobody", "x"), (None, None),
                                   ("u1:phone", creds["u1:phone"]), ("u2", creds["u1:phone"])]:
            with pytest.raises(md.ConnectRefused) as err:
                await md.connect("127.0.0.1", broker.port, md.Login("c", username, password))
            assert err.value.code == 5, username
        with pytest.raises(md.ConnectRefused):
            await md.connect_retrying("127.0.0.1", broker.port, md.Login("c", "A", "wrong"), retry_for_s=0.6)
    with pytest.raises(BusError) as err:
        await md.connect("127.0.0.1", broker.port, md.Login("c", "A", creds["A"]))
    assert not isinstance(err.value, md.ConnectRefused), "no broker: a network error, not a refusal"


async def test_acl_refused_qos1_publish_is_acknowledged_then_dropped(db, creds, tmp_path):
    """MQTT 3.1.1 has no code to refuse a PUBLISH: Mosquitto 2.0 sends the PUBACK and drops the message."""
    with auth_broker(await broker_files(db, tmp_path)) as broker:
        async with gateway(broker.port, creds["gw"]) as gw:
            await gw.subscribe("vigil/v1/#", qos=1)
            await gw.subscribe("owntracks/#", qos=1)
            a = await md.connect("127.0.0.1", broker.port, md.Login("cid-A", "A", creds["A"]))
            spoofs = [a.send("vigil/v1/car/B/fix", b"spoof"), a.send("owntracks/u1/phone", b"spoof phone"),
                      a.send("vigil/v1/car/A/fix/extra", b"too deep")]
            await asyncio.wait_for(asyncio.gather(*spoofs), WAIT)
            await asyncio.wait_for(a.send("vigil/v1/car/A/fix", b"marker"), WAIT)
            assert await collect_until(gw, b"marker") == [("vigil/v1/car/A/fix", b"marker")]
            assert a.open, "a refused publish does not cost the connection"
            a.close()
        await _logged(broker.log, "Denied PUBLISH from cid-A")


async def test_owntracks_phone_logs_in_as_its_topic_user(db, creds, tmp_path):
    async with db.connection() as conn:
        cur = await conn.execute("SELECT c.username, d.device_id FROM mqtt_credentials c JOIN devices d"
                                 " ON d.id = c.device_id ORDER BY 1")
        assert await cur.fetchall() == [("A", "A"), ("B", "B"), ("u1", "u1:phone")]
    with auth_broker(await broker_files(db, tmp_path)) as broker:
        async with gateway(broker.port, creds["gw"]) as gw:
            await gw.subscribe("owntracks/#", qos=1)
            await gw.subscribe("vigil/v1/#", qos=1)
            phone = await md.connect("127.0.0.1", broker.port, md.Login("p", "u1", creds["u1:phone"]))
            for topic in ("owntracks/u2/phone", "vigil/v1/car/u2:phone/fix", "owntracks/u1/phone", "owntracks/A/x"):
                await asyncio.wait_for(phone.send(topic, topic.encode()), WAIT)
            assert await collect_until(gw, b"owntracks/u1/phone") == [("owntracks/u1/phone", b"owntracks/u1/phone")]
            phone.close()


async def test_phone_user_names_that_would_cross_devices_are_refused(db):
    await devices.provision(db, ["u3", "u3:phone", "u4:phone", "u4:tablet", "a:b:c", "x:"], kind="car")
    for ids, reason in [(["u3:phone"], "username_taken"), (["u4:phone", "u4:tablet"], "username_taken"),
                        (["a:b:c"], "invalid_username"), (["x:"], "invalid_username")]:
        with pytest.raises(RejectedInput) as err:
            await mqtt_auth.issue_device_credentials(db, ids)
        assert err.value.reason == reason, ids
    await mqtt_auth.issue_device_credentials(db, ["u4:phone"])
    with pytest.raises(RejectedInput) as err:
        await mqtt_auth.issue_device_credentials(db, ["u4:tablet"])
    assert err.value.reason == "username_taken", "one credential per OwnTracks user"
    async with db.connection() as conn:
        cur = await conn.execute("SELECT username FROM mqtt_credentials")
        assert await cur.fetchall() == [("u4",)]


async def test_connect_all_waits_for_credentials_the_broker_has_not_read_yet(db, creds, tmp_path):
    ids = [f"wave-{i:03d}" for i in range(40)]
    await devices.provision(db, ids, kind="pet")
    with auth_broker(await broker_files(db, tmp_path)) as broker:
        passwords = await mqtt_auth.issue_device_credentials(db, ids)
        logins = [md.Login(f"c-{d}", d, passwords[d]) for d in ids]
        task = asyncio.create_task(md.connect_all("127.0.0.1", broker.port, logins, concurrency=8, retry_for_s=WAIT))
        await _logged(broker.log, "not authorised")  # the first login tried before the broker knew it
        await broker_files(db, tmp_path)
        broker.reload()
        conns = await asyncio.wait_for(task, WAIT + 5)
        assert [c.username for c in conns] == ids and all(c.open for c in conns)
        await asyncio.wait_for(asyncio.gather(*(c.send(f"vigil/v1/pet/{c.username}/fix", b"x") for c in conns)), WAIT)
        md.close_all(conns)
        with pytest.raises(md.ConnectRefused):
            await md.connect_all("127.0.0.1", broker.port, [logins[0], md.Login("c-bad", ids[1], "wrong")],
                                 retry_for_s=0.5)


async def test_keep_alive_pings_idle_connections(db, creds, tmp_path):
    with auth_broker(await broker_files(db, tmp_path)) as broker:
        kept = await md.connect("127.0.0.1", broker.port, md.Login("kept", "A", creds["A"]), keepalive_s=2)
        idle = await md.connect("127.0.0.1", broker.port, md.Login("idle", "B", creds["B"]), keepalive_s=2)
        keeper = asyncio.create_task(md.keep_alive([kept], keepalive_s=2))
        try:
            # Mosquitto drops a client silent for 1.5 keep-alives (3 s here).
            await _logged(broker.log, "Client idle has exceeded timeout")
            await _logged(broker.log, "Received PINGREQ from kept")
            await asyncio.wait_for(kept.send("vigil/v1/car/A/fix", b"still connected"), WAIT)
            assert kept.open
            async with asyncio.timeout(WAIT):
                while idle.open:
                    await asyncio.sleep(0.05)
        finally:
            keeper.cancel()
            md.close_all([kept, idle])


async def test_dropped_connection_fails_its_publishes(db, creds, tmp_path):
    with auth_broker(await broker_files(db, tmp_path)) as broker:
        conn = await md.connect("127.0.0.1", broker.port, md.Login("cid-B", "B", creds["B"]))
        await devices.set_status(db, "B", "suspended")
        await broker_files(db, tmp_path)
        broker.reload()
        async with asyncio.timeout(WAIT):
            while conn.open:
                await asyncio.sleep(0.05)
        with pytest.raises(BusError, match="connection lost"):
            await conn.publish("vigil/v1/car/B/fix", b"too late")


def test_fd_limit_is_raised_to_what_the_connections_need():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert md.raise_fd_limit(min(soft, 100)) == soft
    if hard != resource.RLIM_INFINITY:
        from vigil.errors import ConfigError

        with pytest.raises(ConfigError, match="hard limit"):
            md.raise_fd_limit(hard + 1)


def test_vigil_devices_add_names_each_login(database_url, tmp_path, capsys, monkeypatch):
    from vigil import cli

    monkeypatch.setenv("VIGIL_DATABASE_URL", database_url)
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path))
    assert cli.main(["devices", "add", "--kind", "car", "box-1", "--id", "alice:phone"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[0], r[3]) for r in rows] == [("box-1", "box-1"), ("alice:phone", "alice")]
    assert all(len(r[4]) == 32 for r in rows)
