"""A device link task that fails is restarted, reported, and its session resent.

The links themselves are exercised end to end elsewhere; here a link that
raises on demand shows the supervisor's rules deterministically.
"""

from __future__ import annotations

import asyncio
from typing import Any

from panda_breath.backoff import Backoff
from panda_breath.link import LINK_CONNECTED, LINK_DISCONNECTED, DeviceLink
from panda_breath.supervisor import LinkSupervisor


class Listener:
    def __init__(self) -> None:
        self.downs: list[str] = []

    def on_link_up(self) -> None:
        pass

    def on_link_down(self, reason: str) -> None:
        self.downs.append(reason)

    def on_report(self, report: Any) -> None:
        pass

    def on_link_changed(self) -> None:
        pass


class FlakyLink(DeviceLink):
    """Connects, then raises once per entry in ``failures`` before running quietly."""

    def __init__(self, listener: Listener, failures: list[BaseException | None]) -> None:
        super().__init__(listener, "flaky")
        self.failures = failures
        self.runs = 0
        self.closed = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        self.state = LINK_CONNECTED
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        await self.closed.wait()

    async def close(self) -> None:
        self.closed.set()

    def send_target(self, target: float) -> bool:
        return True


def make(failures: list[BaseException | None]) -> tuple[LinkSupervisor, FlakyLink, Listener,
                                                         list[str]]:
    listener = Listener()
    link = FlakyLink(listener, failures)
    reported: list[str] = []
    supervisor = LinkSupervisor(link, Backoff(first=0.01, cap=0.02), reported.append)
    return supervisor, link, listener, reported


async def test_a_link_that_raises_is_restarted_and_reported() -> None:
    supervisor, link, listener, reported = make(
        [RecursionError("maximum recursion depth exceeded"), OverflowError("too big")]
    )
    task = asyncio.ensure_future(supervisor.run())
    for _ in range(100):
        if link.runs >= 3:
            break
        await asyncio.sleep(0.01)
    assert link.runs == 3
    assert supervisor.failures == 2
    assert supervisor.last_failure == "OverflowError: too big"
    assert len(reported) == 2
    # The controller hears "down" each time, so it resends on the next connect.
    assert len(listener.downs) == 2 and "OverflowError" in listener.downs[1]
    supervisor.stop()
    await link.close()
    await asyncio.wait_for(task, 1.0)
    assert supervisor.failures == 2  # a requested close is not a failure


async def test_a_link_that_returns_by_itself_is_restarted() -> None:
    supervisor, link, _, reported = make([])

    async def return_at_once() -> None:
        link.runs += 1

    link.run = return_at_once  # type: ignore[method-assign]
    task = asyncio.ensure_future(supervisor.run())
    await asyncio.sleep(0.1)
    assert link.runs >= 2
    assert reported[0] == "the link task ended by itself"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_an_injected_failure_cancels_the_running_link_and_restarts_it() -> None:
    supervisor, link, listener, reported = make([])
    task = asyncio.ensure_future(supervisor.run())
    await asyncio.sleep(0.02)
    assert link.runs == 1
    assert supervisor.inject_failure()
    for _ in range(100):
        if link.runs >= 2:
            break
        await asyncio.sleep(0.01)
    assert link.runs == 2
    assert reported and reported[0].startswith("InjectedLinkFailure")
    assert listener.downs
    supervisor.stop()
    await link.close()
    await asyncio.wait_for(task, 1.0)


async def test_abandon_marks_the_link_down() -> None:
    listener = Listener()
    link = FlakyLink(listener, [])
    link.state = LINK_CONNECTED
    link.abandon("link task failed: boom")
    assert link.state == LINK_DISCONNECTED
    assert link.last_error == "link task failed: boom"
    assert listener.downs == ["link task failed: boom"]
