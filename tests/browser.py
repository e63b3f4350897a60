"""Helpers of the browser tests: Debian's Chromium driven by Playwright, and where screenshots go."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt

from vigil.settings import parse_mqtt_url

#: Screenshots and downloads of the browser tests (``VIGIL_TEST_OUTPUT`` or ``tests/output/web``).
OUTPUT = Path(os.environ.get("VIGIL_TEST_OUTPUT", Path(__file__).parent / "output")) / "web"


def chromium_path() -> str | None:
    """Debian's Chromium (``apt-get install chromium``); Playwright's own browser download is never used."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@asynccontextmanager
async def browser_page(**context_options):
    """A fresh page in headless Chromium; ``context_options`` go to ``new_context`` (geolocation, ...)."""
    from playwright.async_api import async_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        # --no-sandbox: the tests may run as root in a container, where Chromium's sandbox cannot start
        browser = await p.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True,
                                                **context_options)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.errors = errors
            yield page
        finally:
            await browser.close()


async def publish(mqtt_url: str, messages: list[tuple[str, dict]]) -> None:
    """Publish (topic, JSON payload) pairs at QoS 1, in order, as the devices would."""
    host, port = parse_mqtt_url(mqtt_url)
    async with aiomqtt.Client(host, port) as client:
        for topic, payload in messages:
            await client.publish(topic, json.dumps(payload).encode(), qos=1)


async def wait_until(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll an (async) predicate every 0.2 s until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
