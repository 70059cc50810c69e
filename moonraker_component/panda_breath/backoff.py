"""Reconnect pacing: quick first retries, then a capped, jittered wait.

A dropped connection to a live device is retried almost at once; a device
that stays away is tried every ``cap`` seconds at most, never in a storm, and
the jitter keeps several bridges from retrying in lock-step.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self, first: float = 0.25, cap: float = 5.0, factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if first <= 0 or cap < first or factor < 1:
            raise ValueError("backoff needs 0 < first <= cap and factor >= 1")
        self.first = first
        self.cap = cap
        self.factor = factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The wait before the next attempt: half to all of the current step."""
        step = min(self.cap, self.first * self.factor ** self.attempts)
        self.attempts += 1
        return step * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Call after a connection that worked, so the next drop retries quickly."""
        self.attempts = 0
