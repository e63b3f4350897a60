"""The FastAPI application: Find-Vehicle, health and metrics. Dependencies arrive via ``app.state``."""

from __future__ import annotations

import datetime as dt
from typing import Callable

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from alarms import operations as alarm_operations
from alarms.feed import AlarmFeed
from accounts.config import AuthConfig
from accounts.passwords import Passwords
from api import account, alarms, alarms_customer, devices, find, geofences, pets, problem_docs, problems, trips, vehicles
from api import auth as auth_routes
from api import certificates as certificate_routes
from api import profiles as profile_routes
from api.certificate_service import CertificateContext
from api.find_service import WalkGraph
from api.schemas import Health
from storage import deadletters
from storage.db import Database
from vigil import __version__
from vigil.metrics import Metrics
from webui import install as install_web_pages


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_app(*, db: Database, metrics: Metrics, now: Callable[[], dt.datetime] = _utcnow,
               certificates: CertificateContext | None = None, walk_graph: WalkGraph | None = None,
               walk_speed_kmh: float = 5.0, auth: AuthConfig | None = None) -> FastAPI:
    """The API. ``auth`` None: a random token key for this process (embedding, tests); ``vigil up`` passes
    the persisted one (:meth:`AuthConfig.from_settings`)."""
    app = FastAPI(
        title="Vigil",
        version=__version__,
        description="Telematics ingestion and device services for insurers.",
        docs_url="/docs",
    )
    app.state.db = db
    app.state.metrics = metrics
    app.state.now = now
    app.state.certificates = certificates
    app.state.walk_graph = walk_graph if walk_graph is not None else WalkGraph()
    app.state.walk_speed_kmh = walk_speed_kmh
    app.state.auth = auth or AuthConfig.ephemeral()
    app.state.passwords = Passwords(app.state.auth)
    problems.install(app)
    problem_docs.install(app)
    app.include_router(vehicles.router)
    app.include_router(trips.router)
    app.state.alarm_feed = AlarmFeed(db)
    app.include_router(certificate_routes.router)
    app.include_router(find.router)
    app.include_router(geofences.router)
    app.include_router(pets.router)
    app.include_router(auth_routes.router)
    app.include_router(account.router)
    app.include_router(devices.router)
    app.include_router(alarms.router)
    app.include_router(alarms_customer.router)
    app.include_router(profile_routes.router)
    install_web_pages(app)

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="Liveness, storage mode, rejects")
    async def healthz(request: Request) -> Health:
        try:
            counts = await deadletters.counts_by_reason(db)
            database = "ok"
        except psycopg.Error as exc:
            counts, database = {}, f"error: {exc}"
        return Health(
            status="ok" if database == "ok" else "degraded",
            database=database,
            fixes_storage=db.fixes_mode,
            dead_letters=counts,
            counters=metrics.snapshot(),
        )

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"], summary="Prometheus counters",
             responses={200: {"content": {"text/plain": {"example": "vigil_storage_fixes_total 1234\n"}}}})
    async def prometheus() -> str:
        try:
            alarm_lines = await alarm_operations.metrics_text(db=db)
        except psycopg.Error:  # the process counters still render while the database is away
            alarm_lines = ""
        return metrics.render() + alarm_lines

    return app
