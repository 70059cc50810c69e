"""Reconnect pacing (``backoff.Backoff``) on a clock the test moves: a minute in no time."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from panda_breath.backoff import Backoff
from panda_breath.links import QUICK_RETRY_S


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def backoff(clock: Clock, seed: int, cap: float = 5.0) -> Backoff:
    return Backoff(first=0.25, cap=cap, quick_for=QUICK_RETRY_S, rng=random.Random(seed),
                   clock=clock)


@given(seed=st.integers(0, 2**32), connect_s=st.floats(0.0, 5.0), cap=st.floats(0.5, 300.0))
def test_an_outage_is_retried_quickly_for_a_minute_then_backs_off_to_the_cap(
    seed: int, connect_s: float, cap: float
) -> None:
    """However long each failed attempt takes (a refused connect or a 5 s timeout)."""
    clock = Clock()
    b = backoff(clock, seed, cap)
    start = clock.now
    waits: list[tuple[float, float]] = []  # (since the outage began, wait)
    while clock.now - start < 3 * QUICK_RETRY_S + 10 * cap:
        clock.now += connect_s
        wait = b.next_delay()
        waits.append((clock.now - start, wait))
        clock.now += wait
    quick = [w for at, w in waits if at < QUICK_RETRY_S]
    later = [w for at, w in waits if at >= QUICK_RETRY_S]
    assert quick and all(0.125 <= w <= 0.25 for w in quick)  # back within 0.25 s of answering
    assert later and all(0.125 <= w <= cap for w in later)
    assert later[-1] >= cap / 2  # backed off to the cap: never a storm
    assert all(b_ >= a / 2 for a, b_ in itertools.pairwise(later))  # growing (with jitter)


def test_a_connection_that_worked_starts_a_new_outage() -> None:
    clock = Clock()
    b = backoff(clock, 1)
    for _ in range(400):  # a long outage: backed off
        clock.now += b.next_delay()
    assert b.next_delay() >= 2.5
    b.reset()
    clock.now += 100.0
    assert b.next_delay() <= 0.25


def test_without_a_quick_phase_the_waits_double_from_the_start() -> None:
    b = Backoff(first=0.25, cap=5.0, rng=random.Random(3))
    steps = [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    for step in steps:
        assert step / 2 <= b.next_delay() <= step


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(first=0.25, cap=5.0, quick_for=-1)
