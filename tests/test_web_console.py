"""The assistance-centre console in a real browser against a real runtime: an operator logs in; a home
kit's water sensor fires over Mosquitto; the alarm appears in the queue from the live stream with its age
and escalation timer counting and the customer's name and address; its detail lists the contacts to call
(tel: links) and the devices; the operator claims, acknowledges, notes and resolves it, and it leaves the
queue."""

from __future__ import annotations

import re
import time

import pytest

from customers import Contact, Profile, put_profile
from storage import devices
from tests.access_data import T0
from tests.browser import OUTPUT, browser_page, chromium_path, publish
from tests.helpers import PASSWORD, add_account, make_settings

BOB = Profile(customer_id="bob", display_name="Bob Berg", street="Fabianinkatu 12 A 3", postal_code="00100",
              city="Helsinki", country="FI", phone="+358 40 111 2222", language="fi", lat=60.1686, lon=24.9502,
              instructions="Key safe by the door",
              contacts=(Contact("Dan Berg", "+358 50 333 4444", "son", keyholder=True),
                        Contact("Eve Niemi", "+358 44 555 6666", "neighbour")))

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Debian chromium missing: apt-get install chromium "
                                                                  "(make test installs it when run as root)")


async def test_operator_acknowledges_and_resolves_a_water_leak(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    db = runtime.db
    await devices.provision(db, ["kit-1"], kind="home", owner="bob")
    await add_account(db, "olga", role="operator")
    await put_profile(db, BOB, actor="olga", now=T0)

    assert runtime.alarm_process is not None, "the default layout runs the alarm path in its own process"
    alarm_port = runtime.alarm_process.http_port
    async with browser_page() as page:
        alarm_requests: list[str] = []
        page.on("request", lambda r: alarm_requests.append(r.url) if "/v1/operator/" in r.url else None)
        await page.goto(f"{runtime.http_url}/console")
        await page.get_by_label("Operator", exact=True).fill("olga")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.locator("#who-name", has_text="olga").wait_for()
        await page.locator("#map[data-roads=ready]").wait_for(timeout=240_000)
        queue = page.locator("#queue tr[data-alarm]")
        await page.get_by_text("No open alarms.").wait_for()

        now_ms = int(time.time() * 1000)
        await devices.provision(db, ["pet-1"], kind="pet", owner="carol")
        await publish(mqtt_url, [
            ("vigil/v1/home/kit-1/event", {"v": 1, "seq": 1, "events": [
                {"ts": now_ms, "type": "water_leak", "event_id": "w-1", "sensor": "kitchen"}]}),
            ("vigil/v1/pet/pet-1/sos", {"v": 1, "seq": 1, "ts": now_ms, "event_id": "sos-1", "lat": 60.1686,
                                        "lon": 24.9466, "accuracy_m": 9})])
        row = queue.filter(has_text="water leak")
        sos = queue.filter(has_text="sos")
        await row.wait_for(timeout=30_000)  # pushed by the stream (the fallback poll is 15 s)
        await sos.wait_for(timeout=30_000)
        assert await queue.count() == 2
        # The queue and the live stream come from the alarm process's API (its own port, cross-origin).
        assert any(u.startswith(f"http://{runtime.settings.http_host}:{alarm_port}/v1/operator/alarms/stream")
                   for u in alarm_requests), alarm_requests
        assert all(f":{alarm_port}/" in u for u in alarm_requests), alarm_requests
        text = await row.inner_text()
        assert "major" in text and "kit-1 · kitchen" in text and "Bob Berg" in text
        assert await row.locator("td.customer .address").inner_text() == "Fabianinkatu 12 A 3, 00100 Helsinki"
        assert "carol" in await sos.locator("td.customer").inner_text()   # no profile: the customer id
        age = row.locator("td.age")
        first = await age.inner_text()
        await page.wait_for_timeout(1500)
        assert await age.inner_text() != first  # the age counts up in the page
        assert re.match(r"next in \d+ s|due \d+ s ago", await row.locator("td.timer").inner_text())

        await sos.click()  # the pet's position on the map
        await page.locator(".leaflet-tooltip", has_text="pet-1: sos").wait_for()
        await page.wait_for_timeout(1000)  # the map's zoom animation and the street reload, for the picture
        await page.screenshot(path=OUTPUT / "console.png")

        await row.click()
        await page.locator("#h-detail", has_text="water leak").wait_for()
        # Whom to call, in order, with tel: links; where to go; the customer's devices.
        contacts = page.locator("#contacts li")
        await contacts.first.wait_for()
        assert await contacts.all_inner_texts() == ["Dan Berg (son, has a key) +358503334444",
                                                    "Eve Niemi (neighbour) +358445556666"]
        assert [await a.get_attribute("href") for a in await page.locator("#contacts a").all()] == [
            "tel:+358503334444", "tel:+358445556666"]
        assert await page.locator("#customer-phone").get_attribute("href") == "tel:+358401112222"
        assert await page.locator("#customer-address").inner_text() == "Fabianinkatu 12 A 3, 00100 Helsinki, FI"
        assert await page.locator("#customer-instructions").inner_text() == "Key safe by the door"
        assert await page.locator("#devices li").all_inner_texts() == ["kit-1 · home · active"]
        # A home kit sends no position: the map shows the customer's address.
        await page.locator(".leaflet-tooltip", has_text="kit-1: water leak at Fabianinkatu 12 A 3").wait_for()
        await page.get_by_role("button", name="Claim").click()
        await page.get_by_text("Alarm claimed.").wait_for()
        await page.get_by_role("button", name="Acknowledge").click()
        await page.get_by_text("Alarm acknowledged.").wait_for()
        assert await row.locator("td.timer").inner_text() == "stopped"
        await page.get_by_label("Note").fill("Called Bob: the washing machine hose, water is off")
        await page.get_by_role("button", name="Add note").click()
        await page.locator("#audit li", has_text="washing machine hose").wait_for()
        await page.screenshot(path=OUTPUT / "console-acknowledged.png")

        await page.get_by_label("Outcome").select_option("false_alarm")
        await page.get_by_role("button", name="Resolve").click()
        await page.get_by_text("Alarm resolved.").wait_for()
        await row.wait_for(state="detached")
        assert await queue.count() == 1 and await sos.count() == 1  # the leak left the queue, the SOS is still there
        assert page.errors == []

    async with db.connection() as conn:
        cur = await conn.execute("SELECT type, resolved_at IS NOT NULL, outcome, acknowledged_by, resolved_by, assignee"
                                 " FROM alarms ORDER BY type")
        assert await cur.fetchall() == [("sos", False, None, None, None, None),
                                        ("water_leak", True, "false_alarm", "olga", "olga", "olga")]
        cur = await conn.execute("SELECT actor, detail->>'text' FROM alarm_audit WHERE kind = 'note'")
        assert await cur.fetchall() == [("olga", "Called Bob: the washing machine hose, water is off")]
