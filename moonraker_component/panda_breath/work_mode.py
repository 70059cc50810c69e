"""Who runs the heat, in the stock firmware's ``work_mode`` numbers (HelixScreen reads them).

0: nothing heats, 1: the device itself (AUTO) or another controller, 2:
Klipper's target, 3: a drying cycle.  Heat while Klipper's target is 0 is
not Klipper's.  0 is ours (the device keeps its last mode): with it, every
switch on or off changes this field together with ``work_on``, and
HelixScreen reads its badge only from a status frame that carries both.
"""

from __future__ import annotations

from .mirror import DeviceMirror
from .model import MODE_AUTO

WORK_MODE_IDLE = 0
WORK_MODE_DEVICE = 1
WORK_MODE_KLIPPER = 2
WORK_MODE_DRYING = 3


def work_mode(device: DeviceMirror, drying: bool, external_control: bool,
              klipper_target: float) -> int:
    """The ``work_mode`` for what ``device`` reports, given who asked for what."""
    # What the device reports first: a mode asked for but not yet taken
    # stays 0, and changes together with work_on when the device takes it.
    if not device.is_device_heating():
        return WORK_MODE_IDLE
    if drying:
        return WORK_MODE_DRYING
    if external_control or device.mode == MODE_AUTO or klipper_target == 0:
        return WORK_MODE_DEVICE
    return WORK_MODE_KLIPPER
