"""The device's own drying cycle, which the bridge starts, stops and follows.

A drying run is the device's job, like a power device: Klipper's target 0
(TURN_OFF_HEATERS, idle timeout) leaves it running, a Klipper target above 0
ends it (the print needs the chamber), and Klipper shutdown, M112, Klipper or
Moonraker going away end it.  A run started at the device is adopted rather
than switched off.  Nothing here writes the device's heat target.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .link import DeviceLink
from .model import MODE_DRYING, DeviceReport

#: After our drying command, a state still showing no drying is in flight, not an end.
DRYING_SETTLE_S = 2.0


class DryingError(Exception):
    """A drying request that cannot be carried out now; the message says why."""


@dataclass
class DryingRun:
    """A drying cycle running on the device, started by us or at the device."""

    source: str
    temperature: int | None
    hours: int | None
    remaining_s: float | None
    #: monotonic time ``remaining_s`` was known
    remaining_at: float

    def remaining(self, now: float) -> float | None:
        if self.remaining_s is None:
            return None
        return max(0.0, self.remaining_s - (now - self.remaining_at))

    def describe(self, now: float) -> dict[str, Any]:
        remaining = self.remaining(now)
        return {
            "source": self.source,
            "temperature": self.temperature,
            "hours": self.hours,
            "remaining_s": None if remaining is None else round(remaining),
        }


class DryingTracker:
    """Which drying run the device is on, if any; each method returns the event to show."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.run: DryingRun | None = None
        self._sent_at = 0.0

    def start(self, link: DeviceLink | None, target: float, faults: dict[str, str],
              not_ready: str | None, temperature: int, hours: int) -> str:
        """Start the device's cycle; DryingError says why it cannot be done now
        (``not_ready``: why the device cannot take a request, if it cannot)."""
        if link is None or not link.supports_drying:
            raise DryingError("this firmware has no drying cycle the bridge can start")
        if target > 0:
            raise DryingError(
                "Klipper heats the chamber to %.0f °C; set its target to 0 first" % target
            )
        if faults:
            raise DryingError("the device reports %s" % ", ".join(sorted(faults)))
        if not_ready is not None:
            raise DryingError(not_ready)
        if not link.send_drying(temperature, hours):
            raise DryingError("the device's link closed as the request was sent")
        now = time.monotonic()
        self._sent_at = now
        self.run = DryingRun("Moonraker", temperature, hours, hours * 3600.0, now)
        return self._log("drying started: %d °C for %d h" % (temperature, hours))

    def end(self, event: str) -> str:
        self.run = None
        return self._log(event)

    def track(self, report: DeviceReport, may_adopt: bool) -> str | None:
        """Adopt a run started at the device (when ``may_adopt``); notice when one ends."""
        running = report.drying
        if running is None and report.mode is not None and report.work_on is not None:
            running = report.mode == MODE_DRYING and report.work_on
        if running is None:
            return None
        now = time.monotonic()
        if running:
            if self.run is None and may_adopt:
                self.run = DryingRun("device", None, None, report.drying_remaining_s, now)
                return self._log("drying started at the device; adopted")
            if self.run is not None and report.drying_remaining_s is not None:
                self.run.remaining_s = report.drying_remaining_s
                self.run.remaining_at = now
        elif self.run is not None and now - self._sent_at >= DRYING_SETTLE_S:
            return self.end("drying ended")
        return None

    def describe(self) -> dict[str, Any]:
        run = self.run
        return {"drying": None if run is None else run.describe(time.monotonic())}

    def _log(self, event: str) -> str:
        logging.info("panda_breath [%s]: %s", self.name, event)
        return event
