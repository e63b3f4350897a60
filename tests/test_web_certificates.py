"""The customer app's period certificates in a real browser against a real runtime: the customer asks
for a driving-style and a vehicle-usage certificate through the form, downloads each (PDF and JSON),
and the files verify, with the vehicle, the period and the figures of the trips in the database."""

from __future__ import annotations

import datetime as dt
import json

from zoneinfo import ZoneInfo

import httpx
import pytest

from storage import devices
from storage import trips as trip_store
from tests.browser import OUTPUT, browser_page, chromium_path
from tests.helpers import PASSWORD, add_account, make_settings, wait_for_rows
from tests.test_trips_service import first_trip, second_trip
from tests.test_trips_service import publish as publish_fixes
from trips.period import period_style
from trips.score import TripConfig

HELSINKI = ZoneInfo("Europe/Helsinki")
pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Debian chromium missing: apt-get install chromium "
                                                                  "(make test installs it when run as root)")


async def _trips(db) -> list[dict]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT distance_m, max_speed_kmh, event_counts, urban_m, extra_urban_m, highway_m, start_ts"
            " FROM trips ORDER BY start_ts")
        names = [c.name for c in cur.description]
        return [dict(zip(names, row)) for row in await cur.fetchall()]


def _utc(local: str) -> str:
    """Helsinki wall-clock time -> the certificate's ISO UTC with milliseconds."""
    moment = dt.datetime.fromisoformat(local).replace(tzinfo=HELSINKI).astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def _download(page, item, button: str, name: str):
    async with page.expect_download() as info:
        await item.get_by_role("button", name=button, exact=True).click()
    download = await info.value
    path = OUTPUT / f"{name}-{download.suggested_filename}"
    await download.save_as(path)
    return download.suggested_filename, path.read_bytes()


async def test_customer_issues_downloads_and_verifies_period_certificates(mqtt_url, database_url, runtime_factory):
    runtime = await runtime_factory(make_settings(mqtt_url, database_url))
    db = runtime.db
    await devices.provision(db, ["car-1"], kind="car", owner="alice")
    await add_account(db, "alice")
    one = first_trip()  # yesterday: ~3.3 km with one harsh brake, then ~2 km smooth
    two = second_trip(one[-1]["ts"], one[-1]["lat"])
    await publish_fixes(mqtt_url, "car-1", one + two, 1)
    assert await wait_for_rows(db, "trips", 2) == 2
    trips = await _trips(db)

    async with browser_page(timezone_id="Europe/Helsinki") as page, \
            httpx.AsyncClient(base_url=runtime.http_url, timeout=30) as http:
        await page.goto(f"{runtime.http_url}/app")
        await page.get_by_label("User name").fill("alice")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.locator('#cert-car option[value="car-1"]').wait_for(state="attached")

        # a period the form cannot send: said on the page, nothing issued
        await page.get_by_label("Kind").select_option("vehicle_usage")
        start = await page.get_by_label("From").input_value()
        await page.get_by_label("From").fill("")
        await page.get_by_role("button", name="Issue certificate").click()
        await page.locator("#status", has_text="Pick the first and the last day of the period.").wait_for()
        await page.get_by_label("From").fill("2099-01-01")
        await page.get_by_role("button", name="Issue certificate").click()
        await page.locator("#status", has_text="must not be after the last").wait_for()
        await page.get_by_label("From").fill(start)
        assert await page.locator("#certs li").count() == 0

        issued: dict[str, dict] = {}
        for kind, label in (("driving_style", "driving style"), ("vehicle_usage", "vehicle usage")):
            await page.get_by_label("Kind").select_option(kind)
            assert await page.locator("#cert-at-row").is_hidden()
            assert await page.locator("#cert-period-row").is_visible()
            start, end = await page.get_by_label("From").input_value(), await page.get_by_label("To").input_value()
            assert dt.date.fromisoformat(start) < trips[0]["start_ts"].date() <= dt.date.fromisoformat(end)
            before = await page.locator("#certs li").count()
            await page.get_by_role("button", name="Issue certificate").click()
            await page.locator("#status", has_text="issued").wait_for()
            item = page.locator("#certs li", has_text=label).first
            await item.wait_for()
            assert await page.locator("#certs li").count() == before + 1
            cert_id = await item.get_attribute("data-cert")

            pdf_name, pdf = await _download(page, item, "Download PDF", kind)
            json_name, doc = await _download(page, item, "JSON", kind)
            assert (pdf_name, json_name) == (f"{cert_id}.pdf", f"{cert_id}.json") and pdf.startswith(b"%PDF")
            for body, media in ((pdf, "application/pdf"), (doc, "application/json")):
                verdict = (await http.post("/v1/certificates/verify", content=body,
                                           headers={"Content-Type": media})).json()
                assert verdict["valid"] and verdict["reason"] == "ok", verdict
                assert verdict["certificate"] == json.loads(doc)["certificate"]
                assert json.loads(doc)["signature"]["key_id"] in verdict["key_ids"]
            cert = json.loads(doc)["certificate"]
            assert (cert["id"], cert["kind"], cert["vehicle_id"]) == (cert_id, kind, "car-1")
            # the form's days are the customer's local days (Europe/Helsinki here), sent as UTC instants
            assert cert["subject"] == {"from": _utc(f"{start}T00:00:00"), "to": _utc(f"{end}T23:59:59")}
            issued[kind] = cert

            # the page's own check of the downloaded PDF, and of the stored one
            await page.get_by_label("Verify a certificate file").set_input_files(OUTPUT / f"{kind}-{pdf_name}")
            verdict = page.locator("#verify-result")
            await verdict.get_by_text(f"certificate {cert_id} ({label}) for car-1").wait_for()
            assert (await verdict.inner_text()).startswith("Valid PDF")
            await page.screenshot(path=OUTPUT / f"customer-app-{kind}.png")

        km = round(sum(t["distance_m"] for t in trips) / 1000, 3)
        style = issued["driving_style"]["findings"]
        rows = await trip_store.list_trips(db, "car-1", start=None, end=None, limit=10, offset=0)
        assert style == period_style(rows, TripConfig())
        assert style["trips"] == 2 and style["distance_km"] == km
        assert style["events"]["harsh_braking"] == sum(t["event_counts"]["harsh_braking"] for t in trips) == 1
        assert 0 < style["score"] < 100, "one harsh brake in ~5 km"
        usage = issued["vehicle_usage"]["findings"]
        assert usage["trips"] == 2 and usage["distance_km"] == km
        assert usage["max_speed_kmh"] == round(max(t["max_speed_kmh"] for t in trips), 1)
        assert usage["harsh_events"]["harsh_braking"] == 1 and usage["crashes_detected"] == 0
        assert usage["km_by_road_class"] == {c: round(sum(t[f"{c}_m"] for t in trips) / 1000, 3)
                                             for c in ("urban", "extra_urban", "highway")}
        assert usage["days_used"] == 1
        assert sum(len(line) for line in issued["vehicle_usage"]["map"]["lines"]) > 0
        assert page.errors == []
