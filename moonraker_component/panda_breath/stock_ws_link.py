"""One persistent WebSocket session with a stock-firmware Panda Breath.

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
from .websocket_client import ConnectionClosed, WebSocketClient, connect

if TYPE_CHECKING:
    from .link import LinkListener  # annotations only

# Our own frames are tiny; the device's snapshot is a few KiB.  Anything larger
# is dropped by the decoder; absurd sizes are skipped unread.
_MAX_MESSAGE_SIZE = 1024 * 1024
#: A connection that lasted this long was healthy: the next drop retries quickly.
#: Shorter ones (a device that accepts and closes at once) keep backing off.
STABLE_CONNECTION_S = 2.0
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
        self._ws: WebSocketClient | None = None
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
                    # A reset or a protocol error: the device may be fine,
                    # so try again at once (the backoff takes over if this
                    # repeats before a connection was stable).
                    self.backoff.attempts = 1
                    continue
            if self._closing:
                break
            self._set_state(LINK_DISCONNECTED)
            await asyncio.sleep(self.backoff.next_delay())
        self._set_state(LINK_CLOSED)

    async def _connect(self) -> WebSocketClient:
        self.address = await resolve_host(self.host, self.connect_timeout)
        return await connect(self.address, self.port, "/ws", self.connect_timeout,
                             USER_AGENT, _MAX_MESSAGE_SIZE)

    async def _serve(self, ws: WebSocketClient) -> bool:
        """Take frames until the connection ends; True if it ended without a close frame.

        Frames reach ``_handle_message`` as they are read; this task only
        wakes when the connection ends or to check for silence.
        """
        self._ws = ws
        self.connected_since = started = time.monotonic()
        self.last_error = None
        self._note_connected()
        logging.info("panda_breath [%s]: connected to %s:%d", self.name, self.address, self.port)
        reason = "closed by device"
        abrupt = gone = False
        try:
            self._set_state(LINK_CONNECTED)
            self.listener.on_link_up()
            ws.start(self._handle_message, self._drop_message)
            while not self._closing:
                heard = max(started, self.last_frame_time or started)
                quiet_left = heard + self.silence_timeout - time.monotonic()
                if quiet_left <= 0:
                    reason = "device silent for %.0f s" % self.silence_timeout
                    break
                if await ws.closed_within(quiet_left):
                    gone = True
                    if ws.failure is not None:
                        reason = "internal error while handling a frame"
                        raise ws.failure
                    if ws.close_code is None:
                        abrupt = True
                        self.abrupt_closes += 1
                        reason = "connection lost (%s)" % (ws.error or "reset")
                    break
        finally:
            self._ws = None
            self._forget_writes()
            ws.close(1000 if self._closing else 1001)
            self._session_ended(reason, self._closing)
            if not (self._closing or gone):
                # On a lagging link our close may reach the device after a new
                # connection would: it would hold two sessions of ours meanwhile.
                await ws.wait_closed()
        return abrupt

    def _drop_message(self, reason: str) -> None:
        self._note_frame()
        self._drop_frame(reason)

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
                ws.write_text(stock_ws.encode_settings(key, value))
            except ConnectionClosed:
                return False
            self.frames_sent += 1
        # A failed write surfaces as a closed connection in the session loop.
        self._track_write(ws.drained())
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc)
    return text or type(exc).__name__
