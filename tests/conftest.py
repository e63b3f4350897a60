"""Shared fixtures: real Mosquitto and PostgreSQL servers per session, a fresh database per test."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

from storage import Database
from vigil.runtime import Runtime
from tests.services import mosquitto_broker, postgres_server, scratch_database

# CI (CI=true) replays the same examples every run, so a landing never hangs on a one-in-a-thousand
# draw; local runs explore new examples each time and keep failures in .hypothesis/.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def pg_admin_url():
    with postgres_server() as url:
        yield url


@pytest.fixture
def database_url(pg_admin_url):
    with scratch_database(pg_admin_url) as url:
        yield url


@pytest.fixture
async def db(database_url):
    database = await Database.open(database_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(scope="session")
def mqtt_url():
    with mosquitto_broker() as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap():
    from tests.kafka_service import tansu_broker

    with tansu_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
async def runtime_factory():
    """Starts :class:`Runtime` instances and stops them all at the end of the test."""
    started: list[Runtime] = []

    async def start(settings, parts=None) -> Runtime:
        runtime = Runtime(settings) if parts is None else Runtime(settings, parts=parts)
        await runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        await runtime.stop()
