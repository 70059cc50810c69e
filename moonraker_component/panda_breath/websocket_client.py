"""One WebSocket client connection over an asyncio protocol.

Frames are parsed where the bytes arrive (``data_received``) and handed to
the session's callbacks there: no task wakes and no future is made per
frame, which is most of what 50 stock devices cost Moonraker.  The
connection never outlives the one who opened it: an upgrade that does not
finish in time is aborted (a device on stalling Wi-Fi may accept it much
later and would hold one of its few client slots), and a close the device
does not answer within ``CLOSE_WAIT_S`` is cut.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from . import websocket_protocol as wsp
from .waiters import Waiters

#: How long a close of ours waits for the device's answer before the socket is cut.
CLOSE_WAIT_S = 5.5


class ConnectionClosed(Exception):
    """A write on a connection that is closing or closed."""


class WebSocketClient(asyncio.Protocol):
    """See the module docstring; open one with ``connect``."""

    def __init__(self, key: str, max_message: int) -> None:
        loop = asyncio.get_running_loop()
        self._key = key
        self._reader = wsp.FrameReader(max_message)
        self._transport: asyncio.Transport | None = None
        self._head: bytearray | None = bytearray()  # the upgrade answer, until it is complete
        self._early = b""  # frames that came with the upgrade answer, until ``start``
        self._upgraded: asyncio.Future[str | None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._on_message: Callable[[str | bytes], None] | None = None
        self._on_dropped: Callable[[str], None] | None = None
        self._close_sent = False
        self._cut_timer: asyncio.TimerHandle | None = None
        self._drain_waiters = Waiters()
        #: The code of the server's close frame; None if it never sent one.
        self.close_code: int | None = None
        #: Why we cut the connection (a protocol violation), if we did.
        self.error: str | None = None
        #: What a message callback raised; the connection was cut for it.
        self.failure: BaseException | None = None

    async def upgrade(self, address: str, port: int, host: str, path: str,
                      user_agent: str) -> None:
        """Connect and ask for WebSocket; raises if refused (``connect`` bounds the time)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: self, address, port)
        transport.write(wsp.upgrade_request(host, path, self._key, user_agent))
        # Shielded: a timeout must not cancel what connection_lost settles later.
        refused = await asyncio.shield(self._upgraded)
        if refused is not None:
            raise ConnectionError(refused)

    # Session side ------------------------------------------------------------

    def start(self, on_message: Callable[[str | bytes], None],
              on_dropped: Callable[[str], None]) -> None:
        """Deliver messages from now on (those that came with the upgrade first)."""
        self._on_message, self._on_dropped = on_message, on_dropped
        early, self._early = self._early, b""
        if early:
            self._receive(early)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def write_text(self, text: str) -> None:
        self._send(wsp.OP_TEXT, text.encode("utf-8"))

    def drained(self) -> asyncio.Future[None]:
        """Done when everything written so far has left this host (or the socket is gone)."""
        transport = self._transport
        return self._drain_waiters.wait(transport is None or self._closed.done()
                                        or not transport.get_write_buffer_size())

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; the socket is cut if the device does not answer."""
        transport = self._transport
        if transport is None or not self._can_send():
            return
        self._send(wsp.OP_CLOSE, code.to_bytes(2, "big"))
        self._cut_timer = asyncio.get_running_loop().call_later(CLOSE_WAIT_S, transport.abort)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def closed_within(self, timeout: float) -> bool:
        """Whether the connection ended within ``timeout`` seconds."""
        done, _ = await asyncio.wait({self._closed}, timeout=timeout)
        return bool(done)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    # asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=0)  # resume_writing means "all sent"

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            data = self._take_upgrade(data)
            if not data:
                return
        if self._on_message is None:
            self._early += data
        else:
            self._receive(data)

    def eof_received(self) -> bool:
        return False

    def resume_writing(self) -> None:
        self._drain_waiters.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._cut_timer is not None:
            self._cut_timer.cancel()
        if not self._upgraded.done():
            self._upgraded.set_result("closed during the upgrade")
        self._drain_waiters.wake()
        if not self._closed.done():
            self._closed.set_result(None)

    # Internals -------------------------------------------------------------------

    def _take_upgrade(self, data: bytes) -> bytes:
        """Collect the upgrade answer; what follows it in ``data`` is the first frames."""
        assert self._head is not None and self._transport is not None
        self._head += data
        try:
            end = wsp.parse_upgrade_response(bytes(self._head), self._key)
        except wsp.HandshakeError as exc:
            self._upgraded.set_result(str(exc))
            self._transport.abort()
            return b""
        if end is None:
            return b""
        rest, self._head = bytes(self._head[end:]), None
        # No frame is read until the session ``start``s: it first says the link is up.
        self._transport.pause_reading()
        self._upgraded.set_result(None)
        return rest

    def _receive(self, data: bytes) -> None:
        try:
            messages = self._reader.feed(data)
        except wsp.ProtocolError as exc:
            self._cut(str(exc))
            return
        for opcode, payload in messages:
            if opcode == wsp.OP_TEXT:
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    self._drop("a text message that is not UTF-8")
                else:
                    self._deliver(text)
            elif opcode == wsp.OP_BINARY:
                self._deliver(payload)
            elif opcode == wsp.OVERSIZED:
                self._drop("a message over %d KiB, skipped" % (self._reader.max_message // 1024))
            elif opcode == wsp.OP_PING and self._can_send():
                self._send(wsp.OP_PONG, payload)
            elif opcode == wsp.OP_CLOSE:
                self._answer_close(payload)
                return
            if self._transport is None or self._transport.is_closing():
                return

    def _deliver(self, message: str | bytes) -> None:
        assert self._on_message is not None
        self._call(self._on_message, message)

    def _drop(self, reason: str) -> None:
        assert self._on_dropped is not None
        self._call(self._on_dropped, reason)

    def _call(self, callback: Callable[[Any], None], argument: Any) -> None:
        try:
            callback(argument)
        except Exception as exc:  # noqa: BLE001 - handed to the session, which fails
            self.failure = exc
            self._cut("the message handler failed")

    def _answer_close(self, payload: bytes) -> None:
        self.close_code = wsp.close_code(payload)
        if not self._close_sent:
            code = self.close_code if self.close_code not in (1005, 1006, 1015) else 1000
            self._send(wsp.OP_CLOSE, code.to_bytes(2, "big"))
        if self._transport is not None:
            self._transport.close()  # after what is queued, our close answer included

    def _can_send(self) -> bool:
        transport = self._transport
        return not (self._close_sent or transport is None or transport.is_closing())

    def _send(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is None or not self._can_send():
            raise ConnectionClosed("the connection is closed")
        transport.write(wsp.encode_frame(opcode, payload, os.urandom(4)))
        if opcode == wsp.OP_CLOSE:
            self._close_sent = True

    def _cut(self, error: str) -> None:
        self.error = error
        self.abort()


async def connect(address: str, port: int, path: str, timeout: float, user_agent: str,
                  max_message: int) -> WebSocketClient:
    """An upgraded connection to ``address`` within ``timeout``, or an exception.

    Whatever stage a connection given up on reached (timeout or cancellation),
    its socket is closed before this returns.
    """
    client = WebSocketClient(wsp.new_key(), max_message)
    host = "[%s]:%d" % (address, port) if ":" in address else "%s:%d" % (address, port)
    try:
        await asyncio.wait_for(client.upgrade(address, port, host, path, user_agent), timeout)
    except BaseException:
        client.abort()
        raise
    return client
