"""The sessions the bridge holds open at the device, counted apart from everyone else's.

A device serves only a few clients (stock: seven WebSocket clients in all,
its web page and phone app among them; DragonBreath: two event streams, its
dashboard takes one), so a session the bridge forgets locks others out.  The
bridge names itself in its ``User-Agent``; the simulator keeps how many such
sessions are open now and the most that were open at once since the last
``reset_session_peak``.
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

    def opened(self, key: Hashable) -> None:
        self.open[key] = time.time()
        self.opened_total += 1
        if len(self.open) > self.peak:
            self.peak, self.peak_at = len(self.open), time.time()

    def closed(self, key: Hashable) -> None:
        self.open.pop(key, None)

    def reset_peak(self) -> dict[str, Any]:
        self.peak, self.peak_at = len(self.open), None
        return self.state()

    def state(self) -> dict[str, Any]:
        now = time.time()
        return {
            "bridge_sessions": len(self.open),
            "bridge_sessions_peak": self.peak,
            "bridge_sessions_peak_at": self.peak_at,
            "bridge_sessions_opened": self.opened_total,
            # How long each open one has lived: an orphan is one that keeps living.
            "bridge_session_ages": sorted(round(now - t, 3) for t in self.open.values()),
        }
