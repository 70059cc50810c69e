"""What every device link (WebSocket, native MQTT, ESPHome MQTT) offers the controller.

A link owns its sockets and its firmware's encoding; it reports decoded
``DeviceReport``s and link changes to a ``LinkListener`` and turns a target
into device writes.  The controller above it knows nothing about transports.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .model import DeviceReport
from .typing_compat import Protocol

LINK_CONNECTING = "connecting"
LINK_CONNECTED = "connected"
LINK_DISCONNECTED = "disconnected"
LINK_CLOSED = "closed"
#: Sent with every connection the bridge opens, so a device (or the simulator) can
#: tell the bridge's sessions from its web page's and its app's.
USER_AGENT = "moonraker-panda-breath"

#: Default ``silence_timeout``: a link that heard nothing this long counts the
#: device as gone.  Over 2.4 GHz Wi-Fi an 8 s stall plus one 2 s frame period
#: (plus jitter) reaches 10 s and made 10 s reconnect a live link; 12 s leaves
#: those alone and only the long stalls (20 s) reconnect (docs/Developing.md).
SILENCE_TIMEOUT_S = 12.0

#: The same problem is logged at most once per this many seconds, with a count.
LOG_INTERVAL_S = 60.0


def clock(wall_time: float) -> str:
    """A wall-clock time as notices, warnings and refusals show it (local, to the second)."""
    return time.strftime("%H:%M:%S", time.localtime(wall_time))


class LinkListener(Protocol):
    def on_link_up(self) -> None:
        """A (re)connected device: resend the desired state."""

    def on_link_down(self, reason: str) -> None:
        """The device can no longer be reached; nothing sent now arrives."""

    def on_report(self, report: DeviceReport) -> None:
        """The device said something usable."""

    def on_link_changed(self) -> None:
        """Counters or link details changed (for the status API)."""

    def refused_target(self, target: float, reason: str) -> None:
        """The device refused a heat command of ours (firmwares that answer commands)."""

    def refused_request(self, reason: str) -> None:
        """The device refused or never answered a request of the user's (clear fault, filter)."""


