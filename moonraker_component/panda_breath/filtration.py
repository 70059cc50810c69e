"""Filtration: the device's blower alone, switched on request (firmwares that have it).

A request, not desired state: the device's buttons, its web page, a fault or
a reboot may change it, and the mirror's ``filter_on`` follows the device.
"""

from __future__ import annotations

from .link import DeviceLink


class FilterError(Exception):
    """A filtration request that cannot be carried out now; the message says why."""


def request_filter(link: DeviceLink | None, on: bool, device_target: float | None,
                   not_ready: str | None) -> str:
    """Ask the device to run or stop its blower; returns the event, FilterError says why not
    (``not_ready``: why the device cannot take a request, if it cannot).

    The device refuses "on" while it heats (its blower then serves the
    heater), so that is refused here at once, where the user can see it.
    """
    if link is None or not link.supports_filter:
        raise FilterError("this firmware has no filtration the bridge can switch")
    if not_ready is not None:
        raise FilterError(not_ready)
    if on and (device_target or 0.0) > 0:
        raise FilterError("the device heats now and its blower serves the heater; "
                          "switch filtration on when it does not heat")
    if not link.send_filter(on):
        raise FilterError("the device's link closed as the request was sent")
    return "filtration %s requested" % ("on" if on else "off")
