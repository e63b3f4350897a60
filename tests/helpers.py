"""Helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

from tests.services import free_port
from vigil.settings import Settings


async def count_rows(db, table: str) -> int:
    async with db.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) FROM {table}")
        return (await cur.fetchone())[0]


async def wait_for_rows(db, table: str, expected: int, timeout: float = 60.0) -> int:
    """Poll until ``table`` holds at least ``expected`` rows or time runs out; returns the last count."""
    deadline = asyncio.get_running_loop().time() + timeout
    n = -1
    while asyncio.get_running_loop().time() < deadline:
        n = await count_rows(db, table)
        if n >= expected:
            break
        await asyncio.sleep(0.1)
    return n


def make_settings(mqtt_url: str, database_url: str, kafka: str | None = None) -> Settings:
    """Settings for one isolated runtime: its own MQTT session, Kafka topics, HTTP port and data dir."""
    return Settings(
        mqtt_url=mqtt_url,
        database_url=database_url,
        kafka_bootstrap=kafka,
        kafka_topic_prefix=f"t-{uuid.uuid4().hex[:8]}.",
        http_port=free_port(),
        data_dir=Path(tempfile.mkdtemp(prefix="vigil-test-")),
        mqtt_client_id=f"vigil-test-{uuid.uuid4().hex[:8]}",
    )


# --- accounts: create logins directly in the database, log in over HTTP --------------------------------

#: The password every test account gets unless told otherwise.
PASSWORD = "correct horse battery"
#: Cheap argon2 parameters for tests (the hash records them, so any app verifies these accounts cheaply);
#: production cost is AuthConfig's default.
CHEAP_ARGON2 = {"argon2_memory_kib": 1024, "argon2_time_cost": 1, "argon2_parallelism": 1}


def auth_config(**overrides):
    """An :class:`AuthConfig` with a random key and cheap hashing, for ``create_app(auth=...)``."""
    from accounts import AuthConfig

    return AuthConfig.ephemeral(**(CHEAP_ARGON2 | overrides))


def make_app(db, **kwargs):
    """``create_app`` with fresh metrics and :func:`auth_config`; ``kwargs`` go to create_app (e.g. now=)."""
    from api.app import create_app
    from vigil.metrics import Metrics

    kwargs.setdefault("auth", auth_config())
    return create_app(db=db, metrics=Metrics(), **kwargs)


async def add_account(db, username: str, *, role: str = "customer", customer_id: str | None = None,
                      password: str = PASSWORD, email: str | None = None):
    """Create a login directly in the database and return its :class:`Caller`. A customer acts for
    ``customer_id`` (default: the username), the value to give devices as ``owner``."""
    from accounts import Passwords
    from accounts.service import create_account

    if role == "customer" and customer_id is None:
        customer_id = username
    return await create_account(db, Passwords(auth_config()), username=username, role=role, password=password,
                                customer_id=customer_id, email=email or f"{username}@example.org")


async def login(client, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in over the API (OAuth2 password flow); returns the ``Authorization`` header to send, e.g.
    ``client.headers.update(await login(client, "alice"))``."""
    r = await client.post("/v1/auth/token", data={"grant_type": "password", "username": username,
                                                  "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
