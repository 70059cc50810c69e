"""Keeps one Panda Breath in the state Klipper asked for, whatever the link does.

Klipper's target is the truth.  The controller:

* writes the target when it changes (paced by ``pacing.WritePacer``);
* resends the whole desired state after every (re)connect, once the
  connect snapshot has told it the firmware version and Klipper has told
  it the target (until Klipper speaks, a device heating after a Moonraker
  restart may be doing exactly what Klipper wants; after
  ``KLIPPER_GRACE_S`` without a word the target counts as 0);
* switches off a device that reports heating while Klipper's target is 0
  (the stock firmware resumes heating from flash after a power cycle), and
  returns a device changed outside Klipper (front panel, web UI, Home
  Assistant, a reboot) to Klipper's state (``arbitration``);
* treats a device sensor fault as "must be off" until it clears;
* runs the device's own drying cycle when asked and adopts one started at
  the device instead of switching it off (``drying``);
* relays every chamber reading to Klipper, shifted or regulated
  (``regulation``).

What the device last reported is mirrored field by field (``mirror``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .arbitration import Arbitration
from .drying import DryingRun, DryingTracker
from .link import DeviceLink
from .mirror import DeviceMirror
from .model import DeviceReport, as_number, clamp_target
from .pacing import WritePacer
from .regulation import PERIOD_S as REGULATION_PERIOD_S
from .regulation import ChamberTemperature
from .sync import ConnectionSync
from .typing_compat import Protocol
from .work_mode import work_mode

#: How long after start-up an unknown Klipper target is waited for before it counts as 0.
KLIPPER_GRACE_S = 10.0
#: A device reading older than this is not pushed with the printer's sensor reading.
DEVICE_READING_MAX_AGE_S = 10.0


class TemperatureRelay(Protocol):
    def submit(self, controller: DeviceController, report: DeviceReport) -> None:
        """Forward a reading to Klipper; the reply's target comes back via adopt_klipper_target."""

    def state_changed(self, controller: DeviceController) -> None:
        """Link, fault, power or set point changed: tell Klipper, with or without a reading."""

    def report_error(self, controller: DeviceController, message: str) -> None:
        """A request was refused after its G-code returned: say so in Klipper's console."""


