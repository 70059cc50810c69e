"""When a (re)connected device is given the whole desired state: once per connection.

The connect snapshot names the firmware version and the device's real on/off
state, so the first write waits for it (at most ``SNAPSHOT_WAIT_S``; a device
that sends none is written blind) and for Klipper's word on the target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .model import DeviceReport
from .waiters import Waiters

#: How long to wait for the connect snapshot before writing blind.
SNAPSHOT_WAIT_S = 2.0


class ConnectionSync:
    """Whether this connection was synced; ``ready`` is called whenever it may be now."""

    def __init__(self, ready: Callable[[], None]) -> None:
        self.synced = False
        self._ready = ready
        #: The device said something on this connection (or we gave up waiting).
        self._heard = False
        #: This connection's snapshot, while the sync is pending.
        self._snapshot: DeviceReport | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: Requests waiting for this connection to be synced or to end.
        self._waiters = Waiters()

    def link_up(self) -> None:
        self.link_down()
        self._heard = False
        self._snapshot = None
        self._timer = asyncio.get_running_loop().call_later(SNAPSHOT_WAIT_S, self._wait_over)

    def link_down(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.synced = False
        self._waiters.wake()

    def heard(self, report: DeviceReport) -> None:
        """The device spoke before the sync."""
        self._heard = True
        if report.snapshot:
            self._snapshot = report
        self._ready()

    def _wait_over(self) -> None:
        self._heard = True
        self._ready()

    def take(self, klipper_ready: bool) -> tuple[bool, DeviceReport | None]:
        """Sync now if not yet done, the device has spoken and ``klipper_ready``:
        (whether to, the connection's snapshot if one came)."""
        if self.synced or not (self._heard and klipper_ready):
            return False, None
        if self._timer is not None:
            self._timer.cancel()
        self.synced = True
        self._waiters.wake()
        snapshot, self._snapshot = self._snapshot, None
        return True, snapshot

    def settled(self) -> asyncio.Future[None]:
        """Done once this connection is synced or has ended: a request waits on it."""
        return self._waiters.wait(self.synced)
