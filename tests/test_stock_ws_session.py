"""The stock WebSocket link's session against an in-process simulated device.

The WebSocket client hands each frame to the link as it reads it (no task
switch per frame); the session task itself wakes only to check for silence.
These tests pin down what that must keep: frames reach the controller, a
silent device is dropped and reconnected (not before the silence rule), and
a bug in handling a frame ends the session and fails the link's task (the
supervisor restarts it) instead of leaving the connection open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sim_fixtures
from panda_breath.backoff import Backoff
from panda_breath.controller import DeviceController
from panda_breath.link import LINK_CONNECTED
from panda_breath.stock_ws_link import StockWebSocketLink
from test_controller import NullRelay

make_sim = sim_fixtures.make_sim
SILENCE_S = 0.6


async def until(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate`` held; fails after ``timeout``."""
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < timeout, "not within %.1f s" % timeout
        await asyncio.sleep(0.01)
    return time.monotonic() - began


class NotingLink(StockWebSocketLink):
    """The real link, noting why each session ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ends: list[str] = []

    def _session_ended(self, reason: str, closing: bool) -> None:
        self.ends.append(reason)
        super()._session_ended(reason, closing)


@pytest.fixture
async def start_link() -> AsyncIterator[Callable[..., Any]]:
    tasks: list[asyncio.Task[None]] = []

    def start(sim: Any, link_class: type[NotingLink] = NotingLink,
              ) -> tuple[NotingLink, DeviceController, asyncio.Task[None]]:
        controller = DeviceController("dev", "chamber", 60.0, NullRelay(), lambda: None)
        link = link_class(controller, "dev", "127.0.0.1", sim.port, connect_timeout=1.0,
                          silence_timeout=SILENCE_S, backoff=Backoff(first=0.05, cap=0.2))
        controller.link = link
        controller.adopt_klipper_target(0.0, None)
        task = asyncio.ensure_future(link.run())
        tasks.append(task)
        return link, controller, task

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_frames_reach_the_controller_and_a_silent_device_is_reconnected(
        make_sim: Any, start_link: Any) -> None:
    sim = await make_sim(firmware="v1.0.3")
    link, controller, _ = start_link(sim)
    await until(lambda: link.state == LINK_CONNECTED and controller.chamber_temp is not None,
                3.0)
    frames = link.frames_received
    await asyncio.sleep(0.5)
    assert link.frames_received >= frames + 3  # one every 0.1 s
    sim.control("silence", {"seconds": 2 * SILENCE_S})
    took = await until(lambda: link.reconnects >= 1, 3.0 * SILENCE_S + 2.0)
    assert link.ends[0] == "device silent for %.0f s" % SILENCE_S
    assert took >= SILENCE_S - 0.15  # not before the silence rule says
    await until(lambda: link.state == LINK_CONNECTED and link.frames_received > frames + 10, 5.0)
    assert sim.state()["bridge_sessions"] == 1


class BrokenLink(NotingLink):
    """A link whose frame handling fails on the third frame."""

    def _handle_message(self, message: str | bytes) -> None:
        super()._handle_message(message)
        if self.frames_received == 3:
            raise RuntimeError("a bug")


async def test_a_bug_in_frame_handling_ends_the_session_and_fails_the_task(
        make_sim: Any, start_link: Any) -> None:
    sim = await make_sim(firmware="v1.0.3")
    link, _, task = start_link(sim, BrokenLink)
    await until(task.done, 3.0)
    with pytest.raises(RuntimeError, match="a bug"):
        task.result()  # the supervisor restarts a failed link task
    assert link.ends == ["internal error while handling a frame"]
    await until(lambda: sim.state()["bridge_sessions"] == 0, 2.0)
