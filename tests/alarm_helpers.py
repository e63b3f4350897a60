"""Helpers of the alarm tests: publish device messages, log in, read the SSE operator stream, query alarm
tables."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import httpx

from tests.helpers import add_account, login
from vigil.errors import RejectedInput
from vigil.settings import parse_mqtt_url


async def publish(mqtt_url: str, messages: list[tuple[str, dict]]) -> None:
    """Publish (topic, JSON payload) pairs at QoS 1, in order."""
    host, port = parse_mqtt_url(mqtt_url)
    async with aiomqtt.Client(host, port, max_inflight_messages=200) as client:
        for topic, payload in messages:
            await client.publish(topic, json.dumps(payload).encode(), qos=1)


def home_event(kit: str, seq: int, ts_ms: int, type_: str, event_id: str, **extra) -> tuple[str, dict]:
    return f"vigil/v1/home/{kit}/event", {"v": 1, "seq": seq, "events": [
        {"ts": ts_ms, "type": type_, "event_id": event_id, **extra}]}


def home_heartbeat(kit: str, seq: int, ts_ms: int, battery_pct: float = 90.0) -> tuple[str, dict]:
    return f"vigil/v1/home/{kit}/heartbeat", {"v": 1, "seq": seq, "ts": ts_ms, "battery_pct": battery_pct}


async def logged_in(runtime, username: str, role: str = "customer") -> dict[str, str]:
    """The Authorization header of ``username`` on ``runtime``'s API; the account is created on first use
    (a customer acts for the customer id ``username``)."""
    try:
        await add_account(runtime.db, username, role=role)
    except RejectedInput as exc:
        assert exc.reason == "username_taken"
    async with httpx.AsyncClient(base_url=runtime.http_url, timeout=10) as http:
        return await login(http, username)


class StreamReader:
    """Reads ``GET /v1/operator/alarms/stream`` in the background; ``events`` holds (id, body) in order.
    ``auth``: an operator's Authorization header."""

    def __init__(self, base_url: str, auth: dict[str, str], after: int | None = None,
                 last_event_id: str | None = None) -> None:
        self.url = f"{base_url}/v1/operator/alarms/stream" + (f"?after={after}" if after is not None else "")
        self.headers = {**auth, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
        self.events: list[tuple[int, dict]] = []
        self.connected = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "StreamReader":
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.connected.wait(), 10)
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        async with httpx.AsyncClient(timeout=None) as client:
            async with client.stream("GET", self.url, headers=self.headers) as response:
                response.raise_for_status()
                self.connected.set()
                event_id, data = None, None
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        event_id = int(line[4:])
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                    elif line == "" and event_id is not None and data is not None:
                        self.events.append((event_id, data))
                        event_id, data = None, None

    async def wait_for(self, predicate, timeout: float = 30.0) -> list[tuple[int, dict]]:
        """Until ``predicate(events)`` holds; returns the events."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.events):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"stream condition not met; got {[(i, e['kind']) for i, e in self.events]}")
            await asyncio.sleep(0.05)
        return self.events


async def fetch(db, sql: str, *args) -> list[tuple]:
    async with db.connection() as conn:
        cur = await conn.execute(sql, args)
        return await cur.fetchall()


async def wait_for(db, sql: str, predicate, *args, timeout: float = 30.0) -> list[tuple]:
    """Poll ``sql`` until ``predicate(rows)`` holds; returns the rows (the last ones on timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await fetch(db, sql, *args)
        if predicate(rows) or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.1)
