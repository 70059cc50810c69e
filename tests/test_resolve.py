"""Name resolution never blocks the event loop and fails with a clear message."""

from __future__ import annotations

import asyncio
import time

import pytest
from panda_breath.resolve import ResolveError, is_ip_literal, resolve_host


async def test_ip_literals_need_no_lookup() -> None:
    assert is_ip_literal("192.0.2.7") and is_ip_literal("::1")
    assert not is_ip_literal("PandaBreath.local")
    assert await resolve_host("192.0.2.7", 1.0) == "192.0.2.7"


async def test_host_names_resolve_off_the_event_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    try:
        address = await resolve_host("localhost", 2.0)
    finally:
        task.cancel()
    assert address in ("127.0.0.1", "::1")
    assert ticks >= 1  # the loop kept running while getaddrinfo worked


async def test_unresolvable_names_fail_with_the_name_in_the_message() -> None:
    started = time.monotonic()
    with pytest.raises(ResolveError, match="no-such-device.invalid"):
        await resolve_host("no-such-device.invalid", 2.0)
    assert time.monotonic() - started < 3.0