class DeviceLink(abc.ABC):
    """Reconnecting session with one device; see the module docstring."""

    #: Writes of the desired state the link repeated on its own schedule (the
    #: stock WebSocket, whose device reports no settings); 0 on the others.
    reasserts = 0

    def __init__(self, listener: LinkListener, name: str) -> None:
        self.listener = listener
        self.name = name
        self.state = LINK_DISCONNECTED
        self.connections = 0
        self.reconnects = 0
        self.frames_received = 0
        self.frames_dropped = 0
        #: Messages written to the device (the cost of keeping it in Klipper's state).
        self.frames_sent = 0
        self.fields_rejected = 0
        self.last_error: str | None = None
        self.last_frame_time: float | None = None
        self.connected_since: float | None = None
        #: Wall-clock time since which the device has been out of reach
        #: (Moonraker's start until the first connection); None while connected.
        self.down_since: float | None = time.time()
        self._pending_writes: list[asyncio.Future[Any]] = []
        #: message -> (last time logged, occurrences since then)
        self._logged: dict[str, tuple[float, int]] = {}

    @abc.abstractmethod
    async def run(self) -> None:
        """Connect, read and reconnect until ``close()``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop for good, after ``flush`` has had its chance."""

    @abc.abstractmethod
    def send_target(self, target: float) -> bool:
        """Write, in full, what puts the device at ``target`` (0 = off); False if down.

        Nothing is skipped because this connection carried it before: the
        device may have changed since (front panel, web UI, another client).
        """

    #: Whether the device arbitrates between controllers itself (DragonBreath):
    #: then a change made by someone else is respected, not undone, until
    #: Klipper's next target; ``own_source`` is how the device names us.
    arbitrates = False
    own_source: str | None = None
    #: The lowest heat target the firmware takes (DragonBreath refuses lower
    #: ones); None: any.  Klipper's heater refuses lower targets at the G-code.
    min_target: float | None = None

    #: Whether the firmware has a drying cycle the bridge can start.
    supports_drying = False

    def send_drying(self, temperature: int, hours: int) -> bool:
        """Start the device's own drying cycle; False if the link is down or it has none."""
        return False

    #: Whether the firmware can run its blower alone (filtration) on request.
    supports_filter = False

    def send_filter(self, on: bool) -> bool:
        """Switch filtration on or off; False if the link is down or the firmware has none."""
        return False

    def clear_fault(self) -> bool:
        """Ask the device to clear a latched fault; False where faults clear by themselves."""
        return False

    def _session_ended(self, reason: str, closing: bool) -> None:
        """A session is over: say why (unless we closed it) and tell the listener."""
        reason = "closing" if closing else reason
        self.last_error = None if closing else reason
        logging.info("panda_breath [%s]: disconnected (%s)", self.name, reason)
        self._set_state(LINK_DISCONNECTED)
        self.listener.on_link_down(reason)

    def abandon(self, reason: str) -> None:
        """The task running ``run()`` died: forget the session so ``run()`` can start over."""
        was_up = self.state == LINK_CONNECTED
        self.last_error = reason
        self._set_state(LINK_DISCONNECTED)
        if was_up:
            self.listener.on_link_down(reason)

    async def flush(self, timeout: float) -> bool:
        """Wait until the writes made so far have left this host."""
        pending = [f for f in self._pending_writes if not f.done()]
        if not pending:
            return True
        _done, not_done = await asyncio.wait(pending, timeout=timeout)
        return not not_done

    def is_up(self) -> bool:
        return self.state == LINK_CONNECTED

    def last_frame_age(self) -> float | None:
        if self.last_frame_time is None:
            return None
        return max(0.0, time.monotonic() - self.last_frame_time)

    def describe(self) -> dict[str, Any]:
        """Link facts for the status API; never secrets, never raw frames."""
        age = self.last_frame_age()
        return {
            "link": self.state,
            "reconnects": self.reconnects,
            "frames_received": self.frames_received,
            "frames_dropped": self.frames_dropped,
            "frames_sent": self.frames_sent,
            "reasserts": self.reasserts,
            "fields_rejected": self.fields_rejected,
            "last_frame_age": None if age is None else round(age, 2),
            "last_error": self.last_error,
            "unreachable_since": self.down_since,
        }

    # Helpers for subclasses -------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self.state:
            if state == LINK_CONNECTED:
                self.down_since = None
            elif self.state == LINK_CONNECTED:
                self.down_since = time.time()
            self.state = state
            self.listener.on_link_changed()

    def _note_frame(self) -> None:
        self.frames_received += 1
        self.last_frame_time = time.monotonic()

    def _note_connected(self) -> None:
        """A new session: count it."""
        self.connections += 1
        self.reconnects = self.connections - 1

    def _drop_frame(self, reason: str) -> None:
        """Count a device message that could not be used; never log its content."""
        self.frames_dropped += 1
        self._log_limited("dropped a device message: %s" % reason)
        self.listener.on_link_changed()

    def _pass_on(self, report: DeviceReport) -> None:
        """Hand a decoded report to the listener; a failure there drops the frame.

        A bug in handling one message must not end the session that every
        OFF travels through.
        """
        try:
            self.listener.on_report(report)
        except Exception:  # noqa: BLE001 - counted, logged, the session goes on
            self.frames_dropped += 1
            if self._log_limited("internal error while handling a device message"):
                logging.exception("panda_breath [%s]: handling a device message failed",
                                  self.name)
            self.listener.on_link_changed()

    def _track_write(
        self, write: Awaitable[Any], on_error: Callable[[BaseException], None] | None = None
    ) -> None:
        """Keep a write's future for ``flush``; report its failure to ``on_error``."""
        future = asyncio.ensure_future(write)

        def done(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()  # also marks it retrieved
            if exc is not None and on_error is not None:
                on_error(exc)

        future.add_done_callback(done)
        self._pending_writes = [f for f in self._pending_writes if not f.done()]
        self._pending_writes.append(future)

    def _log_limited(self, message: str) -> bool:
        """Log each distinct problem at most once per ``LOG_INTERVAL_S``; True if logged.

        A device or broker that sends garbage many times a second must not
        flood moonraker.log; the count of the ones not logged goes with the next line.
        """
        now = time.monotonic()
        last, suppressed = self._logged.get(message, (None, 0))
        if last is not None and now - last < LOG_INTERVAL_S:
            self._logged[message] = (last, suppressed + 1)
            return False
        if len(self._logged) > 64:
            self._logged.clear()  # bounded, whatever the messages say
        self._logged[message] = (now, 0)
        extra = " (%d more since last logged)" % suppressed if suppressed else ""
        logging.info("panda_breath [%s]: %s%s", self.name, message, extra)
        return True