class DeviceController(DeviceMirror):
    """The desired state of one device, over the mirror of what it reports."""

    def __init__(self, name: str, heater: str, max_target: float, relay: TemperatureRelay,
                 on_status_changed: Callable[[], None], temperature_offset: float = 0.0,
                 chamber_sensor: str | None = None,
                 regulation_interval: float = REGULATION_PERIOD_S) -> None:
        super().__init__(name)
        self.heater = heater
        #: The device's own ceiling (60 °C stock, 70 °C patched).
        self.device_max_target = max_target
        #: What targets are clamped to: the device ceiling or the heater's max_temp if lower.
        self.max_target = max_target
        self.relay = relay
        self.on_status_changed = on_status_changed
        self.link: DeviceLink | None = None
        self.requested_target = 0.0
        self.target = 0.0
        #: Bumped on every change of ``target``, so a stale reply never overrides it.
        self.target_version = 0
        self.target_source = "startup"
        #: False until Klipper (or a safety event) has said what it wants.
        self.target_known = False
        self.last_event: str | None = None
        self.chamber_sensor = chamber_sensor
        self.chamber = ChamberTemperature(temperature_offset, chamber_sensor, regulation_interval)
        self.arbitration = Arbitration(name)
        self.dryer = DryingTracker(name)
        self.pacer = WritePacer(self.write_desired)
        self.sync = ConnectionSync(self._try_sync)
        self._refusal_reported: tuple[int, str] | None = None

    @property
    def drying(self) -> DryingRun | None:
        """The drying cycle running on the device, if any."""
        return self.dryer.run

    @drying.setter
    def drying(self, run: DryingRun | None) -> None:
        self.dryer.run = run

    @property
    def external_control(self) -> str | None:
        """Who else controls the device now (firmwares that arbitrate), if anyone."""
        return self.arbitration.external_control

    # Inputs from Klipper -----------------------------------------------------

    def set_target(self, target: float, source: str) -> float:
        """Klipper (or a safety event) wants ``target``; returns the clamped value."""
        self.target_known = True
        self.requested_target = target
        clamped = clamp_target(target, self.max_target)
        if clamped != target and target > 0:
            logging.info("panda_breath [%s]: target %.1f clamped to %.1f",
                         self.name, target, clamped)
        self.target_source = source
        if source == "klipper":
            self.arbitration.release("Klipper's target")
        if clamped > 0 and self.faults and source == "klipper":
            self._report_fault_blocks(clamped)
        if clamped > 0 and self.drying is not None:
            # The print needs the chamber: Klipper's target wins over drying.
            self.last_event = self.dryer.end(
                "drying ended: Klipper set the chamber to %.0f" % clamped)
        if clamped != self.target:
            self.target = clamped
            self.target_version += 1
            self._changed()
        # Written even when unchanged: Klipper setting the same target again
        # (after the device was switched off at its panel) must reach it.
        self.write_desired(urgent=False)
        self._try_sync()  # Klipper's first word may be what the sync waited for
        return clamped

    def adopt_klipper_target(self, target: Any, seen_version: int | None) -> None:
        """Reconcile with the target Klipper reports (push reply or subscription)."""
        number = as_number(target)
        if number is None:
            return
        if seen_version is not None and seen_version != self.target_version:
            return  # a newer change crossed this reply; it wins
        clamped = clamp_target(number, self.max_target)
        if not self.target_known or clamped != self.target:
            self.set_target(number, "klipper status")

    def force_off(self, reason: str) -> None:
        """A safety event: off now, whatever Klipper's last target was."""
        if self.target > 0 or self.is_device_heating():
            logging.info("panda_breath [%s]: switching off (%s)", self.name, reason)
        self.last_event = "off: %s" % reason
        self.drying = None  # a safety event ends drying too
        self.arbitration.release()  # and is never left to another controller
        self.target_known = True
        self.requested_target = 0.0
        self.target_source = reason
        if self.target != 0.0:
            self.target = 0.0
            self.target_version += 1
        # Always write: the device may be heating on its own.
        self.write_desired(urgent=True)
        self._try_sync()  # or all of it, if this connection is not synced yet
        self._changed()

    def assume_off_if_unknown(self) -> None:
        """The start-up grace is over and Klipper never said a target: it is 0."""
        if not self.target_known:
            self.force_off("no target from Klipper %.0f s after start-up" % KLIPPER_GRACE_S)

    def _report_fault_blocks(self, target: float) -> None:
        """A target while the device reports a fault: say why nothing will heat."""
        link = self.link
        how = ("it is latched: clear it with PANDA_BREATH_CLEAR_FAULT once the cause is fixed"
               if link is not None and link.arbitrates else
               "the device stays off until the fault clears")
        self.relay.report_error(self, "target %.0f not applied: the device reports %s; %s" % (
            target, self.fault_text(), how))

    def refused_target(self, target: float, reason: str) -> None:
        """The device refused a command of ours (link hook): once per target and reason."""
        key = (self.target_version, reason)
        if key != self._refusal_reported:
            self._refusal_reported = key
            self.relay.report_error(self, reason)

    def refused_request(self, reason: str) -> None:
        """The device refused or never answered a request of the user's (link hook)."""
        self.relay.report_error(self, reason)

    # LinkListener ------------------------------------------------------------

    def on_link_up(self) -> None:
        self.sync.link_up()
        self._changed()

    def on_link_down(self, reason: str) -> None:
        self.sync.link_down()
        self.pacer.stop()
        self._changed()

    def on_link_changed(self) -> None:
        self._changed()

    def on_report(self, report: DeviceReport) -> None:
        drying_before = self.drying
        changed = self._mirror_report(report)
        if report.assumed:  # what our own write did: nothing to track or undo
            if changed:
                self._changed()
            return
        event = self.dryer.track(report, may_adopt=self.effective_target() == 0)
        if event is not None:
            self.last_event = event
        changed = changed or self.drying is not drying_before
        if not self.sync.synced:
            self.sync.heard(report)
        else:
            self._reconcile(report)
        if report.chamber_temp is not None:
            self._regulate()
        if self.klipper_reading(report) is not None:
            self.relay.submit(self, report)
        if changed:
            self._changed()

    # The chamber reading and the set point -------------------------------------

    def on_printer_reading(self, value: Any) -> None:
        """Klipper's ``chamber_sensor`` reported a temperature."""
        if not self.chamber.printer_reading(value, time.monotonic()):
            return
        self._regulate()
        link = self.link
        # Pushed only while the device itself is heard: Klipper's stale check
        # must still see a device that went away.
        if (link is not None and link.is_up()
                and (link.last_frame_age() or 0.0) < DEVICE_READING_MAX_AGE_S):
            self.relay.submit(self, DeviceReport(chamber_temp=self.chamber_temp))

    def klipper_reading(self, report: DeviceReport) -> float | None:
        """The chamber temperature Klipper's heater shows for this device report."""
        return self.chamber.klipper_reading(report.chamber_temp, time.monotonic())

    def set_point(self) -> float:
        """What the device is told: Klipper's target, moved by the offset or the regulator."""
        return self.chamber.set_point(self.effective_target(), self.device_max_target)

    def _regulate(self) -> None:
        if self.chamber.regulate(time.monotonic(), self.effective_target(), self.chamber_temp,
                                 self.device_target):
            logging.info(
                "panda_breath [%s]: set point %.0f for target %.1f (printer sensor %.1f, "
                "device %.1f)", self.name, self.set_point(), self.effective_target(),
                self.chamber.printer_temp or 0.0, self.chamber_temp or 0.0,
            )
            self.write_desired(urgent=True)
            self._changed()

    def work_mode(self) -> int:
        """Who runs the heat, in the stock firmware's numbers (see ``work_mode``)."""
        return work_mode(self, self.drying is not None, self.external_control is not None,
                         self.effective_target())

    def effective_target(self) -> float:
        """What the device must do now: off while it reports a fault."""
        return 0.0 if self.faults else self.target

    def _mirror_report(self, report: DeviceReport) -> bool:
        """Mirror what ``report`` says; True if anything shown changed."""
        changed, faults_moved = self.absorb(report)
        if faults_moved and self.faults and self.drying is not None:
            self.last_event = self.dryer.end("drying ended: the device reports a fault")
        if faults_moved:
            self.write_desired(urgent=True)
        return changed

    # Keeping the device in Klipper's state -------------------------------------

    def _try_sync(self) -> None:
        """Once per connection, write the whole desired state (see ``sync``)."""
        link = self.link
        due, snapshot = self.sync.take(self.target_known and link is not None and link.is_up())
        if not due:
            return
        if snapshot is not None and self._someone_else_controls(snapshot):
            return  # the device is someone else's now; Klipper's next target acts
        event = self.arbitration.found_on_reconnect(
            snapshot, self.effective_target(), self.set_point(), self.drying is not None,
            self.is_device_heating())
        if event is not None:
            self.last_event = event
        self.write_desired(urgent=True)

    def _someone_else_controls(self, report: DeviceReport) -> bool:
        event = self.arbitration.someone_else_took(self.link, report)
        if event is not None:
            self.note(event)
        return self.external_control is not None

    def _reconcile(self, report: DeviceReport) -> None:
        if self._someone_else_controls(report):
            return
        wanted = self.effective_target()
        if wanted == 0 and self.drying is not None:
            return  # the device dries; that is what was asked (or adopted)
        event = self.arbitration.seen_while_connected(report, wanted, self.set_point())
        if event is None:
            return
        self.last_event = event
        if wanted == 0:
            self.write_desired(urgent=True)  # uncommanded heat goes off at once
        else:
            self.pacer.correct()

    def write_desired(self, urgent: bool) -> None:
        """Send the set point now, or coalesce it into a trailing write.

        ``urgent`` writes (reconnect, safety, corrections) skip the coalescing.
        """
        link = self.link
        if link is None or not link.is_up() or not self.sync.synced:
            return  # resent in full once the link is up and synced
        wanted = self.effective_target()
        if wanted == 0 and self.drying is not None:
            return  # off would end the drying run
        if self.pacer.admit(wanted > 0, urgent):
            link.send_target(self.set_point())

    def note(self, event: str) -> None:
        """Show ``event`` as the latest and tell everyone the state changed."""
        self.last_event = event
        self._changed()

    def _changed(self) -> None:
        self.on_status_changed()
        self.relay.state_changed(self)

    def describe(self) -> dict[str, Any]:
        """This device's state for the status API."""
        info: dict[str, Any] = {
            "name": self.name,
            "heater": self.heater,
            "target": self.target,
            "requested_target": self.requested_target,
            "target_source": self.target_source,
            "max_target": self.max_target,
            "work_mode": self.work_mode(),
            "last_event": self.last_event,
            "set_point": self.set_point(),
        }
        info.update(self.describe_device())
        info.update(self.dryer.describe())
        info.update(self.arbitration.describe())
        info.update(self.chamber.describe())
        if self.link is not None:
            info.update(self.link.describe())
        return info
