"""Moonraker power devices per Panda Breath: its drying cycle and its filtration.

Power devices show in Mainsail, Fluidd, KlipperScreen and Home Assistant's
Moonraker integration and have an HTTP API (``/machine/device_power/*``) and
a remote method (``set_device_power``), so neither needs G-code of its own.

- "Panda Breath drying": on starts the device's own drying cycle with the
  section's ``drying_temperature`` and ``drying_hours``, off stops it.
  Klipper macros (``PANDA_BREATH_DRY_START TEMP= HOURS=``, which HelixScreen
  sends) reach the same cycle through a remote method; ``drying_request``
  checks what they carry.
- "Panda Breath filter" (firmwares with a blower of their own, DragonBreath):
  on runs the blower alone, off stops it.

Each state follows the device: a run started at the device shows as on, one
that ends (its timer, a fault, Klipper taking the chamber, a reboot) shows
as off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .controller import DeviceController
from .drying import DryingError
from .filtration import FilterError

if TYPE_CHECKING:
    from moonraker.confighelper import ConfigHelper

    from .config import DeviceConfig
    from .user_requests import UserRequests

#: The ``type`` Moonraker reports for these devices.
DEVICE_TYPE = "panda_breath"


def drying_request(
    temperature: Any, hours: Any, temp_range: tuple[int, int], hours_range: tuple[int, int]
) -> tuple[int, int]:
    """A macro's TEMP and HOURS as whole numbers within the firmware's ranges
    (``config.drying_ranges``); DryingError says what is wrong."""
    values = []
    for name, value, (low, high) in (("temperature", temperature, temp_range),
                                     ("hours", hours, hours_range)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DryingError("drying %s must be a whole number from %d to %d, not %r"
                              % (name, low, high, value))
        values.append(value)
    return values[0], values[1]


def device_name(section_name: str, what: str) -> str:
    """``Panda Breath drying``, or ``Panda Breath NAME drying`` for ``[panda_breath NAME]``."""
    if section_name == "panda_breath":
        return "Panda Breath %s" % what
    return "Panda Breath %s %s" % (section_name, what)


def create_drying_device(
    config: ConfigHelper, controller: DeviceController, requests: UserRequests, name: str,
    temperature: int, hours: int,
) -> Any:
    """The drying cycle of ``controller`` as a power device."""
    def switch(on: bool) -> None:
        if on:
            requests.start_drying(temperature, hours)
        else:
            requests.stop_drying()

    return _create(config, name, lambda: controller.drying is not None, switch,
                   requests.first_state)


def create_filter_device(
    config: ConfigHelper, controller: DeviceController, requests: UserRequests, name: str,
) -> Any:
    """The filtration of ``controller`` as a power device."""
    return _create(config, name, lambda: bool(controller.filter_on), requests.set_filter,
                   requests.first_state)


def _create(
    config: ConfigHelper, name: str, is_on: Callable[[], bool], switch: Callable[[bool], None],
    first_state: Callable[[], Awaitable[None]],
) -> Any:
    """A ``PowerDevice`` of Moonraker's ``power`` component showing ``is_on``.

    ``switch`` raises DryingError or FilterError when the request cannot be
    carried out; the UI that sent it gets the message as a 409.  A request
    made while the device's first state is on its way waits for it
    (``first_state``; Moonraker awaits a coroutine ``set_power``).  Moonraker's
    class is imported here, at run time inside Moonraker, so the rest of the
    component (and its tests) does not depend on it.
    """
    from moonraker.components.power import PowerDevice

    class PandaBreathPowerDevice(PowerDevice):
        def __init__(self, cfg: ConfigHelper) -> None:
            super().__init__(cfg)
            self.refresh_status()

        def refresh_status(self) -> None:
            self.state = "on" if is_on() else "off"

        async def set_power(self, state: str) -> None:
            await first_state()
            try:
                switch(state == "on")
            except (DryingError, FilterError) as exc:
                raise self.server.error(f"{name}: {exc}", 409) from None
            self.refresh_status()

        def sync(self) -> None:
            """The controller's state changed: tell the UIs if ours did."""
            before = self.state
            self.refresh_status()
            if self.state != before:
                logging.info("panda_breath: power device '%s' now %s", name, self.state)
                self.notify_power_changed()

    section = config.read_supplemental_dict(
        {f"power {name}": {"type": DEVICE_TYPE, "locked_while_printing": "False"}}
    )
    return PandaBreathPowerDevice(section)


async def add_power_device(
    server: Any, power: Any, cfg: DeviceConfig, kind: str, what: str,
    create: Callable[..., Any],
) -> Any:
    """Moonraker's power device ``kind`` for ``cfg``'s device; None (and a warning) if it failed."""
    name = device_name(cfg.name, kind)
    try:
        power_device = create(name=name)
        await power.add_device(name, power_device)
    except Exception as exc:  # noqa: BLE001 - optional; heating goes on
        logging.exception("panda_breath [%s]: power device not added", cfg.name)
        server.add_warning(
            f"[{cfg.section}]: the power device '{name}' could not be added "
            f"({exc}); {what} from the UIs is not available.",
            warn_id=f"panda_breath_{kind}_{cfg.name}",
        )
        return None
    return power_device
