"""Reconnect pacing: quick retries through a short outage, then a capped, jittered wait.

A device that restarts or blinks off the LAN is usually back within a minute,
and a LAN connect is cheap; so for ``quick_for`` seconds from the first
failure every wait is ``first`` (the device is in Klipper's state within a
fraction of a second of answering again).  Only a device that stays away
longer is tried less and less often, every ``cap`` seconds at most, never in
a storm; the jitter keeps several bridges from retrying in lock-step.
Attempts are sequential (one connect at a time), so a connect that times out
(bad Wi-Fi) spaces them by itself.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    def __init__(
        self, first: float = 0.25, cap: float = 5.0, factor: float = 2.0,
        rng: random.Random | None = None, quick_for: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if first <= 0 or cap < first or factor < 1 or quick_for < 0:
            raise ValueError("backoff needs 0 < first <= cap, factor >= 1 and quick_for >= 0")
        self.first = first
        self.cap = cap
        self.factor = factor
        self.quick_for = quick_for
        self.attempts = 0
        self._rng = rng or random.Random()
        self._clock = clock
        #: When the first wait of this outage was asked for (None: no outage yet).
        self._outage_since: float | None = None
        self._quick_attempts = 0

    def next_delay(self) -> float:
        """The wait before the next attempt: half to all of the current step."""
        now = self._clock()
        if self._outage_since is None:
            self._outage_since = now
        if now - self._outage_since < self.quick_for:
            step = self.first
            self._quick_attempts += 1
        else:  # grows from ``first`` again once the quick ones are over
            step = min(self.cap, self.first * self.factor ** max(
                0, self.attempts - self._quick_attempts))
        self.attempts += 1
        return step * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Call after a connection that worked, so the next drop retries quickly."""
        self.attempts = 0
        self._quick_attempts = 0
        self._outage_since = None
