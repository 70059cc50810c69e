"""A Moonraker power device per Panda Breath: its drying cycle, from every UI.

Power devices show in Mainsail, Fluidd, KlipperScreen and Home Assistant's
Moonraker integration and have an HTTP API (``/machine/device_power/*``), so
drying filament needs no G-code: on starts the device's own drying cycle
with the section's ``drying_temperature`` and ``drying_hours``, off stops
it.  The state follows the device: a run started at the device shows as on,
one that ends (its timer, a fault, Klipper taking the chamber, a shutdown)
shows as off.

Klipper macros (``PANDA_BREATH_DRY_START TEMP= HOURS=``, which HelixScreen
sends) reach the same cycle through a remote method; ``drying_request``
checks what they carry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .controller import DeviceController, DryingError
from .model import DRYING_HOURS_RANGE, DRYING_TEMP_RANGE

if TYPE_CHECKING:
    from moonraker.confighelper import ConfigHelper

#: The ``type`` Moonraker reports for these devices.
DEVICE_TYPE = "panda_breath"


def drying_request(temperature: Any, hours: Any) -> tuple[int, int]:
    """A macro's TEMP and HOURS as whole numbers in range; DryingError says what is wrong."""
    values = []
    for name, value, (low, high) in (("temperature", temperature, DRYING_TEMP_RANGE),
                                     ("hours", hours, DRYING_HOURS_RANGE)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DryingError("drying %s must be a whole number from %d to %d, not %r"
                              % (name, low, high, value))
        values.append(value)
    return values[0], values[1]


def device_name(section_name: str) -> str:
    """``Panda Breath drying``, or ``Panda Breath NAME drying`` for ``[panda_breath NAME]``."""
    return "Panda Breath drying" if section_name == "panda_breath" else (
        "Panda Breath %s drying" % section_name
    )


def create_drying_device(
    config: ConfigHelper, controller: DeviceController, name: str, temperature: int, hours: int
) -> Any:
    """A ``PowerDevice`` of Moonraker's ``power`` component for ``controller``.

    Moonraker's class is imported here, at run time inside Moonraker, so the
    rest of the component (and its tests) does not depend on it.
    """
    from moonraker.components.power import PowerDevice

    class DryingPowerDevice(PowerDevice):
        def __init__(self, cfg: ConfigHelper) -> None:
            super().__init__(cfg)
            self.state = "on" if controller.drying is not None else "off"

        def refresh_status(self) -> None:
            self.state = "on" if controller.drying is not None else "off"

        def set_power(self, state: str) -> None:
            if state == "on":
                try:
                    controller.start_drying(temperature, hours)
                except DryingError as exc:
                    raise self.server.error(f"{name}: {exc}", 409) from None
            else:
                controller.stop_drying()
            self.refresh_status()

        def sync(self) -> None:
            """The controller's drying state changed: tell the UIs if ours did."""
            before = self.state
            self.refresh_status()
            if self.state != before:
                logging.info("panda_breath: power device '%s' now %s", name, self.state)
                self.notify_power_changed()

    section = config.read_supplemental_dict(
        {f"power {name}": {"type": DEVICE_TYPE, "locked_while_printing": "False"}}
    )
    return DryingPowerDevice(section)
