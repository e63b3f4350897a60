"""Every kind of bad device message lands in the dead-letter table with its reason, over real MQTT."""

from __future__ import annotations

import asyncio
import json
import time

import aiomqtt
import httpx

from storage import devices
from tests.helpers import count_rows, make_settings, wait_for_rows
from vigil.settings import parse_mqtt_url

NOW_MS = int(time.time() * 1000)


def fix(**overrides):
    base = {"ts": NOW_MS - 1000, "lat": 60.17, "lon": 24.94, "speed_kmh": 30.0, "heading_deg": 90.0,
            "accuracy_m": 5.0, "ignition": True}
    base.update(overrides)
    return base


def msg(*fixes, **envelope) -> bytes:
    return json.dumps({"v": 1, "seq": 1, "fixes": list(fixes), **envelope}).encode()


# (topic suffix device, payload, expected reason)
CASES = [
    ("car-ok", b'{"v": 1, "seq": 1, "fixes": [', "malformed_json"),
    ("car-ok", b"\xff\xfe not json", "malformed_json"),
    ("car-ok", json.dumps({"v": 1, "seq": "one", "fixes": []}).encode(), "invalid_schema"),
    ("car-ok", msg(fix(lat="north")), "invalid_schema"),
    ("car-ghost", msg(fix()), "unknown_device"),
    ("car-ok", msg(fix(), device="car-other"), "device_mismatch"),
    ("car-ok", msg(fix(lat=90.5)), "lat_out_of_range"),
    ("car-ok", msg(fix(lon=-180.01)), "lon_out_of_range"),
    # 6 h ahead, not just past the 5-min skew: NOW_MS is taken at import, maybe minutes before the test runs.
    ("car-ok", msg(fix(ts=NOW_MS + 6 * 3_600_000)), "ts_in_future"),
    ("car-ok", msg(fix(ts=946_684_799_000)), "ts_too_old"),
    ("car-ok", msg(fix(), pad="x" * 300_000), "payload_too_large"),
    ("car-ok", msg(fix(speed_kmh=1e39)), "value_out_of_range"),
    ("car-ok", msg(), "no_fixes"),
    ("car-ok", msg(fix(), v=2), "unsupported_version"),
    ("car-off", msg(fix()), "device_inactive"),
    ("pet-1", msg(fix()), "kind_mismatch"),
]


async def test_every_bad_input_is_dead_lettered(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    await devices.provision(runtime.db, ["car-ok"], kind="car")
    await devices.provision(runtime.db, ["pet-1"], kind="pet")
    await devices.provision(runtime.db, ["car-off"], kind="car", status="suspended")
    host, port = parse_mqtt_url(mqtt_url)
    async with aiomqtt.Client(host, port) as client:
        for device, payload, _ in CASES:
            await client.publish(f"vigil/v1/car/{device}/fix", payload, qos=1)
        await client.publish("vigil/v1/boat/x/fix", msg(fix()), qos=1)
        await client.publish("vigil/v1/car/car-ok/telepathy", msg(fix()), qos=1)
        # one bad fix among good ones: the good ones are kept, the message is dead-lettered too
        mixed = msg(fix(ts=NOW_MS - 3000), fix(ts=NOW_MS - 2000, lat=-91.0), fix(ts=NOW_MS - 1000, lon="east"),
                    fix(ts=NOW_MS))
        await client.publish("vigil/v1/car/car-ok/fix", mixed, qos=1)

    expected = len(CASES) + 2 + 2
    assert await wait_for_rows(runtime.db, "dead_letters", expected) == expected
    await asyncio.sleep(0.3)
    async with runtime.db.connection() as conn:
        cur = await conn.execute("SELECT topic, reason, detail, payload FROM dead_letters ORDER BY id")
        rows = await cur.fetchall()
    assert len(rows) == expected
    by_payload = {}
    for topic, reason, detail, payload in rows:
        by_payload.setdefault(bytes(payload), []).append((topic, reason, detail))
    for device, payload, reason in CASES:
        assert reason in [r for _, r, _ in by_payload[payload]], (device, reason)
    assert sorted(r for _, r, _ in by_payload[mixed]) == ["invalid_schema", "lat_out_of_range"]
    details = {r: json.loads(d) for _, r, d in by_payload[mixed]}
    assert details == {"invalid_schema": {"fixes": [2]}, "lat_out_of_range": {"fixes": [1]}}
    unknown_topics = [r for t, r, _, _ in rows if t in ("vigil/v1/boat/x/fix", "vigil/v1/car/car-ok/telepathy")]
    assert unknown_topics == ["unknown_topic", "unknown_topic"]

    assert await count_rows(runtime.db, "fixes") == 2  # the two good fixes of the mixed message
    async with runtime.db.connection() as conn:
        cur = await conn.execute("SELECT (extract(epoch FROM ts) * 1000)::bigint FROM fixes ORDER BY ts")
        assert [r[0] for r in await cur.fetchall()] == [NOW_MS - 3000, NOW_MS]

    async with httpx.AsyncClient(base_url=runtime.http_url) as http:
        health = (await http.get("/healthz")).json()
        metrics = (await http.get("/metrics")).text
    assert health["dead_letters"]["malformed_json"] == 2
    assert health["dead_letters"]["unknown_topic"] == 2
    assert sum(health["dead_letters"].values()) == expected
    assert 'vigil_ingest_rejected_total{reason="payload_too_large"} 1' in metrics
    assert 'vigil_ingest_rejected_total{reason="invalid_schema"} 3' in metrics
