"""Teltonika's native TCP exchange against the real pipeline: IMEI login, packet, 4-byte ack after storage."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import time

from ingest import teltonika
from storage import devices
from tests.helpers import make_settings, wait_for_rows


async def login(port: int, imei: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(struct.pack(">H", len(imei)) + imei.encode())
    await writer.drain()
    return reader, writer, await asyncio.wait_for(reader.readexactly(1), 10)


async def test_tcp_login_packet_and_ack(mqtt_url, database_url, runtime_factory):
    settings = dataclasses.replace(make_settings(mqtt_url, database_url), teltonika_tcp_port=0)
    runtime = await runtime_factory(settings)
    imei = "356307042441013"
    await devices.provision(runtime.db, [imei], kind="car")
    now_ms = (int(time.time()) - 30) * 1000

    reader, writer, answer = await login(runtime.teltonika_port, "123456789012345")
    assert answer == b"\x00"  # not provisioned
    writer.close()

    reader, writer, answer = await login(runtime.teltonika_port, imei)
    assert answer == b"\x01"
    for i in range(2):
        packet = teltonika.encode(teltonika.AvlRecords.from_columns(
            ts_ms=[now_ms + i * 10_000 + j * 1000 for j in range(4)], lat=60.17, lon=24.94, satellites=8,
            speed_kmh=30, ignition=1, codec=teltonika.CODEC_8 if i == 0 else teltonika.CODEC_8E))
        writer.write(packet)
        await writer.drain()
        ack = await asyncio.wait_for(reader.readexactly(4), 10)
        assert struct.unpack(">I", ack)[0] == 4
        # The ack means stored: the rows are there already.
        async with runtime.db.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM fixes")
            assert (await cur.fetchone())[0] == 4 * (i + 1)
    writer.close()
    assert await wait_for_rows(runtime.db, "fixes", 8) == 8
