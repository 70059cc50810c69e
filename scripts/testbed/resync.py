"""How long after a restarted device answers again it is back in Klipper's state.

Both ends are the simulator's own clock: "answers" is its boot (it accepts
connections from then on, ``time - uptime`` in ``/sim/state``), "in sync" is
the last write from the host it had received when the wanted state was
first seen (0 when it booted in that state).  The fault suite's reboot rows,
the benchmark and the e2e test share this measure.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: How often the simulator's state is read while waiting for the device to be in sync.
POLL_S = 0.02


def host_writes(state: dict[str, Any], since: float) -> list[dict[str, Any]]:
    """Frames/commands the device received from the component after ``since`` (wall time)."""
    return [
        f for f in state.get("recent_frames", [])
        if f["time"] > since and f.get("transport") in ("ws", "mqtt", "http")
        and not str(f.get("source") or "").endswith(("/host/heartbeat", "/moonraker/status"))
    ]


def answered_at(state: dict[str, Any]) -> float:
    """When the device booted, i.e. started answering (its wall clock)."""
    return float(state["time"]) - float(state["uptime"])


def wait_in_sync(
    read_state: Callable[[], dict[str, Any]], boots_before: int,
    in_sync: Callable[[dict[str, Any]], bool], timeout: float,
) -> tuple[float | None, dict[str, Any] | None]:
    """Seconds from the new boot's first answer to ``in_sync``; None if not within ``timeout``."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        try:
            last = read_state()
        except OSError:
            last = None
        if last is not None and last["up"] and last["boot_count"] > boots_before \
                and in_sync(last):
            answered = answered_at(last)
            writes = [f["time"] for f in host_writes(last, answered)]
            return (max(writes) - answered if writes else 0.0), last
        time.sleep(POLL_S)
    return None, last


def restart_and_time_sync(
    sim: Any, in_sync: Callable[[dict[str, Any]], bool], down: float = 3.0,
    timeout: float = 10.0, **reboot: Any,
) -> float | None:
    """Reboot the simulated device for ``down`` s; seconds from answering again to in sync."""
    before = sim.state()["boot_count"]
    try:
        sim.control("reboot", down=down, **reboot)
    except OSError:
        pass  # the reboot may reset the connection asking for it
    seconds, _ = wait_in_sync(sim.state, before, in_sync, down + timeout)
    return seconds


@dataclass
class SyncTimes:
    """Answer-to-sync times of several restarts (None: never in sync within the wait)."""

    runs: list[float | None] = field(default_factory=list)

    def describe(self) -> str:
        done = [t for t in self.runs if t is not None]
        if not done:
            return f"{len(self.runs)} runs, never in sync"
        missed = len(self.runs) - len(done)
        return "median %.3f s, worst %.3f s over %d runs%s" % (
            statistics.median(done), max(done), len(self.runs),
            f", {missed} never in sync" if missed else "")

    def worst(self) -> float | None:
        return None if not self.runs or None in self.runs else max(
            t for t in self.runs if t is not None)
