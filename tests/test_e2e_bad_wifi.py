"""A stalling Wi-Fi link between the bridge and the device leaves no session open behind it.

Real Moonraker + component, real klippy, the simulator, and ``scripts/impair.py``
between the component and the device: during a stall nothing passes and both
sockets stay open, as on a 2.4 GHz link that retransmits.  A connect given up
on must not complete later as a session nobody reads (the device serves a
handful of clients in all).  The simulator counts the bridge's sessions by
its User-Agent.  The component runs with its default timings (connect 5 s,
silence 12 s, reconnect_max_delay 5 s).
"""

from __future__ import annotations

import time
from typing import Any

from stock_device import heating_at
from testbed import wait_until
from testbed.stack import Stack

DEFAULTS: dict[str, Any] = {"silence_timeout": None, "reconnect_max_delay": None}
#: After the stall ends, the device must show at most one bridge session within this.
SETTLE_S = 2.0
#: Orphans stay open: watch this long after SETTLE_S.
WATCH_S = 6.0
#: The component's default silence_timeout (link.SILENCE_TIMEOUT_S).
SILENCE_S = 12.0
#: The stock device's frame period (the simulator's default).
FRAME_S = 2.0
#: An awful-profile stall (8 s) widened by that profile's jitter spread (0.8 s):
#: the longest silence a live link shows between two of its stalls' frames.
STALL_S = 8.8


def _stall_ended(stack: Stack) -> float:
    assert stack.impair is not None
    wait_until(lambda: not stack.impair.state()["stalled"], 60.0, 0.02, "the stall to end")
    return time.monotonic()


def _at_most_one_session(stack: Stack, ended: float) -> None:
    """Within SETTLE_S of the stall's end one bridge session at most, and so it stays."""
    time.sleep(max(0.0, ended + SETTLE_S - time.monotonic()))
    worst: dict[str, Any] = {}
    until = time.monotonic() + WATCH_S
    while time.monotonic() < until:
        state = stack.sim.state()
        if state["bridge_sessions"] > worst.get("bridge_sessions", 0):
            worst = {k: state[k] for k in ("bridge_sessions", "bridge_session_ages",
                                           "bridge_sessions_opened")}
        time.sleep(0.05)
    assert not worst or worst["bridge_sessions"] <= 1, (
        f"more than one bridge session at the device after the stall: {worst}")


def test_a_20s_stall_leaves_one_session_and_the_target_changed_in_it_arrives(
    make_stack,
) -> None:
    stack: Stack = make_stack(impair="clear", panda_options=DEFAULTS)
    assert stack.impair is not None
    stack.set_target(45)
    stack.wait_sim(heating_at(45), 5.0, "device at 45")
    time.sleep(2.5)  # a stable connection: the backoff starts from its first step
    assert stack.sim.state()["bridge_sessions"] == 1
    stack.impair.stall(20.0)
    time.sleep(3.0)
    stack.set_target(40)  # Klipper changes its target inside the stall
    ended = _stall_ended(stack)
    # The connect under way when the stall ends completes within a moment.
    stack.wait_sim(heating_at(40), 1.0 + 5.0, "device at 40 after the stall")
    _at_most_one_session(stack, ended)
    assert stack.device()["link"] == "connected"


def _next_frame(stack: Stack) -> float:
    """Wait for the device's next frame (the proxy passes it on at once); when it went."""
    def sent() -> int:
        return int(stack.sim.state()["counters"].get("frames_sent", 0))

    before = sent()
    wait_until(lambda: sent() > before, 5.0, 0.01, "the device's next frame")
    return time.monotonic()


