"""One HTTP session at a time with a DragonBreath device, and the reconnects between them.

A session reads ``/api/v2/info`` (is it DragonBreath API v2? which boot?),
then ``/api/v2/state``, reports the link up, and follows the device through
its event stream (``dragonbreath_stream``).  Only when nothing at all has been
heard for ``silence_timeout`` is the device counted as gone; the next session
starts after the usual backoff.  Heat is held under the device's lease
(``dragonbreath_lease``), written by the command writer
(``dragonbreath_commands``).  A new ``boot_id`` is a reboot: the lease is
gone, the revision restarts, and the listener hears ``on_link_up`` again so
the desired state is resent.

Names are resolved by ``resolve.resolve_host``; the control token stays in
``dragonbreath_http``'s request headers, never in a log line, an error text
or ``describe()``; response bodies are decoded, never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from . import dragonbreath as db
from .backoff import Backoff
from .dragonbreath_commands import CommandWriter
from .dragonbreath_http import REQUEST_TIMEOUT_S, DragonBreathHttp
from .dragonbreath_lease import Lease
from .dragonbreath_session import Session
from .dragonbreath_stream import EventStream
from .link import (
    LINK_CLOSED,
    LINK_CONNECTED,
    LINK_CONNECTING,
    LINK_DISCONNECTED,
    SILENCE_TIMEOUT_S,
    DeviceLink,
)
from .model import DeviceReport, FrameError
from .resolve import resolve_host

if TYPE_CHECKING:
    from .link import LinkListener  # annotations only

#: A session that lasted this long resets the reconnect backoff.
STABLE_SESSION_S = 2.0


class DragonBreathLink(DeviceLink):
    """``firmware: dragonbreath``; see the module docstring."""

    supports_drying = True
    supports_filter = True
    arbitrates = True
    own_source = db.ACTOR_KIND
    min_target = float(db.MIN_TARGET_C)
    listener: LinkListener

    def __init__(
        self,
        listener: LinkListener,
        name: str,
        host: str,
        port: int = 80,
        token: str = db.DEFAULT_TOKEN,
        connect_timeout: float = 5.0,
        silence_timeout: float = SILENCE_TIMEOUT_S,
        backoff: Backoff | None = None,
        lease_timeout: float | None = None,
    ) -> None:
        super().__init__(listener, name)
        self.host = host
        self.port = port
        self.http = DragonBreathHttp(token, connect_timeout)
        self.connect_timeout = connect_timeout
        self.silence_timeout = silence_timeout
        self.backoff = backoff or Backoff()
        self.lease = Lease(self, lease_timeout)
        self.commands = CommandWriter(self, self.lease)
        self.stream = EventStream(self, self.http)
        #: This bridge's ``actor.id``; the lease owner when we hold it.
        self.actor_id = db.new_actor_id()
        self.address: str | None = None
        self.info: db.DeviceInfo | None = None
        self.boot_id: str | None = None
        self.revision: int | None = None
        self.source: str | None = None
        self.firmware_version: str | None = None
        self.reboots_seen = 0
        self.last_state: DeviceReport | None = None
        self.session: Session | None = None
        self.closing = False
        self._last_heard = 0.0

    # Session loop ------------------------------------------------------------

    async def run(self) -> None:
        self.http.open()
        try:
            while not self.closing:
                self._set_state(LINK_CONNECTING)
                try:
                    # Resolution plus two requests, plus setting comms_ms.
                    report = await asyncio.wait_for(
                        self._open_session(), self.connect_timeout + 3 * REQUEST_TIMEOUT_S)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every failure means "retry later"
                    self.note_error("connect failed: %s" % self.http.describe_exc(exc))
                else:
                    started = time.monotonic()
                    await self._serve(report)
                    if time.monotonic() - started >= STABLE_SESSION_S:
                        self.backoff.reset()
                if self.closing:
                    break
                self._set_state(LINK_DISCONNECTED)
                await asyncio.sleep(self.backoff.next_delay())
        finally:
            self._set_state(LINK_CLOSED)
            self.http.close()

    async def _open_session(self) -> DeviceReport:
        self.address = await resolve_host(self.host, self.connect_timeout)
        self.http.point_at(self.address, self.port)
        info = db.decode_info(await self.http.get(db.PATH_INFO))
        report = db.decode_state(await self.http.get(db.PATH_STATE), self.actor_id)
        self.info = info
        self.firmware_version = info.firmware
        await self.lease.apply_timeout(report.comms_ms)
        return report

    async def _serve(self, first: DeviceReport) -> None:
        session = Session()
        self.session = session
        self.connected_since = time.monotonic()
        self.last_error = None
        self._note_connected()
        self._last_heard = time.monotonic()
        # A new session is a new start: whatever the old one believed is void.
        self.boot_id = first.boot_id or (self.info.boot_id if self.info else None)
        self.revision = None
        self.commands.off_acked_revision = None
        self.lease.drop(None)
        logging.info("panda_breath [%s]: connected to DragonBreath %s at %s:%d (firmware %s)",
                     self.name, self.info.device_id if self.info else "?", self.address,
                     self.port, self.firmware_version or "?")
        reason = "closed"
        try:
            self._set_state(LINK_CONNECTED)
            self.listener.on_link_up()
            self._note_frame()
            self.absorb(first)
            session.spawn(self.lease.heartbeats(session), "heartbeats")
            session.spawn(self.commands.run(session), "the command writer")
            reason = await self.stream.follow(session)
        finally:
            session.end()
            self.session = None
            self.lease.drop(None)
            self._session_ended(reason, self.closing)

    async def close(self) -> None:
        self.closing = True
        self.stream.abort()

    def lost(self) -> bool:
        """Nothing at all heard from the device for ``silence_timeout``."""
        return time.monotonic() - self._last_heard > self.silence_timeout

    # What the device says ------------------------------------------------------

    def take(self, report: DeviceReport) -> None:
        """A snapshot just heard from the device."""
        self._last_heard = time.monotonic()
        self.absorb(report)

    def absorb(self, report: DeviceReport) -> None:
        """Take one snapshot: reboot and ordering checks, lease facts, then the listener."""
        rebooted = False
        if report.boot_id is not None:
            if self.boot_id is not None and report.boot_id != self.boot_id:
                rebooted = True
                self._on_reboot()
            self.boot_id = report.boot_id
        if (
            not rebooted and report.revision is not None and self.revision is not None
            and report.revision < self.revision
        ):
            return  # an older snapshot overtaken by a newer one
        if report.revision is not None:
            self.revision = report.revision
        if report.source is not None:
            self.source = report.source
        if report.firmware_version is not None:
            self.firmware_version = report.firmware_version
        desired = self.commands.desired
        self.lease.observe(report, off_wanted=desired is not None and desired <= 0)
        self.last_state = report
        if report.rejected_fields:
            self.fields_rejected += len(report.rejected_fields)
            self._log_limited("ignored malformed fields: %s" % ", ".join(report.rejected_fields))
        self._pass_on(report)

    def _on_reboot(self) -> None:
        self.reboots_seen += 1
        self.revision = None
        self.commands.off_acked_revision = None
        self.lease.on_reboot()
        logging.info("panda_breath [%s]: the device rebooted (new boot id)", self.name)
        # The controller resends the desired state once it has this snapshot.
        self.listener.on_link_up()

    async def refresh_state(self) -> None:
        """Re-read the state now (after a conflict or a lost lease)."""
        await self.stream.poll_once()

    async def post(
        self, path: str, body: str, what: str, form: bool = False
    ) -> db.CommandResult | None:
        """POST and decode; a result, or None (already noted or counted)."""
        if self.http.closed:
            return None
        self.frames_sent += 1
        try:
            response = await self.http.post(path, body, form)
        except ConnectionError as exc:
            self.note_error("%s failed: %s" % (what, exc))
            return None
        try:
            result = db.decode_response(response.code, response.body, self.actor_id)
        except FrameError as exc:
            self._drop_frame("%s response: %s" % (what, exc))
            return None
        self._last_heard = time.monotonic()
        return result

    # Intents -------------------------------------------------------------------

    def _connected(self) -> Session | None:
        """The session to act in; None: nothing sent now would arrive."""
        return self.session if self.state == LINK_CONNECTED else None

    def send_target(self, target: float) -> bool:
        session = self._connected()
        if session is not None:
            self.commands.target(target, session)
        return session is not None

    def send_drying(self, temperature: int, hours: int) -> bool:
        if self._connected() is None:
            return False
        self.commands.drying(temperature, hours)
        return True

    def send_filter(self, on: bool) -> bool:
        """Filtration on or off: a plain request, like the device's own button.

        Not held as desired state: a reboot, a fault or another controller may
        switch the blower off, and the status then says so.
        """
        if self._connected() is None:
            return False
        self.commands.filter(on)
        return True

    def clear_fault(self) -> bool:
        """Ask the device to clear a latched fault (an explicit user action only).

        The device is then off and needs a fresh ``power_on``; the controller
        resends the desired state when the report shows the fault gone.
        """
        if self._connected() is None:
            return False
        self.commands.clear_fault()
        return True

    def write(self, command: Awaitable[Any]) -> None:
        """Commands count as writes: ``flush()`` waits for them (an OFF at exit)."""
        self._track_write(command)

    def note_error(self, message: str) -> None:
        message = self.http.redact(message)
        self.last_error = message
        self._log_limited(message)
        self.listener.on_link_changed()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(self.lease.describe())
        info.update({
            "address": self.address,
            "firmware_version": self.firmware_version,
            "device_id": self.info.device_id if self.info else None,
            "stream": self.stream.state,
            "stream_refusals": self.stream.refusals,
            "source": self.source,
            "boot_id": self.boot_id,
            "revision": self.revision,
            "offs_skipped": self.commands.offs_skipped,
            "revision_conflicts": self.commands.revision_conflicts,
            "reboots_seen": self.reboots_seen,
            "last_refusal": self.commands.last_refusal,
        })
        return info
