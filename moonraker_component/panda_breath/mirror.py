"""What the device last said, field by field, whatever link it came over.

Each ``DeviceReport`` carries only what its message held (None: not said);
the mirror keeps the latest value of each field (``MIRRORED``) and the
device's faults, and answers what that means: does it heat, what is wrong.
"""

from __future__ import annotations

import logging
from typing import Any

from .model import MODE_DRYING, MODE_ON, MODE_STANDBY, DeviceReport

#: ``DeviceReport`` field -> the mirror's attribute for it.
MIRRORED = (
    ("chamber_temp", "chamber_temp"),
    ("ptc_temp", "ptc_temp"),
    ("work_on", "work_on"),
    ("mode", "mode"),
    ("device_target", "device_target"),
    ("heater_on", "heater_on"),
    ("drying_remaining_s", "drying_remaining_s"),
    ("filter_requested", "filter_on"),
    ("online", "online"),
)


class DeviceMirror:
    """The device's last reported state; ``DeviceController`` builds on it."""

    def __init__(self, name: str) -> None:
        self.name = name
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
        self.online: bool | None = None
        #: Sensor or heater faults, e.g. {"chamber_sensor": "open circuit"}.
        self.faults: dict[str, str] = {}

    def absorb(self, report: DeviceReport) -> tuple[bool, bool]:
        """Take in what ``report`` says: (anything shown changed, the faults came or went)."""
        before = self._observed()
        for field, attribute in MIRRORED:
            value = getattr(report, field)
            if value is not None:
                setattr(self, attribute, value)
        faults_moved = False
        if report.faults is not None:
            if report.faults and report.faults != self.faults:
                logging.warning(
                    "panda_breath [%s]: device reports %s; keeping it off", self.name,
                    ", ".join("%s %s" % item for item in sorted(report.faults.items())),
                )
            faults_moved = bool(report.faults) or bool(self.faults)
            self.faults = dict(report.faults)
        if report.chamber_temp is None and "chamber_sensor" in self.faults:
            self.chamber_temp = None  # a faulty sensor's last reading is no reading
        return self._observed() != before, faults_moved

    def _observed(self) -> tuple[Any, ...]:
        return tuple(getattr(self, attribute) for _field, attribute in MIRRORED) + (
            tuple(sorted(self.faults)),)

    def fault_text(self) -> str:
        """The device's faults in one line ("" when there are none)."""
        return ", ".join("%s: %s" % item for item in sorted(self.faults.items()))

    def is_device_heating(self) -> bool:
        """Whether the device, as last reported, heats or may heat on its own."""
        return bool(self.heater_on) or bool(self.work_on and self.mode != MODE_STANDBY)

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

    def describe_device(self) -> dict[str, Any]:
        """The mirrored fields under their status API names."""
        info = {attribute: getattr(self, attribute) for _field, attribute in MIRRORED}
        info["filter"] = info.pop("filter_on")
        info["faults"] = dict(self.faults)
        info["power"] = self.power()
        return info
