"""Keeps one Panda Breath in the state Klipper asked for, whatever the link does.

Klipper's target is the truth.  The controller:

* writes the target when it changes, coalescing bursts (at most one heating
  write per ``COALESCE_S``) while an OFF always goes out at once;
* resends the whole desired state after every (re)connect, once the
  connect snapshot has told it the firmware version and Klipper has told
  it the target (until Klipper speaks, a device heating after a Moonraker
  restart may be doing exactly what Klipper wants; after
  ``KLIPPER_GRACE_S`` without a word the target counts as 0);
* switches off a device that reports heating while Klipper's target is 0
  (the stock firmware resumes heating from flash after a power cycle), and
  returns a device changed outside Klipper (front panel, web UI, Home
  Assistant, a reboot) to Klipper's state, reporting what changed;
* on a link whose device reports no settings (stock WebSocket), re-asserts
  the desired state every ``reassert_interval`` seconds, since a change at
  the device would otherwise stand until the next reconnect;
* treats a device sensor fault as "must be off" until it clears;
* runs the device's own drying cycle when asked (Moonraker's power device)
  and adopts one started at the device instead of switching it off; see
  ``start_drying``;
* relays every chamber reading to Klipper.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .link import DeviceLink
from .model import (
    MODE_AUTO,
    MODE_DRYING,
    MODE_ON,
    MODE_STANDBY,
    DeviceReport,
    as_number,
    clamp_target,
    device_degrees,
)
from .regulation import PERIOD_S as REGULATION_PERIOD_S
from .regulation import SetPointRegulator
from .typing_compat import Protocol

#: Heating writes closer together than this are merged into one (the latest).
COALESCE_S = 0.1
#: How long to wait for the connect snapshot before writing blind.
SNAPSHOT_WAIT_S = 2.0
#: A device that keeps contradicting us is rewritten at most this often
#: (the corrective write is delayed, never dropped).
CORRECTION_INTERVAL_S = 1.0
#: Default period of the idempotent re-assert on links that report no settings.
REASSERT_INTERVAL_S = 20.0
#: How long after start-up an unknown Klipper target is waited for before it counts as 0.
KLIPPER_GRACE_S = 10.0


#: ``work_mode`` values (the stock firmware's own numbering, and 0 for none).
WORK_MODE_IDLE = 0
WORK_MODE_DEVICE = 1
WORK_MODE_KLIPPER = 2
WORK_MODE_DRYING = 3

#: A reading of the printer's chamber sensor older than this is not shown.
PRINTER_READING_MAX_AGE_S = 10.0
#: After our drying command, a state still showing no drying is in flight, not an end.
DRYING_SETTLE_S = 2.0


class DryingError(Exception):
    """A drying request that cannot be carried out now; the message says why."""


class FilterError(Exception):
    """A filtration request that cannot be carried out now; the message says why."""


@dataclass
class DryingRun:
    """A drying cycle running on the device, started by us or at the device."""

    source: str
    temperature: int | None
    hours: int | None
    remaining_s: float | None
    #: monotonic time ``remaining_s`` was known
    remaining_at: float

    def remaining(self, now: float) -> float | None:
        if self.remaining_s is None:
            return None
        return max(0.0, self.remaining_s - (now - self.remaining_at))

    def describe(self, now: float) -> dict[str, Any]:
        remaining = self.remaining(now)
        return {
            "source": self.source,
            "temperature": self.temperature,
            "hours": self.hours,
            "remaining_s": None if remaining is None else round(remaining),
        }


#: Who changed the device, as far as the bridge can tell.
BY_DEVICE = (
    "changed at the device while connected (front panel, its web UI, Home Assistant "
    "or another client)"
)
BY_RECONNECT = (
    "found on (re)connecting: changed while out of reach (a reboot or power cut, the "
    "front panel, its web UI or another client)"
)


class TemperatureRelay(Protocol):
    def submit(self, controller: DeviceController, report: DeviceReport) -> None:
        """Forward a reading to Klipper; the reply's target comes back via adopt_klipper_target."""

    def state_changed(self, controller: DeviceController) -> None:
        """Link, fault, power or set point changed: tell Klipper, with or without a reading."""

    def report_error(self, controller: DeviceController, message: str) -> None:
        """A request was refused after its G-code returned: say so in Klipper's console."""


