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
