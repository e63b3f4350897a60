"""Teltonika's native TCP exchange, feeding the same pipeline as MQTT.

The device opens a connection and sends its IMEI (2-byte length + ASCII digits); the server answers
0x01 to accept or 0x00 to refuse. Then the device sends AVL packets (the same bytes as the MQTT ``avl``
payload) and waits after each for a 4-byte big-endian count of the records the server took. Vigil
answers only once the packet is durable (stored, or dead-lettered whole), so a device whose packet was
not kept keeps it in its buffer and sends it again.

An IMEI is no secret: as with every server of this protocol, admission rests on the device registry
(provisioned and active) and on the network the listener is exposed to.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time

from ingest.assemble import RawMessage
from ingest.registry import DeviceRegistry

log = logging.getLogger(__name__)

MAX_PACKET_BYTES = 65_536
#: A silent device is dropped after this long; real devices keep the link alive every few minutes.
IDLE_TIMEOUT_S = 600.0


class TeltonikaListener:
    def __init__(self, *, submit, registry: DeviceRegistry, host: str = "0.0.0.0", port: int = 5027,
                 clock=time.time) -> None:
        self._submit = submit
        self._registry = registry
        self.host = host
        self.port = port
        self._clock = clock
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("Teltonika TCP listener on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            imei = await self._login(reader, writer)
            if imei is None:
                return
            while True:
                header = await asyncio.wait_for(reader.readexactly(8), IDLE_TIMEOUT_S)
                length = struct.unpack_from(">I", header, 4)[0]
                if header[:4] != b"\0\0\0\0" or length > MAX_PACKET_BYTES:
                    log.warning("Teltonika %s (%s): not an AVL packet header; closing", imei, peer)
                    return
                body = await asyncio.wait_for(reader.readexactly(length + 4), 60)
                records = body[1] if length >= 2 else 0
                kept = await self._durable(imei, header + body)
                writer.write(struct.pack(">I", records if kept else 0))
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            return
        finally:
            writer.close()

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str | None:
        size = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2), 30))[0]
        if not 1 <= size <= 20:
            return None
        imei = (await asyncio.wait_for(reader.readexactly(size), 30)).decode("ascii", "replace")
        device = (await self._registry.resolve({imei})).get(imei)
        accepted = device is not None and device.kind == "car" and device.status == "active"
        writer.write(b"\x01" if accepted else b"\x00")
        await writer.drain()
        if not accepted:
            log.warning("Teltonika login refused for IMEI %r: not an active, provisioned car", imei)
            return None
        return imei

    async def _durable(self, imei: str, packet: bytes) -> bool:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_durable(ok: bool) -> None:
            if not done.done():
                done.set_result(ok)

        await self._submit(RawMessage(f"vigil/v1/car/{imei}/avl", packet, int(self._clock() * 1000),
                                      on_durable=on_durable))
        return await done
