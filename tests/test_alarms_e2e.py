"""Every alarm type end to end over real Mosquitto and PostgreSQL: device message → alarm row →
customer outbox rows on every channel of the raise stage → operator stream event; then the operator's
and the customer's routes on the same alarms."""

from __future__ import annotations

import time

import httpx

from storage import devices
from tests.alarm_helpers import StreamReader, fetch, home_event, logged_in, publish, wait_for
from tests.helpers import make_settings

NOW_MS = (int(time.time()) - 5) * 1000
EXPECTED = {  # (device, alarm type) → customer channels of the raise stage
    ("kit-1", "water_leak"): {"push", "sms", "email"},
    ("kit-1", "smoke"): {"push", "sms", "email"},
    ("kit-1", "intrusion"): {"push", "sms", "email"},
    ("kit-1", "power_loss"): {"push", "sms", "email"},
    ("kit-1", "tamper"): {"push", "email"},
    ("kit-1", "low_battery"): {"push", "email"},
    ("pet-1", "sos"): {"push", "sms", "email"},
    ("car-1", "crash"): {"push", "sms", "email"},
}
OWNERS = {"kit-1": "cust-home", "pet-1": "cust-pet", "car-1": "cust-car"}


async def test_each_alarm_type_end_to_end(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    await each_alarm_type(runtime, mqtt_url)


async def test_each_alarm_type_on_the_kafka_bus(mqtt_url, database_url, kafka_bootstrap, runtime_factory):
    """The alarms consumer group on Kafka: the same outcomes."""
    runtime = await runtime_factory(make_settings(mqtt_url, database_url, kafka=kafka_bootstrap))
    await each_alarm_type(runtime, mqtt_url)


async def each_alarm_type(runtime, mqtt_url: str) -> None:
    db = runtime.db
    for device_id, kind in (("kit-1", "home"), ("pet-1", "pet"), ("car-1", "car")):
        await devices.provision(db, [device_id], kind=kind, owner=OWNERS[device_id])

    op1, op2 = await logged_in(runtime, "op-1", "operator"), await logged_in(runtime, "op-2", "operator")
    home, pet = await logged_in(runtime, "cust-home"), await logged_in(runtime, "cust-pet")
    # The alarm process's API when it runs (the main API's stream is read in test_alarm_process.py).
    async with StreamReader(runtime.alarm_http_url, op1) as stream:
        t = NOW_MS
        await publish(mqtt_url, [
            home_event("kit-1", 1, t, "motion", "m-0"),  # disarmed: the household is home, no alarm
            home_event("kit-1", 2, t + 1, "armed", "a-1"),
            home_event("kit-1", 3, t + 2, "motion", "m-1", sensor="hall"),
            home_event("kit-1", 4, t + 3, "water_leak", "w-1", sensor="kitchen", battery_pct=80),
            home_event("kit-1", 5, t + 4, "smoke", "s-1", sensor="living"),
            home_event("kit-1", 6, t + 5, "power_loss", "p-1"),
            home_event("kit-1", 7, t + 6, "tamper", "t-1", sensor="siren"),
            home_event("kit-1", 8, t + 7, "low_battery", "b-1", sensor="window-2", battery_pct=7),
            ("vigil/v1/pet/pet-1/sos", {"v": 1, "seq": 1, "ts": t, "event_id": "sos-1", "lat": 60.17,
                                        "lon": 24.94, "accuracy_m": 9}),
            ("vigil/v1/car/car-1/fix", {"v": 1, "seq": 1, "fixes": [
                {"ts": t, "lat": 60.2, "lon": 24.9, "speed_kmh": 40, "accel_g": [3.0, 0.0, 1.0]}]}),
        ])
        sql = ("SELECT d.device_id, a.type, a.id, a.count, a.severity, a.active, a.acknowledged, a.stale"
               " FROM alarms a JOIN devices d ON d.id = a.device_id")
        rows = await wait_for(db, sql, lambda r: len(r) >= len(EXPECTED))
        alarms = {(r[0], r[1]): r for r in rows}
        assert set(alarms) == set(EXPECTED)
        assert all(r[3] == 1 and r[5] and not r[6] and not r[7] for r in rows)
        assert alarms[("kit-1", "smoke")][4] == "critical" and alarms[("kit-1", "water_leak")][4] == "major"

        notices = await fetch(db, "SELECT recipient, channel, dedup_key, status FROM notifications")
        for (device_id, alarm_type), channels in EXPECTED.items():
            alarm_id = alarms[(device_id, alarm_type)][2]
            mine = [n for n in notices if n[2].startswith(f"alarm:{alarm_id}:")]
            assert {n[1] for n in mine} == channels and len(mine) == len(channels)
            assert {n[0] for n in mine} == {OWNERS[device_id]} and {n[2].split(":")[3] for n in mine} == {"0"}

        events = await stream.wait_for(lambda ev: sum(e["kind"] == "raised" for _, e in ev) >= len(EXPECTED))
        raised = {(e["alarm"]["device_id"], e["alarm"]["type"]) for _, e in events if e["kind"] == "raised"}
        assert raised == set(EXPECTED)
        assert [i for i, _ in events] == sorted(i for i, _ in events)
        sos = next(e["alarm"] for _, e in events if e["alarm"]["type"] == "sos")
        assert (sos["lat"], sos["lon"], sos["event_id"]) == (60.17, 24.94, "sos-1")  # where the pet was

        # The queue: most severe first (the four critical ones), then oldest first.
        async with httpx.AsyncClient(base_url=runtime.http_url) as http:
            queue = (await http.get("/v1/operator/alarms", headers=op1)).json()
            ranks = ["warning", "minor", "major", "critical"]
            keys = [(-ranks.index(a["severity"]), a["raised_at"], a["id"]) for a in queue]
            assert len(queue) == len(EXPECTED) and keys == sorted(keys)
            water = alarms[("kit-1", "water_leak")][2]
            # The operator is the logged-in caller; a name in the body (older clients) is ignored.
            claimed = await http.post(f"/v1/operator/alarms/{water}/claim", json={"operator": "op-2"}, headers=op1)
            assert claimed.status_code == 200 and claimed.json()["assignee"] == "op-1"
            taken = await http.post(f"/v1/operator/alarms/{water}/claim", headers=op2)
            assert taken.status_code == 409 and taken.json()["reason"] == "alarm_claimed"
            acked = (await http.post(f"/v1/operator/alarms/{water}/acknowledge", headers=op1)).json()
            assert acked["state"] == "active_ack" and acked["next_step_at"] is None
            assert acked["acknowledged_by"] == "op-1"
            await http.post(f"/v1/operator/alarms/{water}/notes", json={"text": "called, leak real"}, headers=op1)
            mine = await http.post(f"/v1/alarms/{water}/feedback", json={"feedback": "it_was_me"}, headers=home)
            assert mine.json()["customer_feedback"] == "it_was_me"
            assert (await http.post(f"/v1/alarms/{water}/feedback", json={"feedback": "it_was_me"},
                                    headers=pet)).status_code == 404  # not their alarm
            assert (await http.post(f"/v1/alarms/{water}/feedback", json={"feedback": "it_was_me"},
                                    headers=op1)).status_code == 403  # the customer's word, not the centre's
            assert (await http.post(f"/v1/operator/alarms/{water}/notes", json={"text": "x"},
                                    headers=home)).status_code == 403
            done = await http.post(f"/v1/operator/alarms/{water}/resolve",
                                   json={"outcome": "real_emergency", "note": "plumber sent"}, headers=op1)
            assert done.json()["state"] == "resolved" and done.json()["outcome"] == "real_emergency"
            again = await http.post(f"/v1/operator/alarms/{water}/acknowledge", headers=op1)
            assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"

            detail = (await http.get(f"/v1/operator/alarms/{water}", headers=op2)).json()
            assert [a["kind"] for a in detail["audit"]] == [
                "raised", "notified", "assigned", "acknowledged", "note", "customer_feedback", "cleared", "resolved"]
            assert {a["actor"] for a in detail["audit"] if a["kind"] in ("assigned", "note", "resolved")} == {"op-1"}
            customer_view = (await http.get(f"/v1/alarms/{water}", headers=home)).json()
            assert "note" not in [a["kind"] for a in customer_view["audit"]]
            assert (await http.get(f"/v1/alarms/{water}", headers=pet)).status_code == 404
            own = (await http.get("/v1/alarms", headers=pet)).json()
            assert own["customer"] == "cust-pet" and [a["type"] for a in own["alarms"]] == ["sos"]
            history = (await http.get("/v1/operator/devices/kit-1/alarms", headers=op1)).json()
            assert history["armed"] is True and len(history["alarms"]) == 6
            per_customer = (await http.get("/v1/operator/customers/cust-pet/alarms", headers=op1)).json()
            assert [a["type"] for a in per_customer["alarms"]] == ["sos"]
            assert per_customer["devices"] == [{"device_id": "pet-1", "kind": "pet", "status": "active"}]
            assert (await http.get("/v1/operator/customers/nobody/alarms", headers=op1)).status_code == 404
            metrics = (await http.get("/metrics")).text
            assert 'vigil_alarms{state="resolved"} 1' in metrics
            assert 'vigil_alarms{state="active_unack"} 7' in metrics
            assert "vigil_alarm_time_to_ack_seconds_count 1" in metrics

        # Device events came on the bus (the sweep is only the safety net).
        assert runtime.metrics.get("vigil_alarm_events_total", "bus") >= 10
        kinds = await stream.wait_for(lambda ev: any(e["kind"] == "resolved" for _, e in ev))
        assert [e["kind"] for _, e in kinds if e["alarm"]["id"] == water][-1] == "resolved"
