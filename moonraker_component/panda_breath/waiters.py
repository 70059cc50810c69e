"""Futures that wait for one condition and are all woken when it holds.

A request waiting for a connection's first state, a flush waiting for
writes to leave the host: callers await a future instead of polling.
"""

from __future__ import annotations

import asyncio


class Waiters:
    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []

    def wait(self, ready: bool) -> asyncio.Future[None]:
        """A future that is done now if ``ready``, else at the next ``wake``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if ready:
            future.set_result(None)
        else:
            self._futures.append(future)
        return future

    def wake(self) -> None:
        futures, self._futures = self._futures, []
        for future in futures:
            if not future.done():  # a caller that stopped waiting cancelled its own
                future.set_result(None)
