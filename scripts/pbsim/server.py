"""The device's TCP listener: WebSocket ``/ws`` plus the simulator's HTTP endpoints.

Built on ``websockets`` (asyncio API): plain HTTP requests are answered from
``process_request`` (so only GET works, which is all ``/sim/state`` and
``/sim/control`` need); a request for ``/ws`` goes through the upgrade.

Like the ESP-IDF httpd (``max_open_sockets = 7``), at most ``max_clients``
WebSocket clients are served; an extra one, or any client while the device is
rebooting or refusing, has its TCP connection closed at once without an HTTP
answer (``refuse_style="close"``, the default) or, alternatively, gets a 503
(``refuse_style="http503"``). ``occupy`` lets phantom clients hold slots for a
while, to make the device full without opening real connections. No
permessage-deflate, no subprotocols and no server pings by default: the
device's httpd does none of them.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from pbsim.journal import Journal
from pbsim.sessions import is_bridge

log = logging.getLogger("pbsim.server")

HttpHandler = Callable[[dict[str, str]], tuple[int, Any]]


@dataclass
class Client:
    """One open WebSocket connection to the device."""

    id: int
    conn: ServerConnection
    peer: str
    connected_at: float = field(default_factory=time.time)
    frames_sent: int = 0
    frames_received: int = 0


class SimServer:
    """HTTP + WebSocket listener with the device's connection limits."""

    def __init__(
        self,
        host: str,
        port: int,
        journal: Journal,
        *,
        ws_enabled: bool,
        max_clients: int,
        refuse_style: str,
        admission: Callable[[], str | None],
        on_connect: Callable[[Client], Awaitable[None]],
        on_message: Callable[[Client, str | bytes], None],
        routes: dict[str, HttpHandler],
        ping_interval: float | None = None,
    ) -> None:
        if refuse_style not in ("close", "http503"):
            raise ValueError("refuse_style must be 'close' or 'http503'")
        self.host = host
        self.requested_port = port
        self.journal = journal
        self.ws_enabled = ws_enabled
        self.max_clients = max_clients
        self.refuse_style = refuse_style
        self.admission = admission
        self.on_connect = on_connect
        self.on_message = on_message
        self.routes = routes
        self.ping_interval = ping_interval
        self.clients: dict[int, Client] = {}
        self._pending: set[ServerConnection] = set()
        self._phantoms = 0
        self._phantoms_until = 0.0
        self._next_id = 1
        self._server: Any = None
        self.port = port

    async def start(self) -> None:
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            ping_interval=self.ping_interval,
            server_header=None,
            max_size=1 << 20,
            close_timeout=1,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close(close_connections=False)
        for client in list(self.clients.values()):
            client.conn.transport.abort()
        await self._server.wait_closed()
        self._server = None

    # -- HTTP / admission ----------------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        handler = self.routes.get(url.path)
        if handler is not None:
            try:
                status, body = handler(query)
            except Exception as exc:  # noqa: BLE001 - report, never kill the listener
                log.exception("HTTP handler for %s failed", url.path)
                status, body = 500, {"ok": False, "error": repr(exc)}
            return json_response(status, body)
        if url.path != "/ws" or not self.ws_enabled:
            return json_response(404, {"ok": False, "error": f"no such path {url.path}"})
        reason = self.admission()
        if reason is None and self._open_count() >= self.max_clients:
            reason = f"too many clients (max {self.max_clients})"
        if reason is not None:
            self.journal.count("connections_refused")
            log.info("refusing WebSocket client: %s", reason)
            if self.refuse_style == "close":
                conn.transport.abort()
            return json_response(503, {"ok": False, "error": reason})
        self._pending.add(conn)
        return None

    def _open_count(self) -> int:
        self._pending = {c for c in self._pending if c.protocol.state is State.CONNECTING}
        return len(self.clients) + len(self._pending) + self.phantoms

    def occupy(self, count: int, seconds: float) -> None:
        """Let ``count`` phantom clients hold slots for ``seconds``, to test a full device."""
        if count < 0:
            raise ValueError("clients must not be negative")
        self._phantoms = count
        self._phantoms_until = time.monotonic() + seconds

    @property
    def phantoms_remaining(self) -> float:
        return max(0.0, self._phantoms_until - time.monotonic())

    @property
    def phantoms(self) -> int:
        return self._phantoms if self.phantoms_remaining > 0 else 0

    # -- WebSocket clients ------------------------------------------------------------------
    async def _handler(self, conn: ServerConnection) -> None:
        self._pending.discard(conn)
        client = Client(self._next_id, conn, _peer(conn))
        self._next_id += 1
        self.clients[client.id] = client
        bridge = is_bridge(conn.request.headers.get("User-Agent") if conn.request else None)
        if bridge:
            self.journal.sessions.opened(("ws", client.id))
        self.journal.count("connections_total")
        log.info("client %d connected from %s (%d open)", client.id, client.peer, len(self.clients))
        try:
            await self.on_connect(client)
            async for message in conn:
                client.frames_received += 1
                self.on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            self.clients.pop(client.id, None)
            if bridge:
                self.journal.sessions.closed(("ws", client.id))
            if conn.close_code is not None:  # e.g. 1009: a frame was too big for the client
                self.journal.count(f"ws_client_close_{conn.close_code}")
            log.info("client %d gone (%d open)", client.id, len(self.clients))

    async def send(self, client: Client, text: str) -> None:
        """Send one frame to one client; a dead connection is simply dropped."""
        try:
            await client.conn.send(text)
        except ConnectionClosed:
            return
        client.frames_sent += 1
        self.journal.count("frames_sent")

    def broadcast(self, data: str | bytes, exclude: Client | None = None) -> int:
        """Queue one frame to every open client (no back-pressure, like the device)."""
        sent = 0
        for client in list(self.clients.values()):
            if client is exclude:
                continue
            conn = client.conn
            if conn.protocol.state is not State.OPEN or conn.send_in_progress is not None:
                continue
            try:
                if isinstance(data, bytes):
                    conn.protocol.send_binary(data)
                else:
                    conn.protocol.send_text(data.encode("utf-8"))
                conn.send_data()
            except Exception:  # noqa: BLE001 - a broken client must not stop the others
                continue
            client.frames_sent += 1
            sent += 1
        self.journal.count("frames_sent", sent)
        return sent

    def drop_all(self, how: str = "abort") -> int:
        """Drop every WebSocket client: ``abort`` (TCP gone) or ``close`` (close frame)."""
        count = 0
        for client in list(self.clients.values()):
            count += 1
            if how == "close":
                asyncio.ensure_future(client.conn.close(code=1001, reason="going away"))
            else:
                client.conn.transport.abort()
        for conn in list(self._pending):
            conn.transport.abort()
        return count


def json_response(status: int, body: Any) -> Response:
    payload = json.dumps(body, default=str).encode("utf-8")
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Connection", "close"),
            ("Cache-Control", "no-store"),
        ]
    )
    reason = http.HTTPStatus(status).phrase
    return Response(status, reason, headers, payload)


def _peer(conn: ServerConnection) -> str:
    try:
        host, port = conn.remote_address[:2]
        return f"{host}:{port}"
    except Exception:  # noqa: BLE001
        return "?"
