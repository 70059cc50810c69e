"""The outage notice's rule under any pattern of drops (issue 20), on a simulated clock.

The end-to-end test (test_e2e_notices) shows one flapping minute through the
real stack; this one lets hypothesis pick the drops (how long out, how long
back) and checks what must hold whatever the network does: start and end
lines alternate, at most three outage notices start in any minute, every
outage longer than ``offline_warning_delay`` is shown, and none is left once
the device has stayed reachable.
"""

from __future__ import annotations

import time as real_time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from panda_breath import device_notices
from panda_breath.device_notices import FLAP_QUIET_S, DeviceNotices
from panda_breath.notices import Notices

WALL_OFFSET = 1.7e9


class SimulatedLoop:
    """The clock and Moonraker's ``delay_callback``, run by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[list[Any]] = []  # [at, callback, cancelled]

    def delay_callback(self, delay: float, callback: Callable[[], None]) -> Any:
        timer = [self.now + delay, callback, False]
        self.timers.append(timer)
        return SimpleNamespace(cancel=lambda: timer.__setitem__(2, True))

    def run_until(self, until: float) -> None:
        while True:
            due = [t for t in self.timers if not t[2] and t[0] <= until]
            if not due:
                break
            timer = min(due, key=lambda t: t[0])
            self.timers.remove(timer)
            self.now = timer[0]
            timer[1]()
        self.now = until


class Server:
    def __init__(self, loop: SimulatedLoop) -> None:
        self.loop = loop
        self.console: list[tuple[float, str]] = []

    def get_event_loop(self) -> SimulatedLoop:
        return self.loop

    def send_event(self, event: str, line: str) -> None:
        assert event == "server:gcode_response"
        self.console.append((self.loop.now, line))


def notices_on(loop: SimulatedLoop, delay: float) -> tuple[DeviceNotices, Any, Server]:
    server = Server(loop)
    cfg = SimpleNamespace(name="panda_breath", section="panda_breath",
                          offline_warning_delay=delay)
    link = SimpleNamespace(down_since=None, last_error="connect failed", arbitrates=False)
    controller = SimpleNamespace(target=0.0, fault_text=lambda: "")
    device = DeviceNotices(Notices(server), cfg, link, controller,  # type: ignore[arg-type]
                           lambda: "heater_panda_breath chamber")
    return device, link, server


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    delay=st.sampled_from([5.0, 30.0]),
    drops=st.lists(st.tuples(st.floats(0.05, 90.0), st.floats(0.05, 90.0)),
                   min_size=1, max_size=40),
)
# Back just long enough to end a notice, then out again: the worst pattern.
@example(delay=5.0, drops=[(6.0, 0.1)] + [(0.1, 5.2)] * 12)
@example(delay=30.0, drops=[(31.0, 0.1)] + [(0.1, 30.2)] * 6)
def test_any_pattern_of_drops_is_one_entry_at_a_time_and_never_a_flood(
    delay: float, drops: list[tuple[float, float]]
) -> None:
    loop = SimulatedLoop()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(device_notices, "time", SimpleNamespace(
            monotonic=lambda: loop.now, time=lambda: WALL_OFFSET + loop.now,
            strftime=real_time.strftime, localtime=real_time.localtime))
        server = run_drops(loop, delay, drops)
    check_console(server)


def run_drops(loop: SimulatedLoop, delay: float, drops: list[tuple[float, float]]) -> Server:
    device, link, server = notices_on(loop, delay)
    key = device.keys["offline"]
    device.update()
    for down_for, up_for in drops:
        link.down_since = WALL_OFFSET + loop.now
        device.update()
        loop.run_until(loop.now + down_for)
        if down_for > delay + 0.1:
            assert device.notices.holds(key), "an outage past the delay not shown"
        link.down_since = None
        device.update()
        loop.run_until(loop.now + up_for)
    loop.run_until(loop.now + max(delay, FLAP_QUIET_S) + 0.2)
    assert not device.notices.holds(key), "an entry left after the device stayed back"
    return server


def check_console(server: Server) -> None:
    lines = [(at, line) for at, line in server.console]
    kinds = ["start" if line.startswith("!! ") else "end" for _, line in lines]
    assert kinds == ["start", "end"] * (len(kinds) // 2), kinds
    starts = [at for at, line in lines if line.startswith("!! ")]
    for i, at in enumerate(starts):
        in_a_minute = [s for s in starts[i:] if s < at + 60.0]
        assert len(in_a_minute) <= 3, starts
