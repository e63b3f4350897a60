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

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Debian chromium missing: apt-get install chromium "
                                                                  "(make test installs it when run as root)")

CUSTOMER = (60.1675, 24.9445)  # Pohjoisesplanadi at Erottaja
CAR = (60.1690, 24.9500)  # parked on Aleksanterinkatu


async def test_customer_sees_the_car_walks_to_it_and_verifies_a_certificate(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    db = runtime.db
    await devices.provision(db, ["car-1"], kind="car", owner="alice")
    await add_account(db, "alice")
    fix_ms = (int(time.time()) - 30) * 1000
    await publish(mqtt_url, [("vigil/v1/car/car-1/fix", {"v": 1, "seq": 1, "fixes": [
        {"ts": fix_ms, "lat": CAR[0], "lon": CAR[1], "speed_kmh": 0.0, "ignition": False}]})])

    async def stored() -> bool:
        return await count_rows(db, "fixes") == 1

    async def graph_ready() -> bool:
        return runtime.walk_graph.status == "ready"

    await wait_until(stored, 30, "the car's fix in the database")
    await wait_until(graph_ready, 240, "the walking graph")
    async with httpx.AsyncClient(base_url=runtime.http_url) as http:  # what the page must show
        http.headers.update(await login(http, "alice"))
        expected = (await http.get("/v1/vehicles/car-1/find",
                                   params={"from_lat": CUSTOMER[0], "from_lon": CUSTOMER[1]})).json()["route"]
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
