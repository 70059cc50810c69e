"""The sessions the bridge holds open at the device, counted apart from everyone else's.

A device serves only a few clients (stock: seven WebSocket clients in all,
its web page and phone app among them; DragonBreath: two event streams, its
dashboard takes one), so a session the bridge forgets locks others out.  The
bridge names itself in its ``User-Agent``; the simulator keeps how many such
sessions are open now, the most that were open at once and the longest time
more than one was open (exact, not sampled) since the last
``reset_session_peak``.  After a stall, a connection the bridge gave up on
arrives with its close: the device opens and ends it at once, which shows as
a second session for a fraction of a second.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

#: The component's User-Agent (``panda_breath.link.USER_AGENT``).
BRIDGE_AGENT = "moonraker-panda-breath"


def is_bridge(user_agent: str | None) -> bool:
    return bool(user_agent) and str(user_agent).startswith(BRIDGE_AGENT)


class BridgeSessions:
    """Open bridge sessions (WebSocket clients or event streams) and their peak."""

    def __init__(self) -> None:
        self.open: dict[Hashable, float] = {}
        self.peak = 0
        self.peak_at: float | None = None
        self.opened_total = 0
        #: Since when more than one has been open (monotonic), and the longest such time.
        self._several_since: float | None = None
        self.several_longest = 0.0

    def opened(self, key: Hashable) -> None:
        self.open[key] = time.time()
        self.opened_total += 1
        if len(self.open) > self.peak:
            self.peak, self.peak_at = len(self.open), time.time()
        if len(self.open) > 1 and self._several_since is None:
            self._several_since = time.monotonic()

    def closed(self, key: Hashable) -> None:
        self.open.pop(key, None)
        if len(self.open) <= 1 and self._several_since is not None:
            self.several_longest = max(self.several_longest,
                                       time.monotonic() - self._several_since)
            self._several_since = None

    def reset_peak(self) -> dict[str, Any]:
        self.peak, self.peak_at = len(self.open), None
        self.several_longest = 0.0
        self._several_since = time.monotonic() if len(self.open) > 1 else None
        return self.state()

    def state(self) -> dict[str, Any]:
        now = time.time()
        several = self.several_longest
        if self._several_since is not None:
            several = max(several, time.monotonic() - self._several_since)
        return {
            "bridge_sessions": len(self.open),
            "bridge_sessions_peak": self.peak,
            "bridge_sessions_peak_at": self.peak_at,
            "bridge_sessions_opened": self.opened_total,
            "bridge_sessions_several_longest": round(several, 3),
            # How long each open one has lived: an orphan is one that keeps living.
            "bridge_session_ages": sorted(round(now - t, 3) for t in self.open.values()),
        }
