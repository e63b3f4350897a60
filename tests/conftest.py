"""Shared fixtures: real Mosquitto and PostgreSQL servers per session, a fresh database per test."""

from __future__ import annotations

import pytest

from storage import Database
from tests.services import mosquitto_broker, postgres_server, scratch_database


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
