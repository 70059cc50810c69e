"""One persistent tornado WebSocket session with a stock-firmware Panda Breath.

The device sends a snapshot right after the upgrade and small temperature
frames every few seconds; it never acknowledges writes and sometimes goes
quiet for more than 15 s without closing the socket.  So: a quiet link is
closed and reopened (a new connection brings a new snapshot), reconnects are
paced by ``Backoff``, and only one connection exists at a time (the device
serves at most seven clients and degrades under connection churn).

Since the device reports no settings while connected, a write is taken as
done (its ``assumed`` echo goes to the listener) and the last one is written
again every ``reassert_interval`` seconds: a change at the device stands at
most that long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from tornado import websocket as tornado_ws
from tornado.httpclient import HTTPRequest

from . import stock_ws
from .backoff import Backoff
from .link import (
    LINK_CLOSED,
    LINK_CONNECTED,
    LINK_CONNECTING,
    LINK_DISCONNECTED,
    USER_AGENT,
    DeviceLink,
)
from .model import MODE_DRYING, MODE_ON, DeviceReport, FrameError, device_degrees
from .resolve import resolve_host

if TYPE_CHECKING:
    from .link import LinkListener  # annotations only

# Our own frames are tiny; the device's snapshot is a few KiB.  Anything larger
# is dropped by the decoder, and only absurd sizes end the connection.
_MAX_MESSAGE_SIZE = 1024 * 1024
#: A connection that lasted this long was healthy: the next drop retries quickly.
#: Shorter ones (a device that accepts and closes at once) keep backing off.
STABLE_CONNECTION_S = 2.0
#: tornado aborts a connection whose close is not answered within 5 s.
CLOSE_WAIT_S = 5.5
#: Default period of the idempotent re-assert (``reassert_interval``).
REASSERT_INTERVAL_S = 20.0


class StockWebSocketLink(DeviceLink):
    def __init__(
        self,
        listener: LinkListener,
        name: str,
        host: str,
        port: int,
        connect_timeout: float,
        silence_timeout: float,
        backoff: Backoff,
        reassert_interval: float = REASSERT_INTERVAL_S,
    ) -> None:
        super().__init__(listener, name)
        self.host, self.port, self.connect_timeout = host, port, connect_timeout
        self.silence_timeout, self.backoff = silence_timeout, backoff
        self.address: str | None = None
        self.version = stock_ws.DEFAULT_VERSION
        self.version_known = False
        self._ws: tornado_ws.WebSocketClientConnection | None = None
        self._closing = False
        #: Connections that ended without a close frame from the device.
        self.abrupt_closes = 0
        self.reassert_interval = reassert_interval
        self.reasserts = 0
        #: The last target written on this connection, which the re-assert repeats.
        self._desired: float | None = None
        #: When the drying cycle we started is over (monotonic); None if none runs.
        self._drying_until: float | None = None
        self._reassert_timer: asyncio.TimerHandle | None = None

    # Session loop ------------------------------------------------------------

    async def run(self) -> None:
        while not self._closing:
            self._set_state(LINK_CONNECTING)
            try:
                ws = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means "retry later"
                self._note_error("connect failed: %s" % (_describe(exc),))
            else:
                started = time.monotonic()
                abrupt = await self._serve(ws)
                if time.monotonic() - started >= STABLE_CONNECTION_S:
                    self.backoff.reset()
                if abrupt and not self._closing and self.backoff.attempts == 0:
                    # A reset, or our client refused a frame over
                    # _MAX_MESSAGE_SIZE and closed: the device may be fine,
                    # so try again at once (the backoff takes over if this
                    # repeats before a connection was stable).
                    self.backoff.attempts = 1
                    continue
            if self._closing:
                break
            self._set_state(LINK_DISCONNECTED)
            await asyncio.sleep(self.backoff.next_delay())
        self._set_state(LINK_CLOSED)

    async def _connect(self) -> tornado_ws.WebSocketClientConnection:
        self.address = await resolve_host(self.host, self.connect_timeout)
        host = "[%s]" % self.address if ":" in self.address else self.address
        url = "ws://%s:%d/ws" % (host, self.port)
        return await open_websocket(url, self.connect_timeout)

    async def _serve(self, ws: tornado_ws.WebSocketClientConnection) -> bool:
        """Read until the connection ends; True if it ended without a close frame."""
        self._ws = ws
        self.connected_since = time.monotonic()
        self.last_error = None
        self._note_connected()
        logging.info("panda_breath [%s]: connected to %s:%d", self.name, self.address, self.port)
        reason = "closed by device"
        abrupt = gone = False
        try:
            self._set_state(LINK_CONNECTED)
            self.listener.on_link_up()
            while not self._closing:
                try:
                    message = await asyncio.wait_for(ws.read_message(), self.silence_timeout)
                except asyncio.TimeoutError:
                    reason = "device silent for %.0f s" % self.silence_timeout
                    break
                if message is None:
                    gone = True
                    if ws.close_code is None:
                        abrupt = True
                        self.abrupt_closes += 1
                        reason = "connection lost (reset, or a frame over %d KiB refused)" % (
                            _MAX_MESSAGE_SIZE // 1024)
                    break
                self._handle_message(message)
        finally:
            self._ws = None
            self._forget_writes()
            ws.close(1000 if self._closing else 1001)
            self._session_ended(reason, self._closing)
            if not (self._closing or gone):
                await _closed(ws)
        return abrupt

    def _handle_message(self, message: str | bytes) -> None:
        self._note_frame()
        try:
            report = stock_ws.decode_frame(message, self.version)
        except FrameError as exc:
            # The frame itself is never logged: the snapshot carries Wi-Fi passwords.
            self._drop_frame(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not end the session
            self._drop_frame("undecodable (%s)" % type(exc).__name__)
            return
        if report.rejected_fields:
            self.fields_rejected += len(report.rejected_fields)
            self._log_limited("ignored malformed fields: %s" % ", ".join(report.rejected_fields))
        if report.firmware_version is not None:
            parsed = stock_ws.parse_version(report.firmware_version)
            if parsed is not None:
                self.version = parsed
                self.version_known = True
        self._pass_on(report)

    # Writes ------------------------------------------------------------------

    supports_drying = True

    def send_target(self, target: float) -> bool:
        if not self._write(stock_ws.command_sequence(target, self.version)):
            return False
        self._desired = target
        self._drying_until = None
        if target > 0:
            self._pass_on(DeviceReport(work_on=True, mode=MODE_ON, assumed=True,
                                       device_target=float(device_degrees(target))))
        else:
            self._pass_on(DeviceReport(work_on=False, assumed=True))  # its set point stays
        self._schedule_reassert()
        return True

    def send_drying(self, temperature: int, hours: int) -> bool:
        if not self._write(stock_ws.drying_sequence(temperature, hours, self.version)):
            return False
        self._drying_until = time.monotonic() + hours * 3600.0
        self._pass_on(DeviceReport(work_on=True, mode=MODE_DRYING, assumed=True))
        self._schedule_reassert()
        return True

    def _schedule_reassert(self) -> None:
        if self._reassert_timer is not None:
            self._reassert_timer.cancel()
        self._reassert_timer = asyncio.get_running_loop().call_later(
            self.reassert_interval, self._reassert
        )

    def _reassert(self) -> None:
        """The device may have been changed where we cannot see it: write it again."""
        self._reassert_timer = None
        if self.state != LINK_CONNECTED:
            return
        target = self._desired
        if self._drying_until is not None:
            # Re-sending the drying start would restart its countdown, and the
            # device shows no end: the cycle is over when its time is, and off.
            if time.monotonic() < self._drying_until:
                self._schedule_reassert()
                return
            self._drying_until = None
            self._pass_on(DeviceReport(drying=False))
            target = 0.0
        if target is not None:
            self.reasserts += 1
            self.send_target(target)

    def _forget_writes(self) -> None:
        """The connection ended: the next one is synced afresh, nothing is repeated."""
        if self._reassert_timer is not None:
            self._reassert_timer.cancel()
            self._reassert_timer = None
        self._desired = None
        self._drying_until = None

    def _write(self, writes: list[tuple[str, Any]]) -> bool:
        """One frame per key, in order; False if the connection is not open."""
        ws = self._ws
        if ws is None or self.state != LINK_CONNECTED:
            return False
        for key, value in writes:
            try:
                future = ws.write_message(stock_ws.encode_settings(key, value))
            except tornado_ws.WebSocketClosedError:
                return False
            self.frames_sent += 1
            # A failed write surfaces as a closed connection in the read loop.
            self._track_write(future)
        return True

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            ws.close(1000)

    # Logging -------------------------------------------------------------------

    def _note_error(self, message: str) -> None:
        self.last_error = message
        self._log_limited(message)
        self.listener.on_link_changed()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["address"] = self.address
        info["abrupt_closes"] = self.abrupt_closes
        info["firmware_version"] = (
            "V%d.%d.%d" % self.version if self.version_known else None
        )
        return info


async def open_websocket(url: str, timeout: float) -> tornado_ws.WebSocketClientConnection:
    """The upgrade within ``timeout``; a connection given up on is closed, never left open.

    On a stalling Wi-Fi link the device may accept an upgrade long after we
    stopped waiting: a forgotten connection would hold one of its few client
    slots.  tornado's own request timeout closes the socket of an unfinished
    upgrade, and an upgrade that finishes after a timeout or cancellation is
    closed the moment it does.
    """
    request = HTTPRequest(url, connect_timeout=timeout, request_timeout=timeout,
                          headers={"User-Agent": USER_AGENT})
    future = asyncio.ensure_future(
        tornado_ws.websocket_connect(request, max_message_size=_MAX_MESSAGE_SIZE))
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except BaseException:
        future.add_done_callback(_close_late)
        raise


async def _closed(ws: tornado_ws.WebSocketClientConnection) -> None:
    """Wait until the device answered our close (tornado gives up after 5 s).

    On a lagging link our close may reach the device after a new connection
    would: the device would hold two sessions of ours meanwhile.
    """
    deadline = time.monotonic() + CLOSE_WAIT_S
    try:
        while await asyncio.wait_for(ws.read_message(),
                                     max(0.01, deadline - time.monotonic())) is not None:
            pass
    except asyncio.TimeoutError:
        pass


def _close_late(future: asyncio.Future[tornado_ws.WebSocketClientConnection]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    future.result().close(1001)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc)
    return text or type(exc).__name__