class DeviceController:
    def __init__(
        self,
        name: str,
        heater: str,
        max_target: float,
        relay: TemperatureRelay,
        on_status_changed: Callable[[], None],
        reassert_interval: float = REASSERT_INTERVAL_S,
        temperature_offset: float = 0.0,
        chamber_sensor: str | None = None,
        regulation_interval: float = REGULATION_PERIOD_S,
    ) -> None:
        self.name = name
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
        # What the device last told us.
        self.chamber_temp: float | None = None
        self.ptc_temp: float | None = None
        self.work_on: bool | None = None
        self.mode: str | None = None
        self.device_target: float | None = None
        self.heater_on: bool | None = None
        self.drying_remaining_s: float | None = None
        #: Filtration (the blower alone) requested at the device; None where
        #: the firmware has none or has not said.
        self.filter_on: bool | None = None
        self.faults: dict[str, str] = {}
        self.online: bool | None = None
        self.uncommanded_heating_events = 0
        self.last_event: str | None = None
        #: Changes made outside Klipper that were undone, and the latest one.
        self.outside_changes = 0
        self.last_outside_change: dict[str, Any] | None = None
        #: Periodic re-asserts written (links that report no settings).
        self.reasserts = 0
        self.reassert_interval = reassert_interval
        #: °C added to the device's reading for Klipper (its sensor over-reads:
        #: negative); the set point moves the other way.
        self.temperature_offset = temperature_offset
        #: A Klipper sensor object (e.g. "temperature_sensor chamber") that is
        #: the chamber reading; the regulator moves the set point to suit it.
        self.chamber_sensor = chamber_sensor
        self.regulator = SetPointRegulator(regulation_interval) if chamber_sensor else None
        self.printer_temp: float | None = None
        self._printer_temp_at = 0.0
        #: Who else controls the device now, on firmwares that arbitrate
        #: (DragonBreath): the bridge waits for Klipper's next target.
        self.external_control: str | None = None
        #: The drying cycle running on the device, if any.
        self.drying: DryingRun | None = None
        self._drying_sent_at = 0.0
        self._refusal_reported: tuple[int, str] | None = None
        # Write pacing.
        self._synced_since_connect = False
        #: The device said something on this connection (or we gave up waiting).
        self._device_heard = False
        #: This connection's snapshot, while the first sync is pending.
        self._snapshot: DeviceReport | None = None
        self._last_heat_write = 0.0
        self._last_correction = 0.0
        self._trailing: asyncio.TimerHandle | None = None
        self._snapshot_timer: asyncio.TimerHandle | None = None
        self._correction_timer: asyncio.TimerHandle | None = None
        self._reassert_timer: asyncio.TimerHandle | None = None

    # Inputs from Klipper -----------------------------------------------------

    def set_target(self, target: float, source: str) -> float:
        """Klipper (or a safety event) wants ``target``; returns the clamped value."""
        first_word = not self.target_known
        self.target_known = True
        self.requested_target = target
        clamped = clamp_target(target, self.max_target)
        if clamped != target and target > 0:
            logging.info(
                "panda_breath [%s]: target %.1f clamped to %.1f", self.name, target, clamped
            )
        self.target_source = source
        if self.external_control is not None and source == "klipper":
            # Klipper's new target takes the device back.
            logging.info("panda_breath [%s]: Klipper's target takes the device back from %s",
                         self.name, self.external_control)
            self.external_control = None
        if clamped > 0 and self.faults and source == "klipper":
            self._report_fault_blocks(clamped)
        if clamped > 0 and self.drying is not None:
            # The print needs the chamber: Klipper's target wins over drying.
            self._end_drying("drying ended: Klipper set the chamber to %.0f" % clamped)
        if clamped != self.target:
            self.target = clamped
            self.target_version += 1
            self._changed()
        # Written even when unchanged: Klipper setting the same target again
        # (after the device was switched off at its panel) must reach it.
        self._write_desired(urgent=False)
        if first_word:
            self._try_sync()
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
        self.external_control = None  # and is never left to another controller
        self.target_known = True
        self.requested_target = 0.0
        self.target_source = reason
        if self.target != 0.0:
            self.target = 0.0
            self.target_version += 1
        # Always write: the device may be heating on its own.
        if self._synced_since_connect:
            self._write_desired(urgent=True)
        else:
            self._try_sync()
        self._changed()

    def fault_text(self) -> str:
        """The device's faults in one line ("" when there are none)."""
        return ", ".join("%s: %s" % item for item in sorted(self.faults.items()))

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

    def clear_fault(self) -> bool:
        """The user clears a latched device fault: the device is Klipper's again.

        Klipper's target is written once the device reports the fault gone.
        """
        link = self.link
        if link is None or not link.clear_fault():
            return False
        self.external_control = None
        self.last_event = "fault clear requested by the user"
        self._changed()
        return True

    def refused_request(self, reason: str) -> None:
        """The device refused or never answered a request of the user's (link hook)."""
        self.relay.report_error(self, reason)

    # Filtration (Moonraker's power device) ------------------------------------

    def set_filter(self, on: bool) -> None:
        """Run the blower alone (filtration) or stop it; FilterError says why not now.

        A request, not desired state: the device's buttons, its web page, a
        fault or a reboot may change it, and ``filter_on`` follows the device.
        The device refuses "on" while it heats (its blower then serves the
        heater), so that is refused here at once, where the user can see it.
        """
        link = self.link
        if link is None or not link.supports_filter:
            raise FilterError("this firmware has no filtration the bridge can switch")
        if not link.is_up():
            raise FilterError("the device is not reachable")
        if on and (self.device_target or 0.0) > 0:
            raise FilterError("the device heats now and its blower serves the heater; "
                              "switch filtration on when it does not heat")
        if not link.send_filter(on):
            raise FilterError("the device is not reachable")
        self.last_event = "filtration %s requested" % ("on" if on else "off")
        logging.info("panda_breath [%s]: %s", self.name, self.last_event)
        self._changed()

    # Drying (Moonraker's power device) ------------------------------------------

    def start_drying(self, temperature: int, hours: int) -> None:
        """Start the device's drying cycle; DryingError says why it cannot be done now.

        A drying run is the device's own job, like a power device: Klipper's
        target 0 (TURN_OFF_HEATERS, idle timeout) leaves it running, a
        Klipper target above 0 ends it (the print needs the chamber), and
        Klipper shutdown, M112, Klipper or Moonraker going away end it.
        """
        link = self.link
        if link is None or not link.supports_drying:
            raise DryingError("this firmware has no drying cycle the bridge can start")
        if self.target > 0:
            raise DryingError(
                "Klipper heats the chamber to %.0f °C; set its target to 0 first" % self.target
            )
        if self.faults:
            raise DryingError("the device reports %s" % ", ".join(sorted(self.faults)))
        if not link.is_up() or not self._synced_since_connect:
            raise DryingError("the device is not reachable")
        if not link.send_drying(temperature, hours):
            raise DryingError("the device is not reachable")
        now = time.monotonic()
        self._drying_sent_at = now
        self.drying = DryingRun("Moonraker", temperature, hours, hours * 3600.0, now)
        if not link.reports_settings:
            self.work_on = True
            self.mode = MODE_DRYING
        self.last_event = "drying started: %d °C for %d h" % (temperature, hours)
        logging.info("panda_breath [%s]: %s", self.name, self.last_event)
        self._changed()

    def stop_drying(self) -> None:
        """End a drying run (power device off): the device goes off."""
        if self.drying is None:
            return
        self._end_drying("drying stopped")
        self._write_desired(urgent=True)
        self._changed()

    def _end_drying(self, event: str) -> None:
        self.drying = None
        self.last_event = event
        logging.info("panda_breath [%s]: %s", self.name, event)

    def _track_drying(self, report: DeviceReport) -> None:
        """Adopt a drying run started at the device; notice when one ends."""
        running = report.drying
        if running is None and report.mode is not None and report.work_on is not None:
            running = report.mode == MODE_DRYING and report.work_on
        if running is None:
            return
        now = time.monotonic()
        if running:
            if self.drying is None and self.effective_target() == 0:
                self.drying = DryingRun("device", None, None, report.drying_remaining_s, now)
                self.last_event = "drying started at the device; adopted"
                logging.info("panda_breath [%s]: %s", self.name, self.last_event)
            elif self.drying is not None and report.drying_remaining_s is not None:
                self.drying.remaining_s = report.drying_remaining_s
                self.drying.remaining_at = now
        elif self.drying is not None and now - self._drying_sent_at >= DRYING_SETTLE_S:
            self._end_drying("drying ended")

    def assume_off_if_unknown(self) -> None:
        """The start-up grace is over and Klipper never said a target: it is 0."""
        if not self.target_known:
            self.force_off("no target from Klipper %.0f s after start-up" % KLIPPER_GRACE_S)

    # LinkListener ------------------------------------------------------------

    def on_link_up(self) -> None:
        self._synced_since_connect = False
        self._device_heard = False
        self._snapshot = None
        loop = asyncio.get_running_loop()
        self._cancel(self._snapshot_timer)
        # Wait for the snapshot (it names the firmware version and its real
        # on/off state); write blind only if it does not come.
        self._snapshot_timer = loop.call_later(SNAPSHOT_WAIT_S, self._snapshot_wait_over)
        self._changed()

    def on_link_down(self, reason: str) -> None:
        for handle in (self._snapshot_timer, self._trailing, self._correction_timer,
                       self._reassert_timer):
            self._cancel(handle)
        self._synced_since_connect = False
        self._changed()

    def on_link_changed(self) -> None:
        self._changed()

    def on_report(self, report: DeviceReport) -> None:
        drying_before = self.drying
        changed = self._absorb(report)
        self._track_drying(report)
        changed = changed or self.drying is not drying_before
        if not self._synced_since_connect:
            self._device_heard = True
            if report.snapshot:
                self._snapshot = report
            self._try_sync()
        else:
            self._reconcile(report)
        if report.chamber_temp is not None:
            self._regulate()
        if self.klipper_reading(report) is not None:
            self.relay.submit(self, report)
        if changed:
            self._changed()

    # The printer's own chamber sensor (chamber_sensor) -------------------------

    def on_printer_reading(self, value: Any) -> None:
        """Klipper's ``chamber_sensor`` reported a temperature."""
        reading = as_number(value)  # finite numbers only, whatever Klipper sends
        if reading is None:
            return
        self.printer_temp = reading
        self._printer_temp_at = time.monotonic()
        self._regulate()
        link = self.link
        # Pushed only while the device itself is heard: Klipper's stale check
        # must still see a device that went away.
        if link is not None and link.is_up() and (link.last_frame_age() or 0.0) < 10.0:
            self.relay.submit(self, DeviceReport(chamber_temp=self.chamber_temp))

    def klipper_reading(self, report: DeviceReport) -> float | None:
        """The chamber temperature Klipper's heater shows for this device report."""
        if report.chamber_temp is None:
            return None
        if self.chamber_sensor is not None:
            fresh = time.monotonic() - self._printer_temp_at < PRINTER_READING_MAX_AGE_S
            return self.printer_temp if fresh else None
        return report.chamber_temp + self.temperature_offset

    def set_point(self) -> float:
        """What the device is told: Klipper's target, moved by the offset or the regulator."""
        wanted = self.effective_target()
        if wanted <= 0:
            return 0.0
        if self.regulator is not None:
            point = wanted + self.regulator.correction
        else:
            point = wanted - self.temperature_offset
        if point == wanted:
            return wanted
        return float(min(self.device_max_target, max(1.0, round(point))))

    def _regulate(self) -> None:
        regulator = self.regulator
        if regulator is None or self.effective_target() <= 0:
            return
        before = regulator.correction
        regulator.update(time.monotonic(), self.effective_target(), self.printer_temp,
                         self.chamber_temp, self.device_target)
        if regulator.correction != before:
            logging.info(
                "panda_breath [%s]: set point %.0f for target %.1f (printer sensor %.1f, "
                "device %.1f)", self.name, self.set_point(), self.effective_target(),
                self.printer_temp or 0.0, self.chamber_temp or 0.0,
            )
            self._write_desired(urgent=True)
            self._changed()

    # Internals ---------------------------------------------------------------

    def _changed(self) -> None:
        self.on_status_changed()
        self.relay.state_changed(self)

    def power(self) -> float:
        """The heater's output as Klipper shows it (0.0 or 1.0).

        The relay state where the firmware reports it (ESPHome's climate
        action); otherwise the device's commanded state: on, in a heating
        mode, and below its set point (stock WebSocket and v1.0.4 MQTT).
        """
        if self.faults:
            return 0.0
        if self.heater_on is not None:
            return 1.0 if self.heater_on else 0.0
        if not (self.work_on and self.mode in (MODE_ON, MODE_DRYING)):
            return 0.0
        if self.chamber_temp is None or self.device_target is None:
            return 0.0
        return 1.0 if self.chamber_temp < self.device_target else 0.0

    def work_mode(self) -> int:
        """Who runs the heat, in the stock firmware's numbers (HelixScreen reads them).

        0: nothing heats, 1: the device itself (AUTO) or another controller,
        2: Klipper's target, 3: a drying cycle.  Heat while Klipper's target
        is 0 is not Klipper's.  0 is ours (the device keeps its last mode):
        with it, every switch on or off changes this field together with
        ``work_on``, and HelixScreen reads its badge only from a status
        frame that carries both.
        """
        # What the device reports first: a mode asked for but not yet taken
        # stays 0, and changes together with work_on when the device takes it.
        if not self.is_device_heating():
            return WORK_MODE_IDLE
        if self.drying is not None:
            return WORK_MODE_DRYING
        if (self.external_control is not None or self.mode == MODE_AUTO
                or self.effective_target() == 0):
            return WORK_MODE_DEVICE
        return WORK_MODE_KLIPPER

    def effective_target(self) -> float:
        """What the device must do now: off while it reports a fault."""
        return 0.0 if self.faults else self.target

    def is_device_heating(self) -> bool:
        """Whether the device, as last reported, heats or may heat on its own."""
        return bool(self.heater_on) or bool(self.work_on and self.mode != MODE_STANDBY)

    def _absorb(self, report: DeviceReport) -> bool:
        before = self._observed()
        if report.chamber_temp is not None:
            self.chamber_temp = report.chamber_temp
        if report.ptc_temp is not None:
            self.ptc_temp = report.ptc_temp
        if report.work_on is not None:
            self.work_on = report.work_on
        if report.mode is not None:
            self.mode = report.mode
        if report.device_target is not None:
            self.device_target = report.device_target
        if report.heater_on is not None:
            self.heater_on = report.heater_on
        if report.drying_remaining_s is not None:
            self.drying_remaining_s = report.drying_remaining_s
        if report.filter_requested is not None:
            self.filter_on = report.filter_requested
        if report.online is not None:
            self.online = report.online
        if report.faults is not None:
            if report.faults and report.faults != self.faults:
                logging.warning(
                    "panda_breath [%s]: device reports %s; keeping it off",
                    self.name,
                    ", ".join("%s %s" % item for item in sorted(report.faults.items())),
                )
            fault_cleared = bool(self.faults) and not report.faults
            self.faults = dict(report.faults)
            if report.faults and self.drying is not None:
                self._end_drying("drying ended: the device reports a fault")
            if report.faults or fault_cleared:
                self._write_desired(urgent=True)
        if report.chamber_temp is None and "chamber_sensor" in self.faults:
            self.chamber_temp = None
        return self._observed() != before

    def _observed(self) -> tuple[Any, ...]:
        return (
            self.chamber_temp, self.ptc_temp, self.work_on, self.mode, self.device_target,
            self.heater_on, self.drying_remaining_s, self.online, tuple(sorted(self.faults)),
            self.filter_on,
        )

    def _snapshot_wait_over(self) -> None:
        self._device_heard = True
        self._try_sync()

    def _try_sync(self) -> None:
        """Once per connection, write the whole desired state: when the device
        has spoken (its snapshot, or the wait for it is over) and Klipper has."""
        if self._synced_since_connect or self.link is None or not self.link.is_up():
            return
        if not (self._device_heard and self.target_known):
            return
        self._cancel(self._snapshot_timer)
        self._synced_since_connect = True
        if self._snapshot is not None and self._someone_else_controls(self._snapshot):
            self._snapshot = None
            return  # the device is someone else's now; Klipper's next target acts
        if self.effective_target() == 0 and self.drying is not None:
            pass  # a drying run, adopted or ours: not uncommanded heat
        elif self.effective_target() == 0 and self.is_device_heating():
            self._note_uncommanded_heating()
        elif self._snapshot is not None:
            changed = self._differences(self._snapshot, self.effective_target(), self.set_point())
            if changed:
                self._note_outside_change(changed, BY_RECONNECT)
        self._snapshot = None
        self._write_desired(urgent=True)

    def _someone_else_controls(self, report: DeviceReport) -> bool:
        """On a firmware that arbitrates, a state changed by another controller
        (its buttons, web page, Home Assistant, its AUTO mode, its safety) is
        the device's decision: shown, not undone, until Klipper's next target."""
        link = self.link
        if link is None or not link.arbitrates:
            return False
        source = report.source
        if source is not None and source != link.own_source and source != "boot":
            if self.external_control != source:
                self.external_control = source
                self.last_event = (
                    "%s took control of the device; Klipper's next target takes it back"
                    % source
                )
                logging.info("panda_breath [%s]: %s", self.name, self.last_event)
                self._changed()
        return self.external_control is not None

    def _reconcile(self, report: DeviceReport) -> None:
        if self._someone_else_controls(report):
            return
        wanted = self.effective_target()
        if wanted == 0 and self.drying is not None:
            return  # the device dries; that is what was asked (or adopted)
        changed = self._differences(report, wanted, self.set_point())
        if not changed:
            return
        if wanted == 0:
            self._note_uncommanded_heating()
            self._write_desired(urgent=True)
            return
        self._note_outside_change(changed, BY_DEVICE)
        self._schedule_correction()

    @staticmethod
    def _differences(report: DeviceReport, wanted: float, set_point: float) -> dict[str, Any]:
        """What this report shows that contradicts ``wanted`` (at ``set_point``):
        field -> device's value."""
        changed: dict[str, Any] = {}
        if wanted == 0:
            if report.is_heating_enabled():
                changed["work_on"] = True
                if report.mode is not None:
                    changed["mode"] = report.mode
            if report.heater_on:
                changed["heater_on"] = True
            return changed
        if report.work_on is False:
            changed["work_on"] = False
        if report.mode is not None and report.mode != MODE_ON:
            changed["mode"] = report.mode
        if report.device_target is not None and abs(report.device_target - round(set_point)) >= 1:
            changed["device_target"] = report.device_target
        return changed

    def _note_outside_change(self, changed: dict[str, Any], by: str) -> None:
        previous = self.last_outside_change
        repeated = (
            previous is not None and previous["changed"] == changed
            and time.time() - previous["time"] < 60.0
        )
        self.outside_changes += 1
        self.last_outside_change = {
            "time": time.time(),
            "changed": changed,
            "by": by,
            "restored_target": self.effective_target(),
        }
        self.last_event = "device changed outside Klipper (%s); restored" % ", ".join(
            "%s=%s" % item for item in sorted(changed.items())
        )
        if not repeated:  # a device that keeps fighting back is logged once a minute
            logging.info("panda_breath [%s]: %s; %s", self.name, self.last_event, by)

    def _schedule_correction(self) -> None:
        """Rewrite the desired state now, or as soon as the pacing allows."""
        if self._correction_timer is not None and not self._correction_timer.cancelled():
            return  # one is already on its way
        wait = self._last_correction + CORRECTION_INTERVAL_S - time.monotonic()
        if wait <= 0:
            self._correct()
            return
        self._correction_timer = asyncio.get_running_loop().call_later(wait, self._correct)

    def _correct(self) -> None:
        self._correction_timer = None
        self._last_correction = time.monotonic()
        self._write_desired(urgent=True)

    def _note_uncommanded_heating(self) -> None:
        self.uncommanded_heating_events += 1
        self.last_outside_change = {
            "time": time.time(),
            "changed": {"work_on": True},
            "by": BY_DEVICE if self._synced_since_connect else BY_RECONNECT,
            "restored_target": 0.0,
        }
        self.last_event = "uncommanded heating switched off"
        logging.warning(
            "panda_breath [%s]: device was heating while Klipper's target is 0 (saved "
            "heat restored after a power cycle, its front panel, or another client); "
            "switching it off",
            self.name,
        )

    def _write_desired(self, urgent: bool) -> None:
        """Send the effective target now, or coalesce it into a trailing write.

        ``urgent`` writes (reconnect, safety, corrections) skip the coalescing.
        """
        link = self.link
        if link is None or not link.is_up() or not self._synced_since_connect:
            return  # resent in full once the link is up and synced
        wanted = self.effective_target()
        if wanted == 0 and self.drying is not None:
            return  # off would end the drying run
        self._cancel(self._trailing)
        if wanted > 0 and not urgent:
            now = time.monotonic()
            wait = self._last_heat_write + COALESCE_S - now
            if wait > 0:
                loop = asyncio.get_running_loop()
                self._trailing = loop.call_later(wait, self._write_desired, False)
                return
            self._last_heat_write = now
        elif wanted > 0:
            self._last_heat_write = time.monotonic()
        point = self.set_point()
        if link.send_target(point) and not link.reports_settings:
            self._assume_accepted(point)
            self._schedule_reassert()

    def _assume_accepted(self, wanted: float) -> None:
        """The stock WebSocket echoes nothing: what it accepted is what was written."""
        before = self._observed()
        if wanted > 0:
            self.work_on = True
            self.mode = MODE_ON
            self.device_target = float(device_degrees(wanted))
        else:
            self.work_on = False  # its set point stays what it was
        if self._observed() != before:
            self._changed()

    def _schedule_reassert(self) -> None:
        self._cancel(self._reassert_timer)
        self._reassert_timer = asyncio.get_running_loop().call_later(
            self.reassert_interval, self._reassert
        )

    def _reassert(self) -> None:
        """The device may have been changed where we cannot see it: write it again."""
        self._reassert_timer = None
        link = self.link
        if link is None or not link.is_up() or not self._synced_since_connect:
            return
        if self.drying is not None:
            # Re-sending the drying start would restart its countdown; the
            # stock WebSocket shows no end, so it is over when it should be.
            remaining = self.drying.remaining(time.monotonic())
            if remaining is None or remaining > 0:
                self._schedule_reassert()
                return
            self._end_drying("drying ended (its time is up)")
        self.reasserts += 1
        self._write_desired(urgent=True)

    @staticmethod
    def _cancel(handle: asyncio.TimerHandle | None) -> None:
        if handle is not None:
            handle.cancel()

    def describe(self) -> dict[str, Any]:
        """This device's state for the status API."""
        info: dict[str, Any] = {
            "name": self.name,
            "heater": self.heater,
            "target": self.target,
            "requested_target": self.requested_target,
            "target_source": self.target_source,
            "max_target": self.max_target,
            "chamber_temp": self.chamber_temp,
            "ptc_temp": self.ptc_temp,
            "work_on": self.work_on,
            "mode": self.mode,
            "work_mode": self.work_mode(),
            "device_target": self.device_target,
            "heater_on": self.heater_on,
            "power": self.power(),
            "drying_remaining_s": self.drying_remaining_s,
            "filter": self.filter_on,
            "faults": dict(self.faults),
            "online": self.online,
            "uncommanded_heating_events": self.uncommanded_heating_events,
            "last_event": self.last_event,
            "outside_changes": self.outside_changes,
            "last_outside_change": self.last_outside_change,
            "reasserts": self.reasserts,
            "drying": None if self.drying is None else self.drying.describe(time.monotonic()),
            "external_control": self.external_control,
            "set_point": self.set_point(),
            "temperature_offset": self.temperature_offset,
            "chamber_sensor": self.chamber_sensor,
            "printer_temp": self.printer_temp,
            "regulation": None if self.regulator is None else {
                "correction": self.regulator.correction,
                "gradient": self.regulator.gradient,
            },
        }
        if self.link is not None:
            info.update(self.link.describe())
        return info
