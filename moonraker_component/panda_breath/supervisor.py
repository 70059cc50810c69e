"""Keeps a device link's task alive: every OFF travels through it.

A link's ``run()`` is meant to loop until ``close()``.  If it raises (a bug
of ours, a library surprise) or returns early, the device would be out of
reach for good: no target, ``TURN_OFF_HEATERS`` or shutdown could switch it
off.  The supervisor logs the failure, reports it, tells the controller the
link is down (so the desired state is resent on the next connect) and starts
the link again after the usual backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .backoff import Backoff
from .link import DeviceLink

#: A link that ran this long before failing starts again without waiting.
HEALTHY_RUN_S = 60.0


class InjectedLinkFailure(RuntimeError):
    """Raised into a link task on purpose (Moonraker debug endpoint, fault tests)."""


class LinkSupervisor:
    def __init__(
        self, link: DeviceLink, backoff: Backoff, on_failure: Callable[[str], None]
    ) -> None:
        self.link = link
        self.backoff = backoff
        self.on_failure = on_failure
        self.failures = 0
        self.last_failure: str | None = None
        self._stopping = False
        self._injected: asyncio.Future[None] | None = None

    async def run(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._run_link_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure restarts the link
                failure = "%s: %s" % (type(exc).__name__, str(exc)[:200] or "-")
                logging.exception("panda_breath [%s]: link task failed", self.link.name)
            else:
                if self._stopping:
                    return
                failure = "the link task ended by itself"
                logging.error("panda_breath [%s]: %s", self.link.name, failure)
            self.failures += 1
            self.last_failure = failure
            self.link.abandon("link task failed: %s" % failure)
            self.on_failure(failure)
            if time.monotonic() - started >= HEALTHY_RUN_S:
                self.backoff.reset()
            await asyncio.sleep(self.backoff.next_delay())

    async def _run_link_once(self) -> None:
        loop = asyncio.get_running_loop()
        run_task = loop.create_task(self.link.run())
        self._injected = loop.create_future()
        try:
            await asyncio.wait({run_task, self._injected}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not run_task.done():
                run_task.cancel()
                await asyncio.gather(run_task, return_exceptions=True)
        if self._injected.done():
            raise InjectedLinkFailure("failure injected on request")
        self._injected.cancel()
        run_task.result()

    def inject_failure(self) -> bool:
        """Make the running link task fail now, as a bug would; False if none runs."""
        if self._injected is None or self._injected.done():
            return False
        self._injected.set_result(None)
        return True

    def stop(self) -> None:
        """``close()`` is coming: the link's return is the end, not a failure."""
        self._stopping = True
