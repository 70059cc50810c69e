"""A connection the bridge gave up on is closed, whatever stage it reached.

On a stalling Wi-Fi link the device may answer an upgrade long after the
bridge stopped waiting; a forgotten connection then holds one of the
device's few client slots.  A real TCP server here answers late, as such a
device would, and watches whether the bridge's socket is still open.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest
from panda_breath.dragonbreath_http import _StreamTCPClient
from panda_breath.websocket_client import connect

WS_MAGIC = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class LateDevice:
    """Answers a WebSocket upgrade ``delay`` s after the request; notes whether the
    client's socket was still open then and a second later."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.open_after: bool | None = None
        self.done = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1((key + WS_MAGIC).encode()).digest()).decode()
        await asyncio.sleep(self.delay)
        try:
            writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept)
                         .encode())
            await writer.drain()
            # An open session reads nothing; a closed one gives EOF or a close frame.
            data = await asyncio.wait_for(reader.read(1), 1.5)
            self.open_after = False if not data or data[0] & 0x0F == 0x8 else True
        except asyncio.TimeoutError:
            self.open_after = True
        except OSError:
            self.open_after = False
        finally:
            writer.close()
            self.done.set()


@pytest.mark.parametrize("cancel", [False, True], ids=["timed-out", "cancelled"])
async def test_a_late_upgrade_is_not_left_open(cancel: bool) -> None:
    device = LateDevice(delay=1.0)
    server = await asyncio.start_server(device.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        attempt = asyncio.ensure_future(connect("127.0.0.1", port, "/ws", 0.4, "test", 1 << 20))
        if cancel:  # the link closed while it was connecting
            await asyncio.sleep(0.2)
            attempt.cancel()
        with pytest.raises((asyncio.TimeoutError, asyncio.CancelledError)):
            await attempt
        await asyncio.wait_for(device.done.wait(), 5.0)
        assert device.open_after is False, "the upgrade completed later and stayed open"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_event_stream_connect_that_completes_after_its_abort_is_closed() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tcp = _StreamTCPClient()
    try:
        tcp.arm()
        connecting = asyncio.ensure_future(tcp.connect("127.0.0.1", port))
        tcp.abort()  # the follower gave the stream up before its socket existed
        stream = await connecting
        assert stream.closed()
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
