"""The assistance-centre API served by the alarm process (vigil/alarm_process.py) on a port of its own.

The same routes as the main API's ``/v1/operator`` and ``/v1/alarms`` (the same routers, token checks and
problem+json), on the alarm process's event loop: the operator stream wakes on the alarm transaction's
NOTIFY and writes the event without waiting behind the main process's ingest work (issue 6).
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from accounts.config import AuthConfig
from alarms.feed import AlarmFeed
from api import alarms, alarms_customer, problems
from storage.db import Database
from vigil import __version__


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_alarm_app(*, db: Database, auth: AuthConfig, now: Callable[[], dt.datetime] = _utcnow) -> FastAPI:
    app = FastAPI(title="Vigil assistance centre", version=__version__, docs_url="/docs",
                  description="The alarm routes of the Vigil API, served by the alarm process.")
    app.state.db, app.state.auth, app.state.now = db, auth, now
    app.state.alarm_feed = AlarmFeed(db)
    problems.install(app)
    # The console page is served by the main API (another port, so another origin) and reads the queue
    # and stream here. Any origin may call: every route wants a bearer token the page sends itself, never
    # a cookie, so a foreign page without the token gets the same 401 it would get from curl.
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=False,
                       allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type", "Last-Event-ID"])
    app.include_router(alarms.router)
    app.include_router(alarms_customer.router)

    @app.get("/healthz", tags=["operations"], summary="Liveness of the alarm process's API")
    async def healthz() -> dict:
        return {"status": "ok", "serves": "assistance centre"}

    return app
