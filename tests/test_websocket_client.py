"""The WebSocket client connection against an independent server (the ``websockets`` library).

What the stock link relies on: messages arrive through the callback, and
none before the session starts (not even those sent with the upgrade
answer); pings are answered; both closing handshakes work and a close the
server never answers is cut; an absurd message is skipped, not fatal; a
refused upgrade is an error; ``drained`` tells when writes have left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from panda_breath import websocket_client
from panda_breath.websocket_client import ConnectionClosed, WebSocketClient, connect
from sim_fixtures import eventually
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[Any] = []

    async def start(handler: Handler, **options: Any) -> int:
        srv = await serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None,
                          max_size=None, close_timeout=0.5, **options)
        servers.append(srv)
        return srv.sockets[0].getsockname()[1]

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


class Received:
    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.dropped: list[str] = []

    def attach(self, client: WebSocketClient) -> None:
        client.start(self.messages.append, self.dropped.append)


async def open_client(port: int) -> WebSocketClient:
    return await connect("127.0.0.1", port, "/ws", 2.0, "moonraker-panda-breath test", 1 << 20)


async def test_messages_arrive_only_once_the_session_starts(server) -> None:
    agents: list[str | None] = []

    async def handler(conn: ServerConnection) -> None:
        assert conn.request is not None
        agents.append(conn.request.headers.get("User-Agent"))
        await conn.send('{"snapshot":1}')  # may share a packet with the 101
        await conn.send(b"\x00\x01")
        async for message in conn:
            await conn.send("echo " + str(message))

    client = await open_client(await server(handler))
    await asyncio.sleep(0.2)
    got = Received()
    assert got.messages == []
    got.attach(client)
    await eventually(lambda: len(got.messages) == 2)
    assert got.messages == ['{"snapshot":1}', b"\x00\x01"]
    client.write_text("hello")
    await client.drained()
    await eventually(lambda: len(got.messages) == 3)
    assert got.messages[2] == "echo hello"
    assert agents == ["moonraker-panda-breath test"]
    client.close(1000)
    assert await client.closed_within(3.0)
    assert client.close_code == 1000 and client.error is None
    with pytest.raises(ConnectionClosed):
        client.write_text("late")


async def test_a_ping_is_answered(server) -> None:
    pongs: list[float] = []

    async def handler(conn: ServerConnection) -> None:
        pongs.append(await asyncio.wait_for(await conn.ping(b"are you there"), 2.0))
        await conn.wait_closed()

    client = await open_client(await server(handler))
    Received().attach(client)
    await eventually(lambda: len(pongs) == 1)
    client.close()
    await client.wait_closed()


async def test_a_close_from_the_server_is_answered_and_noted(server) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.close(1001, "going away")

    client = await open_client(await server(handler))
    Received().attach(client)
    assert await client.closed_within(3.0)
    assert client.close_code == 1001


async def test_a_close_the_server_never_answers_is_cut(server, monkeypatch) -> None:
    monkeypatch.setattr(websocket_client, "CLOSE_WAIT_S", 0.3)
    release = asyncio.Event()

    async def handler(conn: ServerConnection) -> None:
        conn.transport.pause_reading()  # deaf: our close is never read, never answered
        await release.wait()

    client = await open_client(await server(handler))
    Received().attach(client)
    began = time.monotonic()
    client.close(1001)
    assert await client.closed_within(3.0)
    assert 0.25 < time.monotonic() - began < 1.5
    assert client.close_code is None
    release.set()


async def test_an_absurd_message_is_skipped_and_the_session_goes_on(server) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.send("x" * (3 << 20))
        await conn.send(["frag", "mented"])
        await conn.wait_closed()

    client = await open_client(await server(handler))
    got = Received()
    got.attach(client)
    await eventually(lambda: got.messages == ["fragmented"])
    assert got.dropped == ["a message over 1024 KiB, skipped"]
    client.close()
    await client.wait_closed()


async def test_text_that_is_not_utf8_is_dropped(server) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.send(b"\xff\xfe", text=True)
        await conn.send("fine")
        await conn.wait_closed()

    client = await open_client(await server(handler))
    got = Received()
    got.attach(client)
    await eventually(lambda: got.messages == ["fine"])
    assert got.dropped == ["a text message that is not UTF-8"]
    client.close()


async def test_a_failing_handler_cuts_the_connection_and_is_kept(server) -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.send("boom")
        await conn.wait_closed()

    client = await open_client(await server(handler))

    def explode(message: str | bytes) -> None:
        raise RuntimeError("handler bug")

    client.start(explode, lambda reason: None)
    assert await client.closed_within(3.0)
    assert isinstance(client.failure, RuntimeError) and client.error == "the message handler failed"


async def test_a_refused_upgrade_is_an_error(server) -> None:
    def refuse(conn: ServerConnection, request: Any) -> Response:
        return Response(404, "Not Found", Headers([("Content-Length", "0")]), b"")

    port = await server(lambda conn: conn.wait_closed(), process_request=refuse)
    with pytest.raises(ConnectionError, match="HTTP 404"):
        await open_client(port)


async def test_a_connect_to_nothing_fails_within_its_timeout() -> None:
    began = time.monotonic()
    with pytest.raises((OSError, asyncio.TimeoutError)):
        await connect("10.255.255.1", 80, "/ws", 0.3, "test", 1 << 20)
    assert time.monotonic() - began < 1.0
