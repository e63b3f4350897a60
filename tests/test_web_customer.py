"""The customer app in a real browser (Debian's headless Chromium via Playwright) against a real runtime
(Mosquitto, PostgreSQL, the walking graph of the bundled Helsinki extract): log in, see the car with the
age of its fix, open the walking route, issue and download a certificate, and verify the downloaded file."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from storage import devices
from tests.browser import OUTPUT, browser_page, chromium_path, publish, wait_until
from tests.helpers import PASSWORD, add_account, count_rows, login, make_settings
from tests.test_trips_service import first_trip
from tests.test_trips_service import publish as publish_fixes

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Debian chromium missing: apt-get install chromium "
                                                                  "(make test installs it when run as root)")

CUSTOMER = (60.1675, 24.9445)  # Pohjoisesplanadi at Erottaja
CAR = (60.1690, 24.9500)  # parked on Aleksanterinkatu


async def test_customer_sees_the_car_walks_to_it_and_verifies_a_certificate(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    db = runtime.db
    await devices.provision(db, ["car-1"], kind="car", owner="alice")
    await add_account(db, "alice")
    await publish_fixes(mqtt_url, "car-1", first_trip(), 1)  # yesterday: ~3 km with one harsh brake
    fix_ms = (int(time.time()) - 30) * 1000
    await publish(mqtt_url, [("vigil/v1/car/car-1/fix", {"v": 1, "seq": 10_000, "fixes": [
        {"ts": fix_ms, "lat": CAR[0], "lon": CAR[1], "speed_kmh": 0.0, "ignition": False}]})])

    async def stored() -> bool:
        return await count_rows(db, "trips") == 1 and await count_rows(db, "fixes") == len(first_trip()) + 1

    async def graph_ready() -> bool:
        return runtime.walk_graph.status == "ready"

    await wait_until(stored, 60, "the car's trip and fixes in the database")
    await wait_until(graph_ready, 240, "the walking graph")
    async with httpx.AsyncClient(base_url=runtime.http_url) as http:  # what the page must show
        http.headers.update(await login(http, "alice"))
        expected = (await http.get("/v1/vehicles/car-1/find",
                                   params={"from_lat": CUSTOMER[0], "from_lon": CUSTOMER[1]})).json()["route"]
        (trip,) = (await http.get("/v1/vehicles/car-1/trips")).json()["items"]
    assert expected["method"] == "osm_walking"

    async with browser_page(geolocation={"latitude": CUSTOMER[0], "longitude": CUSTOMER[1]},
                            permissions=["geolocation"], timezone_id="Europe/Helsinki") as page:
        await page.goto(f"{runtime.http_url}/app")
        await page.get_by_label("User name").fill("alice")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()

        car = page.locator('#cars li[data-car="car-1"]')
        await car.wait_for()
        assert re.search(r"last fix (\d+) s ago|last fix \d+ min \d+ s ago", await car.inner_text())
        await page.locator("#map[data-roads=ready]").wait_for()
        assert await page.locator(".leaflet-tooltip", has_text="car-1").count() == 1

        await page.get_by_role("button", name="Show walking route").click()
        result = page.locator("#find-result")
        await result.get_by_text("on foot").wait_for()
        minutes = max(1, round(expected["walking_time_s"] / 60))
        assert await result.inner_text() == (f"{round(expected['distance_m'])} m, about {minutes} min on foot "
                                             "along the streets.")
        assert await page.locator(".leaflet-overlay-pane canvas").count() == 1  # streets and route (canvas renderer)
        await page.screenshot(path=OUTPUT / "customer-app.png")

        # the trip: its numbers and events in the list, then its line and score
        await car.get_by_role("button", name="Trips").click()
        listed = page.locator("#trips li").first
        await listed.wait_for()
        assert await page.locator("#trips li").count() == 1
        text = await listed.inner_text()
        km, minutes = trip["distance_m"] / 1000, round(trip["duration_s"] / 60)
        assert f"{km:.1f} km, {minutes} min, score {trip['score']:.0f}" in text
        assert "1 harsh braking" in text
        await listed.get_by_role("button").click()
        await page.locator("#status", has_text=f"Trip {trip['id']}: score {trip['score']:.0f}").wait_for()

        # fine assist at the moment of the fix (prefilled), then download the PDF and verify that file
        await page.get_by_role("button", name="Issue certificate").click()
        cert = page.locator("#certs li").first
        await cert.wait_for()
        cert_id = await cert.get_attribute("data-cert")
        async with page.expect_download() as info:
            await cert.get_by_role("button", name="Download PDF").click()
        download = await info.value
        pdf = OUTPUT / download.suggested_filename
        await download.save_as(pdf)
        assert pdf.name == f"{cert_id}.pdf" and pdf.read_bytes().startswith(b"%PDF")
        await page.get_by_label("Verify a certificate file").set_input_files(pdf)
        verdict = page.locator("#verify-result")
        await verdict.get_by_text("Valid").wait_for()
        assert await verdict.inner_text() == (f"Valid PDF: certificate {cert_id} (fine assist) for car-1, signed by "
                                              f"{(await verdict.inner_text()).rsplit('signed by ', 1)[1]}")
        await page.get_by_label("Verify a certificate file").set_input_files(
            files=[{"name": "forged.pdf", "mimeType": "application/pdf",
                    "buffer": pdf.read_bytes().replace(b"car-1", b"car-2")}])
        await verdict.get_by_text("Not valid").wait_for()
        await page.screenshot(path=OUTPUT / "customer-app-certificate.png")
        assert page.errors == []


async def test_customer_draws_and_edits_geofences_and_follows_a_pet_live(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    db = runtime.db
    await devices.provision(db, ["car-1"], kind="car", owner="alice")
    await devices.provision(db, ["pet-1"], kind="pet", owner="alice")
    await add_account(db, "alice")
    t = (int(time.time()) - 60) * 1000
    await publish(mqtt_url, [
        ("vigil/v1/car/car-1/fix", {"v": 1, "seq": 1, "fixes": [
            {"ts": t, "lat": CAR[0], "lon": CAR[1], "speed_kmh": 0.0}]}),
        ("vigil/v1/pet/pet-1/fix", {"v": 1, "seq": 1, "fixes": [
            {"ts": t, "lat": 60.1680, "lon": 24.9460, "accuracy_m": 8.0}]})])

    async def stored() -> bool:
        return await count_rows(db, "fixes") == 2

    await wait_until(stored, 30, "the car's and the pet's fixes")
    async with httpx.AsyncClient(base_url=runtime.http_url) as http:
        http.headers.update(await login(http, "alice"))
        r = await http.post("/v1/pets/pet-1/fences", json={"type": "Feature", "geometry": {
            "type": "Point", "coordinates": [24.9460, 60.1680]}, "properties": {"name": "Garden", "radius_m": 150}})
        assert r.status_code == 201, r.text

        async with browser_page() as page:
            await page.goto(f"{runtime.http_url}/app")
            await page.get_by_label("User name").fill("alice")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.locator('#cars li[data-car="car-1"]').wait_for()
            await page.wait_for_timeout(500)  # the map settles on the car before we click on it
            box = await page.locator("#map").bounding_box()
            at = lambda dx, dy: (box["x"] + box["width"] / 2 + dx, box["y"] + box["height"] / 2 + dy)  # noqa: E731

            # a polygon of three clicked corners
            await page.get_by_label("Fence name").fill("Parking")
            await page.get_by_role("button", name="Draw polygon").click()
            for dx, dy in ((-120, -80), (120, -80), (0, 100)):
                await page.mouse.click(*at(dx, dy))
            await page.get_by_role("button", name="Save shape").click()
            await page.locator("#fences li", has_text="Parking").wait_for()
            # a circle, then its radius edited
            await page.get_by_label("Fence name").fill("Office")
            await page.get_by_label("Circle radius, m").fill("250")
            await page.get_by_role("button", name="Draw circle").click()
            await page.mouse.click(*at(200, 150))
            await page.get_by_role("button", name="Save shape").click()
            office = page.locator("#fences li", has_text="Office")
            await office.wait_for()
            assert "circle 250 m" in await office.inner_text()
            await office.get_by_role("button", name="Edit").click()
            await page.get_by_label("Circle radius, m").fill("400")
            await page.get_by_role("button", name="Save shape").click()
            await page.locator("#fences li", has_text="circle 400 m").wait_for()

            fences = {f["properties"]["name"]: f for f in (await http.get("/v1/geofences")).json()["features"]}
            assert set(fences) == {"Parking", "Office"}
            ring = fences["Parking"]["geometry"]["coordinates"][0]
            assert fences["Parking"]["geometry"]["type"] == "Polygon" and len(ring) == 4 and ring[0] == ring[-1]
            assert fences["Office"]["geometry"]["type"] == "Point" and fences["Office"]["properties"]["radius_m"] == 400
            # the clicked corners are where the map shows them: north-west, north-east, then south
            assert ring[0][0] < ring[1][0] and ring[0][1] == pytest.approx(ring[1][1], abs=5e-4) and ring[2][1] < ring[0][1]

            await page.locator("#fences li", has_text="Parking").get_by_role("button", name="Delete").click()
            await page.locator("#fences li", has_text="Parking").wait_for(state="detached")
            assert [f["properties"]["name"] for f in (await http.get("/v1/geofences")).json()["features"]] == ["Office"]

            # the pet: its fence, then three new fixes arrive on the live track
            pet = page.locator('#pets li[data-pet="pet-1"]')
            assert "1 fence(s)" in await pet.inner_text()
            await pet.get_by_role("button", name="Live track").click()
            await page.wait_for_timeout(500)  # the stream starts at the pet's last fix
            await publish(mqtt_url, [("vigil/v1/pet/pet-1/fix", {"v": 1, "seq": 2, "fixes": [
                {"ts": t + 10_000 * i, "lat": 60.1680 + 0.0002 * i, "lon": 24.9460, "accuracy_m": 8.0}
                for i in (1, 2, 3)]})])
            await page.locator('#pets li[data-pet="pet-1"] button[data-points="3"]').wait_for(timeout=30_000)
            await page.screenshot(path=OUTPUT / "customer-app-fences-pet.png")
            assert page.errors == []


async def test_customer_sees_the_home_alarm_and_says_it_was_me(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    db = runtime.db
    await devices.provision(db, ["kit-1"], kind="home", owner="alice")
    await add_account(db, "alice")
    await publish(mqtt_url, [("vigil/v1/home/kit-1/event", {"v": 1, "seq": 1, "events": [
        {"ts": int(time.time() * 1000), "type": "water_leak", "event_id": "w-1", "sensor": "kitchen"}]})])

    async def raised() -> bool:
        return await count_rows(db, "alarms") == 1

    await wait_until(raised, 30, "the water-leak alarm")
    async with browser_page() as page:
        await page.goto(f"{runtime.http_url}/app")
        await page.get_by_label("User name").fill("alice")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.locator("#homes li", has_text="kit-1").wait_for()
        alarm = page.locator("#alarms li", has_text="water leak on kit-1")
        await alarm.wait_for()
        await alarm.get_by_role("button", name="It was me").click()
        await page.locator("#alarms li", has_text="you said: it was me").wait_for()
        assert page.errors == []
    async with db.connection() as conn:
        cur = await conn.execute("SELECT customer_feedback FROM alarms")
        assert await cur.fetchall() == [("it_was_me",)]


async def test_customer_fills_in_and_edits_the_profile(mqtt_url, database_url, runtime_factory):
    """The profile form: empty at first, a refused phone shown by its field, saved with two contacts in
    order, shown again after a reload, a contact removed."""
    from customers import get_profile

    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    db = runtime.db
    await add_account(db, "alice", customer_id="cust-a")
    async with browser_page() as page:
        await page.goto(f"{runtime.http_url}/app")
        await page.get_by_label("User name").fill("alice")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        result = page.locator("#profile-result")
        await result.filter(has_text="No details yet").wait_for()
        form = page.locator("#profile-form")
        await form.get_by_label("Name", exact=True).fill("Alice Aalto")
        await form.get_by_label("Phone", exact=True).fill("040 123 4567")       # no country code
        await form.get_by_label("Street and number").fill("Unioninkatu 29 B 7")
        await form.get_by_label("Postal code").fill("00170")
        await form.get_by_label("City").fill("Helsinki")
        await form.get_by_label("Instructions for whoever comes").fill("Cat inside\nKey with the neighbour")
        await form.get_by_label("Name of contact 1").fill("Kalle Aalto")
        await form.get_by_label("Phone of contact 1").fill("+358 50 765 4321")
        await form.get_by_label("Relation of contact 1").fill("son")
        await form.get_by_role("button", name="Add a contact").click()
        await form.get_by_label("Name of contact 2").fill("Liisa Laine")
        await form.get_by_label("Phone of contact 2").fill("+358 44 222 3333")
        await form.get_by_label("Relation of contact 2").fill("neighbour")
        await form.get_by_label("Contact 2 has a key").check()
        await form.get_by_role("button", name="Save my details").click()
        await result.filter(has_text="Please check: phone.").wait_for()
        await form.get_by_label("Phone", exact=True).fill("+358 40 123 4567")
        await form.get_by_role("button", name="Save my details").click()
        await result.filter(has_text="Your details are saved.").wait_for()
        assert await form.get_by_label("Phone", exact=True).input_value() == "+358401234567"  # as stored
        await page.screenshot(path=OUTPUT / "app-profile.png", full_page=True)

        await page.reload()   # the session survives a reload; the form shows what is stored
        await form.get_by_label("Name of contact 2").wait_for()
        assert await form.get_by_label("Street and number").input_value() == "Unioninkatu 29 B 7"
        assert await form.get_by_label("Contact 2 has a key").is_checked()
        await form.get_by_role("button", name="Remove contact 1").click()
        assert await form.get_by_label("Name of contact 1").input_value() == "Liisa Laine"   # renumbered
        await form.get_by_role("button", name="Save my details").click()
        await result.filter(has_text="Your details are saved.").wait_for()
        assert page.errors == []
    stored = await get_profile(db, customer_id="cust-a")
    assert (stored.display_name, stored.phone, stored.street, stored.postal_code, stored.city, stored.country,
            stored.language, stored.instructions, stored.updated_by) == (
        "Alice Aalto", "+358401234567", "Unioninkatu 29 B 7", "00170", "Helsinki", "FI", "fi",
        "Cat inside\nKey with the neighbour", "alice")
    assert [(c.name, c.phone, c.relation, c.keyholder) for c in stored.contacts] == [
        ("Liisa Laine", "+358442223333", "neighbour", True)]
