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
from typing import Any, Protocol

from .model import DeviceReport

LINK_CONNECTING = "connecting"
LINK_CONNECTED = "connected"
LINK_DISCONNECTED = "disconnected"
LINK_CLOSED = "closed"


class LinkListener(Protocol):
    def on_link_up(self) -> None:
        """A (re)connected device: resend the desired state."""

    def on_link_down(self, reason: str) -> None:
        """The device can no longer be reached; nothing sent now arrives."""

    def on_report(self, report: DeviceReport) -> None:
        """The device said something usable."""

    def on_link_changed(self) -> None:
        """Counters or link details changed (for the status API)."""


class DeviceLink(abc.ABC):
    """Reconnecting session with one device; see the module docstring."""

    def __init__(self, listener: LinkListener, name: str) -> None:
        self.listener = listener
        self.name = name
        self.state = LINK_DISCONNECTED
        self.connections = 0
        self.reconnects = 0
        self.frames_received = 0
        self.frames_dropped = 0
        self.fields_rejected = 0
        self.last_error: str | None = None
        self.last_frame_time: float | None = None
        self.connected_since: float | None = None
        self._pending_writes: list[asyncio.Future[Any]] = []
        self._logged: set[str] = set()

    @abc.abstractmethod
    async def run(self) -> None:
        """Connect, read and reconnect until ``close()``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop for good, after ``flush`` has had its chance."""

    @abc.abstractmethod
    def send_target(self, target: float, resend_all: bool) -> bool:
        """Write what puts the device at ``target`` (0 = off); False if the link is down.

        With ``resend_all`` every write is made even if this connection already
        carried it (after a reconnect, or when the device contradicts us).
        """

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
            "fields_rejected": self.fields_rejected,
            "last_frame_age": None if age is None else round(age, 2),
            "last_error": self.last_error,
        }

    # Helpers for subclasses -------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.listener.on_link_changed()

    def _note_frame(self) -> None:
        self.frames_received += 1
        self.last_frame_time = time.monotonic()

    def _note_connected(self) -> None:
        """A new session: count it, and let its problems be logged afresh."""
        self.connections += 1
        self.reconnects = self.connections - 1
        self._logged.clear()

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

    def _log_once(self, message: str) -> None:
        """Log each distinct problem once per session, not once per retry or message."""
        if message not in self._logged:
            self._logged.add(message)
            logging.info("panda_breath [%s]: %s", self.name, message)
