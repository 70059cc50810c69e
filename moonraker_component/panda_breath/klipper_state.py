"""What Klipper shows of one device, decided here and pushed to the extra as one state.

The Klipper extra only stores and reports this state: every field is worded
and computed here, once, from the controller.  ``helix`` is the
``panda_breath`` printer object in the shape HelixScreen's panda_breath
chamber backend reads it (integers where it reads integers); the extra adds
the heater's name and whether readings are fresh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .link import LINK_CONNECTED

if TYPE_CHECKING:
    from .controller import DeviceController


def klipper_state(controller: DeviceController, now: float) -> dict[str, Any]:
    """The state pushed with (or without) a reading; ``now`` is monotonic time."""
    link = controller.link
    link_state = link.state if link is not None else None
    fault = controller.fault_text() or None
    device_target = None if controller.device_target is None else float(controller.device_target)
    drying = controller.drying
    remaining = drying.remaining(now) if drying is not None else None
    seconds = None if remaining is None else max(0, int(round(remaining)))
    temperature = hours = None
    if drying is not None:
        temperature = None if drying.temperature is None else float(drying.temperature)
        hours = None if drying.hours is None else int(drying.hours)
    return {
        # The device's relay where the firmware reports it, else the commanded state
        "power": controller.power(),
        "heater_on": None if controller.heater_on is None else bool(controller.heater_on),
        "device_target": device_target,
        "link": link_state,
        "fault": fault,
        "external_control": controller.external_control,
        "drying": drying is not None,
        # Whole seconds: while drying, the relay pushes the countdown each second.
        "drying_remaining": None if seconds is None else float(seconds),
        # The targets the device takes; Klipper refuses others at the G-code.
        "min_target": link.min_target if link is not None else None,
        "max_target": float(controller.device_max_target),
        "helix": {
            "connected": link_state is None or link_state == LINK_CONNECTED,
            "work_mode": controller.work_mode(),
            "work_on": controller.is_device_heating(),
            "device_target": device_target,
            "fault": fault,
            "filament_drying_active": drying is not None,
            "filament_temp": temperature,
            "filament_timer": hours,
            "remaining_seconds": seconds or 0,
        },
    }