def test_an_8s_stall_before_a_frame_keeps_the_session_and_a_dead_device_is_still_left(
    make_stack,
) -> None:
    """The silence a stall leaves is the stall plus the time since the last frame.

    An 8 s stall (with jitter) that starts just before a frame was due shows
    10.6 s of silence: under a 10 s rule the link reconnected a live device
    (a session swap and a resend, and on awful Wi-Fi targets late).  A device
    that really went silent must still be left within silence_timeout.
    """
    stack: Stack = make_stack(impair="clear", panda_options=DEFAULTS)
    assert stack.impair is not None
    stack.set_target(45)
    stack.wait_sim(heating_at(45), 5.0, "device at 45")
    time.sleep(2.5)
    reconnects = stack.device()["reconnects"]
    opened = stack.sim.state()["bridge_sessions_opened"]
    frame = _next_frame(stack)
    time.sleep(max(0.0, frame + FRAME_S - 0.2 - time.monotonic()))
    stack.impair.stall(STALL_S)
    silence = _stall_ended(stack) - frame
    time.sleep(1.0)  # the held frames arrive
    device = stack.device()
    assert silence > 10.4, silence
    assert (device["link"], device["reconnects"]) == ("connected", reconnects), (
        f"a live link reconnected after {silence:.1f} s of silence: {device['last_error']}")
    assert stack.sim.state()["bridge_sessions_opened"] == opened
    # A device that stops talking (its socket open) is left after silence_timeout.
    frame = _next_frame(stack)
    stack.sim.control("silence", seconds=60)
    try:
        wait_until(lambda: stack.device()["reconnects"] > reconnects, SILENCE_S + 5.0, 0.05,
                   "a reconnect after the silence")
        took = time.monotonic() - frame
    finally:
        stack.sim.control("silence", seconds=0)
    print(f"stall silence {silence:.2f} s kept; a silent device left {took:.2f} s after "
          "its last frame")
    assert SILENCE_S - 0.5 <= took <= SILENCE_S + 1.0, took
    stack.wait_sim(heating_at(45), 5.0, "device at 45 after the silence")


def test_three_connect_timeouts_in_a_row_leave_no_session_behind(make_stack) -> None:
    # Readings stop for over 30 s here: Klipper's stale check (rightly) would end the heat.
    stack: Stack = make_stack(impair="clear", panda_options=DEFAULTS, stale_timeout=90.0)
    assert stack.impair is not None
    stack.set_target(45)
    stack.wait_sim(heating_at(45), 5.0, "device at 45")
    time.sleep(2.5)
    accepted = stack.impair.state()["accepted"]
    stack.impair.stall(120.0)
    # The silence ends the session (12 s; its close unanswered for 5 s), then
    # three upgrades time out (5 s each): the fourth is under way when the
    # link comes back.
    wait_until(lambda: stack.impair.state()["accepted"] >= accepted + 4, 45.0, 0.05,
               "the fourth connect attempt")
    failures = stack.device()["last_error"]
    assert failures and "timed out" in failures
    stack.impair.control("clear")
    ended = _stall_ended(stack)
    _at_most_one_session(stack, ended)
    stack.wait_sim(heating_at(45), 5.0, "device at 45 after the stall")
    assert stack.device()["link"] == "connected"


def test_dragonbreath_a_20s_stall_leaves_one_event_stream(make_stack) -> None:
    """The device has two stream slots and its dashboard takes one: the bridge holds one."""
    stack: Stack = make_stack("dragonbreath", impair="clear", panda_options=DEFAULTS)
    assert stack.impair is not None
    stack.set_target(45)
    stack.wait_sim(lambda s: s["mode"] == "power_on" and s["requested_c"] == 45, 5.0,
                   "power_on at 45")
    wait_until(lambda: stack.device()["stream"] == "stream", 10.0, 0.1, "the event stream")
    assert stack.sim.state()["bridge_sessions"] == 1
    stalled = time.monotonic()
    stack.impair.stall(20.0)
    # Nothing heard for silence_timeout: the device is counted as gone (the
    # last event or answer came up to a telemetry period, 2 s, before the stall).
    wait_until(lambda: stack.device()["link"] != "connected", 18.0, 0.05, "the device left")
    left = time.monotonic() - stalled
    print(f"dragonbreath: the device counted as gone {left:.2f} s into the stall")
    assert SILENCE_S - FRAME_S - 0.5 <= left <= SILENCE_S + 1.5, left
    ended = _stall_ended(stack)
    _at_most_one_session(stack, ended)
    state = stack.sim.state()
    assert state["mode"] == "power_on" and state["requested_c"] == 45
