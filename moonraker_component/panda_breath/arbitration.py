"""Who has the device: Klipper, another controller, or a change nobody asked for.

The controller undoes what contradicts Klipper's state; this module says
what contradicts it, counts and words the changes made outside Klipper, and,
on firmwares that arbitrate between controllers themselves (DragonBreath),
notices when another controller took the device so it is left alone until
Klipper's next target.  Nothing here writes to the device.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .link import DeviceLink
from .model import MODE_ON, DeviceReport

#: Who changed the device, as far as the bridge can tell.
BY_DEVICE = (
    "changed at the device while connected (front panel, its web UI, Home Assistant "
    "or another client)"
)
BY_RECONNECT = (
    "found on (re)connecting: changed while out of reach (a reboot or power cut, the "
    "front panel, its web UI or another client)"
)
#: A device that keeps fighting back with the same change is logged at most this often.
REPEAT_LOG_S = 60.0


def differences(report: DeviceReport, wanted: float, set_point: float) -> dict[str, Any]:
    """What ``report`` shows against ``wanted`` (at ``set_point``): field -> device's value."""
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


class Arbitration:
    """Changes made outside Klipper, and who else controls the device now."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: Who else controls the device now, on firmwares that arbitrate
        #: (DragonBreath): the bridge waits for Klipper's next target.
        self.external_control: str | None = None
        self.uncommanded_heating_events = 0
        #: Changes made outside Klipper that were undone, and the latest one.
        self.outside_changes = 0
        self.last_outside_change: dict[str, Any] | None = None

    def release(self, why: str | None = None) -> None:
        """The device is Klipper's again (``why`` is logged when another controller had it)."""
        if self.external_control is not None and why is not None:
            logging.info("panda_breath [%s]: %s takes the device back from %s",
                         self.name, why, self.external_control)
        self.external_control = None

    def someone_else_took(self, link: DeviceLink | None, report: DeviceReport) -> str | None:
        """On a firmware that arbitrates, a state changed by another controller
        (its buttons, web page, Home Assistant, its AUTO mode, its safety) is
        the device's decision: shown, not undone, until Klipper's next target.
        Returns the event when that controller is new."""
        if link is None or not link.arbitrates:
            return None
        source = report.source
        if source is not None and source == link.own_source:
            # The device's latest change is ours (the link drops snapshots
            # older than one it has seen): nobody else controls it now, even
            # if a snapshot taken before our write said so after a release.
            self.external_control = None
            return None
        if source is None or source == "boot" or source == self.external_control:
            return None
        self.external_control = source
        event = "%s took control of the device; Klipper's next target takes it back" % source
        logging.info("panda_breath [%s]: %s", self.name, event)
        return event

    def found_on_reconnect(self, snapshot: DeviceReport | None, wanted: float,
                           set_point: float, drying: bool, heating: bool) -> str | None:
        """What a (re)connection found that Klipper did not ask for: the event, if any."""
        if wanted == 0 and drying:
            return None  # a drying run, adopted or ours: not uncommanded heat
        if wanted == 0 and heating:
            return self.uncommanded_heating(BY_RECONNECT)
        if snapshot is None:
            return None
        changed = differences(snapshot, wanted, set_point)
        return self.outside_change(changed, BY_RECONNECT, wanted) if changed else None

    def seen_while_connected(self, report: DeviceReport, wanted: float,
                             set_point: float) -> str | None:
        """What ``report`` shows that Klipper did not ask for, counted: the event, if any."""
        changed = differences(report, wanted, set_point)
        if not changed:
            return None
        if wanted == 0:
            return self.uncommanded_heating(BY_DEVICE)
        return self.outside_change(changed, BY_DEVICE, wanted)

    def outside_change(self, changed: dict[str, Any], by: str, restored: float) -> str:
        """Count a change made outside Klipper that is being undone; returns the event."""
        previous = self.last_outside_change
        now = time.time()
        repeated = (previous is not None and previous["changed"] == changed
                    and now - previous["time"] < REPEAT_LOG_S)
        self.outside_changes += 1
        self.last_outside_change = {
            "time": now, "changed": changed, "by": by, "restored_target": restored,
        }
        event = "device changed outside Klipper (%s); restored" % ", ".join(
            "%s=%s" % item for item in sorted(changed.items())
        )
        if not repeated:
            logging.info("panda_breath [%s]: %s; %s", self.name, event, by)
        return event

    def uncommanded_heating(self, by: str) -> str:
        """Count heat while Klipper's target is 0 (being switched off); returns the event."""
        self.uncommanded_heating_events += 1
        self.last_outside_change = {
            "time": time.time(), "changed": {"work_on": True}, "by": by, "restored_target": 0.0,
        }
        logging.warning(
            "panda_breath [%s]: device was heating while Klipper's target is 0 (saved "
            "heat restored after a power cycle, its front panel, or another client); "
            "switching it off",
            self.name,
        )
        return "uncommanded heating switched off"

    def describe(self) -> dict[str, Any]:
        return {
            "uncommanded_heating_events": self.uncommanded_heating_events,
            "outside_changes": self.outside_changes,
            "last_outside_change": self.last_outside_change,
            "external_control": self.external_control,
        }
