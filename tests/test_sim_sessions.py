"""The simulator's count of the bridge's sessions (``pbsim.sessions``)."""

from __future__ import annotations

import time

from pbsim.sessions import BridgeSessions, is_bridge


def test_only_the_bridge_is_counted_by_its_user_agent() -> None:
    assert is_bridge("moonraker-panda-breath")
    assert not is_bridge("Tornado/6.5") and not is_bridge(None) and not is_bridge("")


def test_open_count_peak_and_the_longest_time_with_several() -> None:
    sessions = BridgeSessions()
    sessions.opened("a")
    sessions.opened("b")
    time.sleep(0.05)
    sessions.closed("a")
    state = sessions.state()
    assert state["bridge_sessions"] == 1 and state["bridge_sessions_peak"] == 2
    assert 0.04 <= state["bridge_sessions_several_longest"] < 1.0
    assert state["bridge_sessions_opened"] == 2
    sessions.reset_peak()
    state = sessions.state()
    assert state["bridge_sessions_peak"] == 1 and state["bridge_sessions_several_longest"] == 0
    sessions.closed("b")
    sessions.closed("b")  # a second close of the same one changes nothing
    assert sessions.state()["bridge_sessions"] == 0
