"""tornado plumbing for one DragonBreath device: short JSON requests and the one event stream.

Nothing here blocks: tornado's HTTP client on the running loop.  The control
token goes into request headers only; every error text made here is cut short
and has the token redacted, and response bodies are handed on, never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.iostream import IOStream
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from tornado.tcpclient import TCPClient

from . import dragonbreath as db
from .link import USER_AGENT

#: Per-request limit for everything but the stream (the reference suggests ~4 s).
REQUEST_TIMEOUT_S = 4.0
#: The request body limit of everything but the stream.
MAX_BODY = 4 * db.MAX_DOCUMENT_BYTES
#: The stream is endless; tornado counts its bytes against this (no buffering).
_MAX_STREAM_BODY = 1 << 50


def _collect(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as seen (no "never retrieved" noise)."""
    if not future.cancelled():
        future.exception()


class _StreamTCPClient(TCPClient):
    """Remembers the socket of the (single) event stream so a silent one can be closed.

    tornado's HTTP client has no way to cancel a request in flight; closing its
    socket ends it at once (the fetch completes with a 599), which frees the
    device's stream slot too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_stream: IOStream | None = None
        #: Set by ``abort``: a connect still under way is closed the moment it completes.
        self.aborted = False

    async def connect(self, *args: Any, **kwargs: Any) -> IOStream:
        stream = await super().connect(*args, **kwargs)
        self.last_stream = stream
        if self.aborted:
            stream.close()
        return stream

    def arm(self) -> None:
        """A new stream request begins: only an abort from now on ends it."""
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True
        stream = self.last_stream
        if stream is not None and not stream.closed():
            stream.close()


class DragonBreathHttp:
    """The HTTP clients of one link: one for requests, one for the event stream."""

    def __init__(self, token: str, connect_timeout: float) -> None:
        self._token = db.validate_token(token)
        self.connect_timeout = connect_timeout
        self.base = ""
        self._client: SimpleAsyncHTTPClient | None = None
        self._stream_client: SimpleAsyncHTTPClient | None = None
        self._stream_tcp: _StreamTCPClient | None = None

    def open(self) -> None:
        if self._client is None:
            self._client = SimpleAsyncHTTPClient(force_instance=True, max_body_size=MAX_BODY)
        if self._stream_client is None:
            self._stream_client = SimpleAsyncHTTPClient(
                force_instance=True, max_body_size=_MAX_STREAM_BODY
            )
            self._stream_tcp = _StreamTCPClient()
            self._stream_client.tcp_client = self._stream_tcp

    def close(self) -> None:
        for client in (self._client, self._stream_client):
            if client is not None:
                client.close()
        self._client = self._stream_client = None
        self._stream_tcp = None

    @property
    def closed(self) -> bool:
        return self._client is None

    def point_at(self, address: str, port: int) -> None:
        host = "[%s]" % address if ":" in address else address
        self.base = "http://%s:%d" % (host, port)

    def redact(self, text: str) -> str:
        # The sentinel "web" is no secret (and would mangle words like "website").
        return db.redact(text, None if self._token == db.DEFAULT_TOKEN else self._token)

    def describe_exc(self, exc: BaseException | None) -> str:
        if exc is None:
            return "unknown error"
        if isinstance(exc, asyncio.TimeoutError):
            return "timed out"
        return self.redact((str(exc) or type(exc).__name__)[:200])

    def _request(self, path: str, **options: Any) -> HTTPRequest:
        options.setdefault("request_timeout", REQUEST_TIMEOUT_S)
        return HTTPRequest(
            self.base + path,
            connect_timeout=min(self.connect_timeout, REQUEST_TIMEOUT_S),
            user_agent=USER_AGENT,
            **options,
        )

    async def get(self, path: str) -> bytes:
        """The body of a 200; ConnectionError (with a safe text) for anything else."""
        client = self._client
        if client is None:
            raise ConnectionError("link closed")
        request = self._request(path, method="GET", headers={"Accept": "application/json"})
        response = await client.fetch(request, raise_error=False)
        if response.code == 599:
            raise ConnectionError(self.describe_exc(response.error))
        if response.code != 200:
            raise ConnectionError("HTTP %d on %s" % (response.code, path))
        return response.body or b""

    async def post(self, path: str, body: str, form: bool = False) -> HTTPResponse:
        """POST with the auth header; any HTTP status, ConnectionError if none came."""
        client = self._client
        if client is None:
            raise ConnectionError("link closed")
        headers = db.request_headers(self._token, json_body=not form)
        if form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = self._request(path, method="POST", body=body, headers=headers)
        try:
            response = await client.fetch(request, raise_error=False)
        except Exception as exc:  # noqa: BLE001 - e.g. the client closed under us
            raise ConnectionError(self.describe_exc(exc)) from None
        if response.code == 599:
            raise ConnectionError(self.describe_exc(response.error))
        return response

    def open_stream(
        self, on_header: Callable[[str], None], on_chunk: Callable[[bytes], None]
    ) -> asyncio.Future[HTTPResponse]:
        """Start the event stream; the future ends with it (``abort_stream`` ends it now)."""
        client = self._stream_client
        assert client is not None
        request = self._request(
            db.PATH_EVENTS,
            method="GET",
            headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"},
            request_timeout=0,  # endless; the follower watches for silence
            header_callback=on_header,
            streaming_callback=on_chunk,
        )
        assert self._stream_tcp is not None
        self._stream_tcp.arm()
        future = asyncio.ensure_future(client.fetch(request, raise_error=False))
        # If the follower is cancelled while the stream runs, its end is still collected.
        future.add_done_callback(_collect)
        return future

    def abort_stream(self) -> None:
        if self._stream_tcp is not None:
            self._stream_tcp.abort()
