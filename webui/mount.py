"""Mount the pages, our scripts and the npm-installed Leaflet build on a FastAPI app."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from webui import roads

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
#: Our own HTML, JS and CSS (no build step: plain ES modules).
PAGES = HERE / "static"


def node_modules() -> Path:
    """Where ``make web`` installed the npm packages: ``VIGIL_WEB_MODULES`` or ``<repo>/web/node_modules``."""
    configured = os.environ.get("VIGIL_WEB_MODULES")
    return Path(configured) if configured else HERE.parent / "web" / "node_modules"


def install(app: FastAPI) -> None:
    """Add ``/app``, ``/console``, ``/static/ui``, ``/static/leaflet`` and the map routes to ``app``."""
    app.include_router(roads.router)
    app.mount("/static/ui", StaticFiles(directory=PAGES), name="ui")
    leaflet = node_modules() / "leaflet" / "dist"
    if leaflet.is_dir():
        app.mount("/static/leaflet", StaticFiles(directory=leaflet), name="leaflet")
    else:  # the API still works; the pages say what is missing
        log.warning("%s missing: run `make web` for the map of the web pages", leaflet)

    @app.get("/app", include_in_schema=False)
    async def customer_app() -> FileResponse:
        return FileResponse(PAGES / "app.html")

    @app.get("/console", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(PAGES / "console.html")

    @app.get("/console/config.json", include_in_schema=False)
    async def console_config(request: Request) -> dict:
        # The port of the alarm process's API (vigil/alarm_process.py), when one runs: the console reads
        # its queue and stream there, off the main process's busy event loop. Same host as the page.
        return {"alarm_api_port": getattr(request.app.state, "alarm_api_port", None)}

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/app")
