"""Carries the bridge's intents to a DragonBreath device as commands.

Heating is a ``power_on`` with the newest ``state_revision``; a revision
conflict means the device changed meanwhile: re-read, decide again.  Each
intent gets a new request id, reused only to retry that intent after a network
error (the device's replay cache answers a retry of a command that did arrive
with its original response).  A newer intent supersedes an older one.

ASSUMED: an ``off`` needs no revision and may be sent at any time, also while
a fault is latched.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable

from . import dragonbreath as db
from .dragonbreath_lease import Lease
from .dragonbreath_session import Session, SessionLink
from .model import MODE_OFF, MODE_ON, device_degrees

#: Network retries of one command (same request id).
COMMAND_ATTEMPTS = 3
COMMAND_RETRY_S = 0.5
#: Revision conflicts in a row before a heat intent is given up (until the next one).
MAX_CONFLICTS = 3
#: A report younger than this counts as the device's current state.
STATE_FRESH_S = 3.0


class Outcome(enum.Enum):
    """How one ``power_on`` ended, for the writer's next step."""

    OK = "ok"
    #: The device changed meanwhile (its state is re-read): decide again.
    CONFLICT = "conflict"
    REFUSED = "refused"
    FAILED = "failed"


class CommandWriter:
    """The desired state and the commands that carry it, one intent at a time."""

    def __init__(self, link: SessionLink, lease: Lease) -> None:
        self.link, self.lease = link, lease
        self.desired: float | None = None
        self.intent = 0
        #: Why the device will not (or cannot) take the last target; None once a
        #: target is accepted.  The controller may show it as an error.
        self.last_refusal: str | None = None
        #: OFFs not sent because the device was already as our last OFF left it.
        self.offs_skipped = 0
        self.revision_conflicts = 0
        self.off_acked_revision: int | None = None

    # Intents (the link checks it is connected) ----------------------------------

    def target(self, target: float, session: Session) -> None:
        refusal = db.refusal_for_target(target)
        if refusal is not None:
            self._refuse(target, refusal)
            target = 0.0  # fail safe: a target the device will not take means off
        self.intent += 1
        self.desired = target
        if target > 0:
            session.wake.set()
            return
        if refusal is None:
            self.last_refusal = None
        if self._off_is_redundant():
            self.offs_skipped += 1
        else:
            self.link.write(self._off(self.intent))

    def drying(self, temperature: int, hours: int) -> None:
        low, high = db.DRYING_HOURS_RANGE
        run_hours = min(high, max(low, int(hours)))
        if run_hours != hours:
            self.link._log_limited("drying for %d h: DragonBreath runs %d-%d h cycles" % (
                run_hours, low, high))
        degrees = min(db.MAX_TARGET_C, max(db.MIN_TARGET_C, int(temperature)))
        self.intent += 1
        self.desired = 0.0
        self.link.write(self._drying(degrees, run_hours, self.intent))

    def filter(self, on: bool) -> None:
        self.link.write(self._filter(on))

    def clear_fault(self) -> None:
        self.link.write(self._clear_fault())

    def _refuse(self, target: float, reason: str) -> None:
        self.last_refusal = reason
        self.link._log_limited("target refused: %s" % reason)
        self.link.listener.refused_target(target, reason)
        self.link.listener.on_link_changed()

    # What is already so -----------------------------------------------------------

    def _off_is_redundant(self) -> bool:
        """The device is exactly as our last acknowledged OFF left it.

        Every change at the device bumps its revision and is pushed at once,
        so a fresh report at the revision our OFF produced, showing it off and
        leaseless, needs no second OFF (the controller writes OFF on every
        report while the device shows a fault: one request per telemetry
        event otherwise).
        """
        state = self.link.last_state
        age = self.link.last_frame_age()
        return (
            state is not None and self.off_acked_revision is not None
            and state.revision == self.off_acked_revision and state.mode == MODE_OFF
            and not state.drying and not self.lease.held
            and age is not None and age < STATE_FRESH_S
        )

    def _heat_satisfied(self, target: float) -> bool:
        """The device already heats to ``target`` under our lease: only heartbeats needed."""
        state = self.link.last_state
        if state is None or not self.lease.held or not self.lease.owned:
            return False
        if state.mode != MODE_ON or state.device_target is None or state.fault_latched:
            return False
        wanted = float(min(db.MAX_TARGET_C, device_degrees(target)))
        if state.device_max_target is not None:
            wanted = min(wanted, state.device_max_target)
        return abs(state.device_target - wanted) < 0.5

    # Heat ---------------------------------------------------------------------------

    async def run(self, session: Session) -> None:
        """Carries heat intents to the device, one at a time, the newest winning."""
        while session.alive:
            await session.wake.wait()
            session.wake.clear()
            conflicts = 0
            while session.alive and self.desired is not None and self.desired > 0:
                target = self.desired
                intent = self.intent
                if self._heat_satisfied(target):
                    break
                state = self.link.last_state
                if state is not None and state.fault_latched:
                    self._refuse(target, "the device has a latched fault (%s); it must be "
                                "cleared first" % (state.fault_reason or "no reason given"))
                    break
                if self.link.revision is None:
                    await self.link.refresh_state()
                    if self.link.revision is None:
                        await asyncio.sleep(COMMAND_RETRY_S)
                        continue
                outcome = await self._power_on(target, self.link.revision, intent)
                if outcome is Outcome.CONFLICT and self.intent == intent:
                    conflicts += 1
                    if conflicts >= MAX_CONFLICTS:
                        self.link.note_error("power_on: %d revision conflicts in a row; "
                                             "waiting for the next change" % conflicts)
                        break
                    continue  # re-read done: decide again with the new state
                if self.intent != intent:
                    continue  # a newer heat target arrived meanwhile
                break

    async def _power_on(self, target: float, revision: int, intent: int) -> Outcome:
        try:
            body = db.power_on_command(target, revision, self.link.actor_id, db.new_request_id())
        except (ValueError, db.TargetRefused) as exc:
            self._refuse(target, str(exc))
            return Outcome.REFUSED
        result = await self._command(body, "power_on", intent)
        if result is None:
            return Outcome.FAILED
        if result.ok:
            return self._leased(result, revision)
        if result.state is not None:
            self.link.absorb(result.state)
        if result.kind == db.REVISION_CONFLICT:
            await self._conflict(result)
            return Outcome.CONFLICT
        self._power_on_refused(target, result)
        return Outcome.REFUSED

    def _leased(self, result: db.CommandResult, revision: int) -> Outcome:
        if result.lease_id is None:
            # A success without a lease cannot be kept alive: fail safe.
            self.link.note_error("power_on answered without a lease id; switching off")
            self.link.write(self._off(self.intent))
            return Outcome.FAILED
        state = result.state
        self.lease.take(result.lease_id, state.revision if state is not None
                        and state.revision is not None else revision + 1)
        self.last_refusal = None
        if state is not None:
            self.link.absorb(state)
        self.lease.owned = True
        if self.desired is None or self.desired <= 0:
            # An OFF crossed this ON: the ON may have landed last.
            self.link.write(self._off(self.intent))
        return Outcome.OK

    def _power_on_refused(self, target: float, result: db.CommandResult) -> None:
        state = self.link.last_state
        if result.kind == db.FAULT_LATCHED:
            self._refuse(target, "the device refuses heat while a fault is latched (%s)" % (
                state.fault_reason if state is not None and state.fault_reason
                else result.describe()))
        elif result.kind == db.BAD_REQUEST:
            self._refuse(target, "the device refused target %.0f °C (%s)" % (
                target, result.describe()))
            self.link.write(self._off(self.intent))
        elif result.kind == db.AUTH:
            self._refuse(target, "the device refused our control token (%s): set the "
                        "section's token to the device's control token" % result.describe())
        else:
            self.link.note_error("power_on failed: %s" % result.describe())

    async def _conflict(self, result: db.CommandResult) -> None:
        self.revision_conflicts += 1
        if result.state is None:
            await self.link.refresh_state()

    # Other commands -------------------------------------------------------------------

    async def _off(self, intent: int) -> None:
        body = db.off_command(self.link.actor_id, db.new_request_id())
        result = await self._command(body, "off", intent, retry_while_superseded=True)
        if result is None:
            return
        if result.ok:
            self.lease.drop(None)
            if result.state is not None and result.state.revision is not None:
                self.off_acked_revision = result.state.revision
        elif result.kind == db.AUTH:
            self._refuse(0.0, "the device refused our control token (%s)" % result.describe())
        else:
            self.link.note_error("off failed: %s" % result.describe())
        if result.state is not None:
            self.link.absorb(result.state)

    async def _drying(self, temperature: int, hours: int, intent: int) -> None:
        def body(revision: int) -> str:
            return db.drying_start_command(
                temperature, hours, revision, self.link.actor_id, db.new_request_id())

        try:
            result = await self._at_revision(body, "drying_start", intent)
        except db.TargetRefused as exc:
            self._refuse(float(temperature), str(exc))
            return
        if result is None:
            return
        if result.ok:
            self.lease.drop(None)  # drying runs on its own; any lease of ours is gone
        else:
            self._refuse(float(temperature), "the device refused drying (%s)" % result.describe())

    async def _clear_fault(self) -> None:
        def body(revision: int) -> str:
            return db.clear_fault_command(revision, self.link.actor_id, db.new_request_id())

        result = await self._at_revision(body, "clear_fault", None)
        if result is not None and not result.ok:
            self.link.note_error("clear_fault failed: %s" % result.describe())

    async def _at_revision(
        self, body: Callable[[int], str], what: str, intent: int | None
    ) -> db.CommandResult | None:
        """A revision-aware command, re-read and resent after conflicts (a few times).

        None when it was not sent or not answered, superseded, or kept conflicting.
        """
        for _ in range(MAX_CONFLICTS):
            if self.link.revision is None:
                await self.link.refresh_state()
            if self.link.revision is None or (intent is not None and self.intent != intent):
                return None
            result = await self._command(body(self.link.revision), what, intent)
            if result is None:
                return None
            if result.state is not None:
                self.link.absorb(result.state)
            if result.kind != db.REVISION_CONFLICT:
                return result
            await self._conflict(result)
        return None

    async def _filter(self, on: bool) -> None:
        body = db.filter_command(on, self.link.actor_id, db.new_request_id())
        result = await self._command(body, "filter", None)
        if result is None:
            reason = "the device did not answer"
        else:
            if result.state is not None:
                self.link.absorb(result.state)
            if result.ok:
                return
            if result.kind == db.CONFLICT:
                reason = ("the device runs its blower for the heater now; filtration can be "
                          "switched on while it does not heat")
            else:
                reason = "the device refused it (%s)" % result.describe()
        reason = "filter %s not applied: %s" % ("on" if on else "off", reason)
        self.link._log_limited(reason)
        self.link.listener.refused_request(reason)

    async def _command(
        self, body: str, what: str, intent: int | None, retry_while_superseded: bool = False
    ) -> db.CommandResult | None:
        """POST one command, retried on network errors with the same request id."""
        for attempt in range(COMMAND_ATTEMPTS):
            if attempt:
                await asyncio.sleep(COMMAND_RETRY_S)
            if self.link.session is None:
                return None  # the session ended; the next one resends the desired state
            if attempt and intent is not None and intent != self.intent and not (
                retry_while_superseded and (self.desired or 0.0) <= 0
            ):
                return None  # a newer intent took over
            result = await self.link.post(db.PATH_COMMAND, body, what)
            if result is not None and result.kind not in (db.BUSY, db.SERVER_ERROR):
                return result
            if result is not None:
                self.link.note_error("%s: %s" % (what, result.describe()))
        return None
