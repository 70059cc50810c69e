"""Counters and the log of received frames, as shown by ``GET /sim/state``.

This is the simulator's own record of what clients sent (it may contain what a
client wrote; the product must never log frames, the simulator may). Each
entry says what was applied and why anything was ignored, so tests can assert
on quirks and a benchmark can measure command latency via ``last_applied_at``.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from pbsim.sessions import BridgeSessions

RECENT_FRAMES = 50
#: Payloads longer than this are summarised in the journal, not stored.
MAX_STORED_PAYLOAD = 4096


@dataclass
class Outcome:
    """What became of one received frame/message: keys applied and keys ignored (with why)."""

    applied: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # set when the frame as a whole was ignored

    def apply(self, key: str) -> None:
        self.applied.append(key)

    def ignore(self, key: str, why: str) -> None:
        self.ignored[key] = why

    def reject(self, why: str) -> None:
        self.reason = why

    @property
    def status(self) -> str:
        if self.applied:
            return "partial" if self.ignored else "applied"
        return "ignored"


class Journal:
    """Counters, recent frames and per-setting apply times."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_FRAMES)
        self.last_applied_at: dict[str, float] = {}
        #: The bridge's open sessions (WebSocket clients, event streams).
        self.sessions = BridgeSessions()

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def record(
        self,
        transport: str,
        payload: Any,
        outcome: Outcome,
        *,
        source: Any = None,
        changed: list[str] | None = None,
        raw_size: int | None = None,
    ) -> dict[str, Any]:
        """Store one received frame; ``changed`` names the settings it changed."""
        now = time.time()
        prefix = "frames" if transport == "ws" else f"{transport}_commands"
        self.count(f"{prefix}_received")
        if outcome.applied:
            self.count(f"{prefix}_applied")
        else:
            self.count(f"{prefix}_ignored")
        self.counters["keys_applied"] += len(outcome.applied)
        self.counters["keys_ignored"] += len(outcome.ignored)
        for name in changed or ():
            self.last_applied_at[name] = now
        entry: dict[str, Any] = {
            "time": now,
            "transport": transport,
            "source": source,
            "payload": _storable(payload, raw_size),
            "status": outcome.status,
            "applied": list(outcome.applied),
            "ignored": _first(outcome.ignored, 20),
        }
        if outcome.reason:
            entry["reason"] = outcome.reason
        self.recent.append(entry)
        return entry

    def snapshot(self) -> dict[str, Any]:
        return {
            "counters": dict(self.counters),
            "recent_frames": list(self.recent),
            "last_applied_at": dict(self.last_applied_at),
        }


def _first(reasons: dict[str, str], limit: int) -> dict[str, str]:
    if len(reasons) <= limit:
        return dict(reasons)
    kept = dict(list(reasons.items())[:limit])
    kept["..."] = f"{len(reasons) - limit} more keys ignored"
    return kept


def _storable(payload: Any, raw_size: int | None) -> Any:
    try:
        size = raw_size if raw_size is not None else len(json.dumps(payload))
    except (TypeError, ValueError):
        return {"_unserialisable": repr(payload)[:200]}
    if size > MAX_STORED_PAYLOAD:
        return {"_truncated": True, "size": size}
    return payload
