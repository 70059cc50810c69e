"""A small asyncio HTTP/1.1 listener with Server-Sent-Events, for the DragonBreath personality.

The stock personalities' listener is the ``websockets`` server, whose HTTP
side answers GET only; DragonBreath's API needs POST bodies and endless event
streams.  This one does exactly what the device's ESP-IDF httpd is seen doing
from a client, and no more:

* one request per connection, answered with ``Content-Length`` and
  ``Connection: close`` (the device keeps connections alive; a client that
  reconnects per request, as tornado's does, cannot tell the difference);
* request head up to 8 KiB; bodies up to ``max_body`` bytes (the device takes
  1536), a larger one is answered by the route handler's ``too_large``;
* an event stream is a 200 ``text/event-stream`` response in **chunked**
  transfer encoding (ASSUMED for the real device: ESP-IDF's
  ``httpd_resp_send_chunk`` sends chunks), one chunk per event; a peer that
  goes away is noticed by reading EOF;
* ``admission`` is asked before anything is read: False aborts the TCP
  connection at once, as a device that is rebooting or refusing does.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("pbsim.http")

MAX_HEAD_BYTES = 8 * 1024
HEAD_TIMEOUT_S = 10.0


@dataclass
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes
    peer: str
    #: The body was longer than the listener's ``max_body`` (and was not read).
    too_large: bool = False

    def form(self) -> dict[str, str]:
        """Query string and urlencoded body together (the body wins)."""
        values = dict(self.query)
        if self.body:
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError:
                return values
            values.update(urllib.parse.parse_qsl(text, keep_blank_values=True))
        return values


@dataclass
class HttpResponse:
    status: int
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if isinstance(self.body, (bytes, bytearray)):
            payload = bytes(self.body)
        elif isinstance(self.body, str):
            payload = self.body.encode("utf-8")
        elif self.body is None:
            payload = b""
        else:
            payload = json.dumps(self.body, separators=(",", ":"), default=str).encode("utf-8")
        reason = http.HTTPStatus(self.status).phrase
        lines = [
            "HTTP/1.1 %d %s" % (self.status, reason),
            "Content-Type: %s" % self.content_type,
            "Content-Length: %d" % len(payload),
            "Connection: close",
            "Cache-Control: no-store",
        ] + ["%s: %s" % item for item in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class EventStream:
    """One open ``text/event-stream`` response; ``send`` queues one event (one chunk)."""

    def __init__(self, stream_id: int, writer: asyncio.StreamWriter, peer: str) -> None:
        self.id = stream_id
        self.peer = peer
        self._writer = writer
        self.closed = asyncio.Event()
        self.events_sent = 0

    def send(self, event: str, data: str | bytes, event_id: str | int | None = None) -> bool:
        """``data`` as one ``data:`` line (bytes: as they are, for hostile events)."""
        if self.closed.is_set() or self._writer.is_closing():
            return False
        head = "event: %s\n" % event
        if event_id is not None:
            head += "id: %s\n" % event_id
        body = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        payload = head.encode("utf-8") + b"data: " + body + b"\n\n"
        try:
            self._writer.write(b"%x\r\n" % len(payload) + payload + b"\r\n")
        except Exception:  # noqa: BLE001 - a broken peer is just gone
            self.closed.set()
            return False
        self.events_sent += 1
        return True

    def abort(self) -> None:
        """Drop the TCP connection without a goodbye (a reboot, a reset)."""
        self.closed.set()
        with contextlib.suppress(Exception):
            self._writer.transport.abort()

    def close(self) -> None:
        """End the stream cleanly (last chunk, then close)."""
        if self.closed.is_set():
            return
        self.closed.set()
        with contextlib.suppress(Exception):
            self._writer.write(b"0\r\n\r\n")
            self._writer.close()


@dataclass
class StreamResponse:
    """Returned by a handler to start an event stream; ``on_open`` gets the stream."""

    on_open: Callable[[EventStream], None]
    on_close: Callable[[EventStream], None]


Handler = Callable[[HttpRequest], Awaitable["HttpResponse | StreamResponse"]]


class HttpServer:
    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        admission: Callable[[], bool] = lambda: True,
        max_body: int = 1536,
    ) -> None:
        self.host, self.port, self.handler, self.admission = host, port, handler, admission
        self.max_body = max_body
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._next_stream = 1
        self.connections_total = 0
        self.connections_refused = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self.abort_all()
        await self._server.wait_closed()
        self._server = None

    def abort_all(self) -> int:
        """Reset every open connection (requests in flight and streams)."""
        count = 0
        for writer in list(self._writers):
            count += 1
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()
        return count

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        if not self.admission():
            self.connections_refused += 1
            writer.transport.abort()
            return
        self.connections_total += 1
        self._writers.add(writer)
        try:
            request = await asyncio.wait_for(self._read_request(reader, peer), HEAD_TIMEOUT_S)
            if request is None:
                return
            result = await self.handler(request)
            if isinstance(result, StreamResponse):
                await self._serve_stream(result, reader, writer, peer)
                return
            writer.write(result.encode())
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # noqa: BLE001 - never let one request kill the listener
            log.exception("HTTP request from %s failed", peer)
            with contextlib.suppress(Exception):
                writer.write(HttpResponse(500, {"ok": False, "error": "internal"}).encode())
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(self, reader: asyncio.StreamReader, peer: str) -> HttpRequest | None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD_BYTES:
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        method, target, _version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        length_text = headers.get("content-length", "0") or "0"
        length = int(length_text) if length_text.isdigit() else 0
        body = b""
        too_large = length > self.max_body
        if length and not too_large:
            body = await reader.readexactly(length)
        return HttpRequest(method.upper(), url.path, query, headers, body, peer, too_large)

    async def _serve_stream(
        self, response: StreamResponse, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter, peer: str,
    ) -> None:
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n"
            "Connection: keep-alive\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        writer.write(head.encode("latin-1"))
        stream = EventStream(self._next_stream, writer, peer)
        self._next_stream += 1
        response.on_open(stream)
        closed = asyncio.ensure_future(stream.closed.wait())
        try:
            while not stream.closed.is_set():
                eof = asyncio.ensure_future(reader.read(1024))
                await asyncio.wait([eof, closed], return_when=asyncio.FIRST_COMPLETED)
                if not eof.done():
                    eof.cancel()
                    break
                if eof.cancelled() or eof.exception() is not None or not eof.result():
                    break  # the peer went away (EOF or reset)
        finally:
            closed.cancel()
            stream.closed.set()
            response.on_close(stream)


def _peer(writer: asyncio.StreamWriter) -> str:
    try:
        host, port = writer.get_extra_info("peername")[:2]
        return f"{host}:{port}"
    except Exception:  # noqa: BLE001
        return "?"
