"""What a user asks of the device beside a target: drying, filtration, clearing a fault.

Requests, not desired state: Moonraker's power devices, Klipper macros
(remote methods) and the clear-fault endpoint make them, the device may undo
them (its buttons, a fault, a reboot), and the controller's mirror follows
what the device then reports.  A request that cannot be carried out now
raises with the reason (``DryingError``, ``FilterError``) or returns it.

Right after the link comes up the status already says ``connected`` while
the device's first state is still on its way (``sync``); a request made then
waits for it (``first_state``, at most ``FIRST_STATE_WAIT_S``) instead of
being refused, and a refusal names its true reason (``not_ready``).
"""

from __future__ import annotations

import asyncio
import logging

from .controller import KLIPPER_GRACE_S, DeviceController
from .filtration import request_filter
from .link import clock
from .sync import SNAPSHOT_WAIT_S

#: The longest a request waits for the device's first state on a new connection.
FIRST_STATE_WAIT_S = SNAPSHOT_WAIT_S + 1.0


class UserRequests:
    """The requests one device's controller carries out for its users."""

    def __init__(self, controller: DeviceController) -> None:
        self.controller = controller

    async def first_state(self) -> None:
        """While the link is up but the device's first state is on its way, wait (bounded)."""
        c = self.controller
        if c.link is None or not c.link.is_up() or c.sync.synced:
            return
        try:
            await asyncio.wait_for(c.sync.settled(), FIRST_STATE_WAIT_S)
        except asyncio.TimeoutError:
            pass

    def not_ready(self, synced: bool = True) -> str | None:
        """Why the device cannot take a request now, or None; ``synced``: the request
        needs the connection's sync (Klipper's target known and written), not just a link."""
        c = self.controller
        link = c.link
        if link is None:
            return "the device has no link"
        if not link.is_up():
            since = link.down_since
            return "the device is not reachable%s%s" % (
                " since " + clock(since) if since else "",
                " (%s)" % link.last_error if link.last_error else "")
        if c.sync.synced or not synced:
            return None
        if not c.target_known:
            return ("Klipper has not said the chamber's target yet (after start-up the bridge "
                    "waits up to %.0f s for it)" % KLIPPER_GRACE_S)
        return ("the device's first state has not arrived %.0f s after it connected"
                % FIRST_STATE_WAIT_S)

    def start_drying(self, temperature: int, hours: int) -> None:
        """Start the device's drying cycle; DryingError says why it cannot be done now."""
        c = self.controller
        c.note(c.dryer.start(c.link, c.target, c.faults, self.not_ready(), temperature, hours))

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
        event = request_filter(c.link, on, c.device_target, self.not_ready(synced=False))
        logging.info("panda_breath [%s]: %s", c.name, event)
        c.note(event)

    def clear_fault(self) -> str | None:
        """The user clears a latched device fault: the device is Klipper's again.

        Klipper's target is written once the device reports the fault gone.
        None when asked; else why it was not.
        """
        c = self.controller
        if c.link is None or not c.link.arbitrates:
            return "this firmware clears its faults by itself"
        why = self.not_ready(synced=False)
        if why is not None:
            return why
        if not c.link.clear_fault():
            return "the device's link closed as the request was sent"
        c.arbitration.release()
        c.note("fault clear requested by the user")
        return None
