"""The device as others see it, read off its controller.

Klipper's heater shows a power (0.0 or 1.0); HelixScreen's Panda Breath
panel reads who runs the heat in the stock firmware's ``work_mode`` numbers;
``/server/panda_breath/status`` shows everything the bridge knows.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .model import MODE_AUTO, MODE_DRYING, MODE_ON

if TYPE_CHECKING:
    from .controller import DeviceController

#: ``work_mode`` values (the stock firmware's own numbering, and 0 for none).
WORK_MODE_IDLE = 0
WORK_MODE_DEVICE = 1
WORK_MODE_KLIPPER = 2
WORK_MODE_DRYING = 3


def power(controller: DeviceController) -> float:
    """The heater's output as Klipper shows it (0.0 or 1.0).

    The relay state where the firmware reports it (ESPHome's climate
    action); otherwise the device's commanded state: on, in a heating
    mode, and below its set point (stock WebSocket and v1.0.4 MQTT).
    """
    if controller.faults:
        return 0.0
    if controller.heater_on is not None:
        return 1.0 if controller.heater_on else 0.0
    if not (controller.work_on and controller.mode in (MODE_ON, MODE_DRYING)):
        return 0.0
    if controller.chamber_temp is None or controller.device_target is None:
        return 0.0
    return 1.0 if controller.chamber_temp < controller.device_target else 0.0


def work_mode(controller: DeviceController) -> int:
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
    if not controller.is_device_heating():
        return WORK_MODE_IDLE
    if controller.drying is not None:
        return WORK_MODE_DRYING
    if (controller.external_control is not None or controller.mode == MODE_AUTO
            or controller.effective_target() == 0):
        return WORK_MODE_DEVICE
    return WORK_MODE_KLIPPER


def status(controller: DeviceController) -> dict[str, Any]:
    """The device's state for the status API."""
    drying = controller.drying
    info: dict[str, Any] = {
        "name": controller.name,
        "heater": controller.heater,
        "target": controller.target,
        "requested_target": controller.requested_target,
        "target_source": controller.target_source,
        "max_target": controller.max_target,
        "work_mode": controller.work_mode(),
        "power": controller.power(),
        "last_event": controller.last_event,
        "drying": None if drying is None else drying.describe(time.monotonic()),
        "set_point": controller.set_point(),
    }
    info.update(controller.describe_device())
    info.update(controller.arbitration.describe())
    info.update(controller.chamber.describe())
    if controller.link is not None:
        info.update(controller.link.describe())
    return info
