"""What a user asks of the device beside a target: drying, filtration, clearing a fault.

Requests, not desired state: Moonraker's power devices, Klipper macros
(remote methods) and the clear-fault endpoint make them, the device may undo
them (its buttons, a fault, a reboot), and the controller's mirror follows
what the device then reports.  A request that cannot be carried out now
raises with the reason (``DryingError``, ``FilterError``) or returns False.
"""

from __future__ import annotations

import logging

from .controller import DeviceController
from .filtration import request_filter


class UserRequests:
    """The requests one device's controller carries out for its users."""

    def __init__(self, controller: DeviceController) -> None:
        self.controller = controller

    def start_drying(self, temperature: int, hours: int) -> None:
        """Start the device's drying cycle; DryingError says why it cannot be done now."""
        c = self.controller
        c.note(c.dryer.start(c.link, c.target, c.faults, c.sync.synced, temperature, hours))

    def stop_drying(self) -> None:
        """End a drying run (power device off): the device goes off."""
        c = self.controller
        if c.drying is None:
            return
        event = c.dryer.end("drying stopped")
        c.write_desired(urgent=True)
        c.note(event)

    def set_filter(self, on: bool) -> None:
        """Run the blower alone (filtration) or stop it; FilterError says why not now."""
        c = self.controller
        event = request_filter(c.link, on, c.device_target)
        logging.info("panda_breath [%s]: %s", c.name, event)
        c.note(event)

    def clear_fault(self) -> bool:
        """The user clears a latched device fault: the device is Klipper's again.

        Klipper's target is written once the device reports the fault gone.
        """
        c = self.controller
        if c.link is None or not c.link.clear_fault():
            return False
        c.arbitration.release()
        c.note("fault clear requested by the user")
        return True
