"""The DragonBreath control lease: taken by ``power_on``, kept by heartbeats.

Heartbeats renew the lease at a third of the device's ``config.comms_ms`` (at
most every 30 s), each timed from when the previous one was sent (one timer,
``next_beat``), so at the device no gap exceeds that plus a round trip.  If
they stop (Moonraker, this host or the network dies) the device switches
itself off and latches "controller lease expired": that watchdog, not our
OFF, is the real fail-safe, so it is fed and never defeated.
``lease_timeout`` sets the watchdog (``POST /settings``).  The lease id is
kept private: it never appears in a log line or the status.

ASSUMED: ``POST /settings`` takes ``comms_ms`` as an urlencoded body.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from . import dragonbreath as db
from .dragonbreath_session import Session, SessionLink
from .model import DeviceReport

#: How often a device whose comms_ms differs from ``lease_timeout`` is told again.
SETTINGS_RETRY_S = 30.0
#: A failed heartbeat is sent again this soon (at most a third of the interval).
BEAT_RETRY_S = 1.0


def next_beat(sent_at: float, retry_at: float | None, comms_ms: int | None) -> float:
    """When the next heartbeat is due: one interval after the last one *sent*.

    Timing from the send, not the answer, keeps a slow answer from pushing the
    next beat later; a retry (``retry_at``, after a failure) only ever comes
    sooner than the regular beat.
    """
    regular = sent_at + db.heartbeat_interval(comms_ms)
    return regular if retry_at is None else min(regular, retry_at)


class Lease:
    """Our lease on the device, its heartbeats and the watchdog's length."""

    def __init__(self, link: SessionLink, lease_timeout: float | None) -> None:
        self.link = link
        if lease_timeout is not None:
            db.comms_ms_query(lease_timeout)  # ValueError outside 10-300 s
        #: Seconds of the device's lease/watchdog to set (``config.comms_ms``);
        #: None leaves the device's own value.
        self.timeout = lease_timeout
        self._comms_ms: int | None = None
        #: We hold the lease and the device's state names our actor as its owner.
        self.owned = False
        self.heartbeats_sent = self.heartbeat_failures = self.acquired = self.losses = 0
        self._id: str | None = None
        self._revision = 0
        self._expires_at: float | None = None
        #: When the last heartbeat (or the power_on that took the lease) was sent.
        self._sent_at = 0.0
        self._retry_at: float | None = None
        self._rescheduled: asyncio.Event | None = None
        self._settings_sent_at = -SETTINGS_RETRY_S

    @property
    def held(self) -> bool:
        return self._id is not None

    @property
    def comms_ms(self) -> int | None:
        """The device's lease length as last reported (sets the heartbeat interval)."""
        return self._comms_ms

    @comms_ms.setter
    def comms_ms(self, value: int | None) -> None:
        if value != self._comms_ms:
            self._comms_ms = value
            self._reschedule()

    def _reschedule(self) -> None:
        if self._rescheduled is not None:
            self._rescheduled.set()

    def take(self, lease_id: str, revision: int) -> None:
        """``power_on`` gave us the lease; the device's state at ``revision`` shows it."""
        self._id = lease_id
        self._revision = revision
        self._sent_at = time.monotonic()
        self._retry_at = None
        self.acquired += 1
        self._reschedule()

    def drop(self, lost_reason: str | None) -> None:
        """Forget our lease; ``lost_reason`` when it was taken from us (reported)."""
        had = self._id is not None
        self._id = None
        self._expires_at = None
        self.owned = False
        if had and lost_reason is not None:
            self.losses += 1
            self.link._log_limited("lease lost: %s" % lost_reason)
            self.link.listener.on_link_changed()

    def on_reboot(self) -> None:
        """A reboot ends every lease (no loss to report) and may have lost ``lease_timeout``.

        It is applied again at once, not after the retry pause; until then the
        device's watchdog runs on its own (longer) default.
        """
        self.drop(None)
        self._settings_sent_at = -SETTINGS_RETRY_S

    def observe(self, report: DeviceReport, off_wanted: bool) -> None:
        """Lease facts of a snapshot: the watchdog's length and whether we still hold it."""
        if report.comms_ms is not None:
            self.comms_ms = report.comms_ms
            session = self.link.session
            if session is not None and self._settings_due(report.comms_ms):
                self._settings_sent_at = time.monotonic()
                session.spawn(self.apply_timeout(report.comms_ms), "setting comms_ms")
        if self._id is not None and report.lease_owned is False and (
            report.revision is None or report.revision >= self._revision
        ):
            if off_wanted:
                # Our own off (or drying) ended it; its answer is still on its way.
                self.drop(None)
            else:
                self.drop("the device no longer shows our lease (%s)" % (
                    "changed by %s" % report.source if report.source else "lease inactive"))
        self.owned = bool(self._id is not None and report.lease_owned)
        if report.lease_expires_s is not None and self.owned:
            self._expires_at = time.monotonic() + report.lease_expires_s

    def _settings_due(self, comms_ms: int) -> bool:
        return (
            self.timeout is not None and comms_ms != int(round(self.timeout * 1000))
            and time.monotonic() - self._settings_sent_at >= SETTINGS_RETRY_S
        )

    async def apply_timeout(self, device_comms_ms: int | None) -> None:
        """Set the device's ``comms_ms`` to ``lease_timeout`` unless it is already."""
        if self.timeout is None:
            return
        wanted = int(round(self.timeout * 1000))
        if device_comms_ms == wanted:
            return
        self._settings_sent_at = time.monotonic()
        query = db.comms_ms_query(self.timeout)
        result = await self.link.post(db.PATH_SETTINGS, query, "settings", form=True)
        if result is None:
            return
        if result.ok and result.comms_ms is not None:
            self.comms_ms = result.comms_ms
            if result.comms_ms != wanted:
                self.link._log_limited("the device set comms_ms %d (asked %d)" % (
                    result.comms_ms, wanted))
        elif not result.ok:
            self.link.note_error("setting comms_ms failed: %s" % result.describe())

    async def heartbeats(self, session: Session) -> None:
        """Renew the lease while we hold one: one timer for the next due beat.

        A beat is not awaited before the next is timed, so a slow answer
        delays nothing; the timer is re-armed when the lease or comms_ms changes.
        """
        self._rescheduled = rescheduled = asyncio.Event()
        while session.alive:
            due = None if self._id is None else next_beat(
                self._sent_at, self._retry_at, self.comms_ms)
            wait = None if due is None else due - time.monotonic()
            if wait is not None and wait <= 0 and self._id is not None:
                self._sent_at = time.monotonic()
                self._retry_at = None
                session.spawn(self._beat(self._id, self._sent_at), "heartbeats")
                continue
            rescheduled.clear()
            try:
                await asyncio.wait_for(rescheduled.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def _beat(self, lease_id: str, sent_at: float) -> None:
        result = await self.link.post(db.PATH_HEARTBEAT, db.heartbeat_body(lease_id), "heartbeat")
        if lease_id != self._id:
            return  # the lease changed while this heartbeat was out
        if result is None or not result.ok:
            self.heartbeat_failures += 1
            if sent_at == self._sent_at:  # no later beat is out: retry soon
                interval = db.heartbeat_interval(self.comms_ms)
                self._retry_at = time.monotonic() + min(BEAT_RETRY_S, interval / 3.0)
                self._reschedule()
        if result is None:
            return
        if result.ok:
            self.heartbeats_sent += 1
            if result.expires_in_ms is not None:
                self._expires_at = time.monotonic() + result.expires_in_ms / 1000.0
            return
        if result.kind == db.STALE_LEASE:
            # A reboot shows in the fresh state as a new boot id (no loss to report).
            await self.link.refresh_state()
            if self._id == lease_id:
                self.drop("the device refused our heartbeat (%s)" % result.describe())
        else:
            self.link.note_error("heartbeat failed: %s" % result.describe())

    def describe(self) -> dict[str, Any]:
        expires = None
        if self.owned and self._expires_at is not None:
            expires = round(max(0.0, self._expires_at - time.monotonic()), 1)
        return {
            "lease_owned": self.owned,
            "lease_expires_s": expires,
            "lease_timeout": self.timeout,
            "comms_ms": self.comms_ms,
            "heartbeats_sent": self.heartbeats_sent,
            "heartbeat_failures": self.heartbeat_failures,
            "leases_lost": self.losses,
        }
