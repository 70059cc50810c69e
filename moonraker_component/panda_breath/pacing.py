"""How often the desired state may be written: bursts merged, fights slowed.

Klipper may change a target many times a second (a macro ramping it); the
device gets the first and the latest of a burst, at most one heating write
per ``COALESCE_S``, while an OFF always goes out at once.  A device that keeps
contradicting us is rewritten at most once per ``CORRECTION_INTERVAL_S``: the
corrective write is delayed, never dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Heating writes closer together than this are merged into one (the latest).
COALESCE_S = 0.1
#: A device that keeps contradicting us is rewritten at most this often.
CORRECTION_INTERVAL_S = 1.0


class WritePacer:
    """Timers around one ``write(urgent)`` callback; it never writes by itself otherwise."""

    def __init__(self, write: Callable[[bool], None]) -> None:
        self._write = write
        self._last_heat_write = 0.0
        self._last_correction = 0.0
        self._trailing: asyncio.TimerHandle | None = None
        self._correction: asyncio.TimerHandle | None = None

    def admit(self, heating: bool, urgent: bool) -> bool:
        """Whether a write goes out now; a heating one too soon after the last is
        deferred to a trailing write (which replaces any pending one)."""
        _cancel(self._trailing)
        if not heating:
            return True
        now = time.monotonic()
        if not urgent:
            wait = self._last_heat_write + COALESCE_S - now
            if wait > 0:
                self._trailing = asyncio.get_running_loop().call_later(wait, self._write, False)
                return False
        self._last_heat_write = now
        return True

    def correct(self) -> None:
        """Rewrite the desired state now, or as soon as the pacing allows."""
        if self._correction is not None and not self._correction.cancelled():
            return  # one is already on its way
        wait = self._last_correction + CORRECTION_INTERVAL_S - time.monotonic()
        if wait <= 0:
            self._correct()
            return
        self._correction = asyncio.get_running_loop().call_later(wait, self._correct)

    def _correct(self) -> None:
        self._correction = None
        self._last_correction = time.monotonic()
        self._write(True)

    def stop(self) -> None:
        """The link went down: nothing pending goes out (all is resent on reconnect)."""
        _cancel(self._trailing)
        _cancel(self._correction)


def _cancel(handle: asyncio.TimerHandle | None) -> None:
    if handle is not None:
        handle.cancel()
