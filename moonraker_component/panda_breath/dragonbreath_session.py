"""What the parts of a DragonBreath session share: its lifetime and what they ask of the link.

The event stream, the lease and the command writer each hold one idea; the
link wires them together.  They reach the link only through ``SessionLink``,
so none of them imports it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from typing import Any

from . import dragonbreath as db
from .link import LinkListener
from .model import DeviceReport
from .typing_compat import Protocol


class Session:
    """What lives exactly as long as one session (tasks, the writer's wake-up).

    A task that fails (a bug) ends the session: the link starts a new one,
    with new tasks, after the usual backoff.
    """

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Future[Any]] = []
        self.alive = True
        #: Why the session ended early, if one of its tasks failed.
        self.failure: str | None = None

    def spawn(self, coro: Awaitable[Any], what: str) -> None:
        """Run ``coro`` until the session ends."""
        task = asyncio.ensure_future(coro)
        task.add_done_callback(functools.partial(self._done, what))
        self.tasks = [t for t in self.tasks if not t.done()]
        self.tasks.append(task)

    def _done(self, what: str, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved
        if exc is not None and self.alive:
            self.failure = "internal error: %s failed (%s)" % (what, type(exc).__name__)
            self.alive = False

    def end(self) -> None:
        self.alive = False
        for task in self.tasks:
            task.cancel()


class SessionLink(Protocol):
    """The link, as the session's parts see it."""

    listener: LinkListener
    actor_id: str
    silence_timeout: float
    closing: bool
    revision: int | None
    session: Session | None
    last_state: DeviceReport | None
    frames_dropped: int

    def lost(self) -> bool: ...

    def take(self, report: DeviceReport) -> None: ...

    def absorb(self, report: DeviceReport) -> None: ...

    def note_error(self, message: str) -> None: ...

    # DeviceLink's helpers
    def _note_frame(self) -> None: ...

    def _drop_frame(self, reason: str) -> None: ...

    def _log_limited(self, message: str) -> bool: ...

    def write(self, command: Awaitable[Any]) -> None: ...

    def last_frame_age(self) -> float | None: ...

    async def refresh_state(self) -> None: ...

    async def post(
        self, path: str, body: str, what: str, form: bool = False
    ) -> db.CommandResult | None: ...
