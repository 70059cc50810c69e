"""``scripts/impair.py``, the bad Wi-Fi link: stalls hold everything and close nothing.

A real TCP echo server behind the proxy, in process; and the bad Wi-Fi rows'
verdicts (``testbed.wifisuite.judge``) on made-up runs.
"""

from __future__ import annotations

import asyncio
import time

import impair
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testbed.wifisuite import Target, WifiRun, judge


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _through_proxy(profile: str) -> tuple[impair.Link, asyncio.StreamReader,
                                                 asyncio.StreamWriter, list[asyncio.Server]]:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    link = impair.Link(profile, seed=1)
    proxy = impair.Proxy(link, ("127.0.0.1", echo.sockets[0].getsockname()[1]))
    relay = await asyncio.start_server(proxy.serve, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", relay.sockets[0].getsockname()[1])
    return link, reader, writer, [echo, relay]


async def test_a_stall_holds_data_both_ways_and_keeps_the_connection() -> None:
    link, reader, writer, servers = await _through_proxy("clear")
    try:
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(4), 1.0) == b"ping"
        link.stall(0.8)
        started = time.monotonic()
        writer.write(b"late")
        assert await asyncio.wait_for(reader.read(4), 3.0) == b"late"
        assert time.monotonic() - started >= 0.75
        assert not writer.is_closing()
    finally:
        writer.close()
        for server in servers:
            server.close()


async def test_latency_keeps_the_order_and_a_close_comes_after_the_data() -> None:
    link, reader, writer, servers = await _through_proxy("mild")
    try:
        started = time.monotonic()
        for i in range(20):
            writer.write(b"%02d" % i)
            await asyncio.sleep(0.005)
        writer.write_eof()
        echoed = await asyncio.wait_for(reader.read(), 5.0)
        assert echoed == b"".join(b"%02d" % i for i in range(20))
        # Two hops of 80 +- 60 ms each way at least.
        assert time.monotonic() - started >= 2 * 0.02
    finally:
        writer.close()
        for server in servers:
            server.close()


def test_profiles_schedule_their_stalls() -> None:
    link = impair.Link("awful", seed=1)
    link.set_profile("awful", first_stall_s=0.0, first_long_s=100.0)
    link.tick()
    assert link.stalled() and link.stalls[-1][1] == 8.0
    link.set_profile("awful", first_stall_s=100.0, first_long_s=0.0)
    link.tick()
    assert link.stalls[-1][1] == 20.0
    # The short stall due inside the long one is moved after it.
    assert link.next_stall is not None and link.next_stall > time.monotonic() + 20.0
    with pytest.raises(ValueError):
        link.set_profile("dreadful")
    delays = [impair.Link("bad", seed=s).delay() for s in range(200)]
    assert 0.05 <= min(delays) and max(delays) <= 0.45


@settings(max_examples=60, deadline=None)
@given(
    stall_at=st.floats(0.0, 50.0), stall_s=st.floats(0.5, 20.0),
    set_at=st.floats(0.0, 50.0), latency=st.floats(0.0, 30.0),
)
def test_a_target_is_late_only_beyond_the_stalls_it_met_plus_a_second(
    stall_at: float, stall_s: float, set_at: float, latency: float,
) -> None:
    run = WifiRun("v1.0.3", "awful", 60.0, [Target(45.0, set_at, set_at + latency)],
                  [{"at": stall_at, "seconds": stall_s}], link_delay_s=0.9)
    judge(run, end=200.0)
    (target,) = run.targets
    met = stall_at < set_at + latency and stall_at + stall_s > set_at
    assert target.bound == pytest.approx(1.9 + (stall_s if met else 0.0))
    assert target.verdict == ("ok" if latency <= target.bound else "late")


def test_a_replaced_target_is_superseded_in_time_and_lost_at_the_end() -> None:
    run = WifiRun("v1.0.3", "bad", 60.0, [
        Target(45.0, 10.0, None, replaced_at=10.5),   # replaced within 1 s
        Target(40.0, 10.5, None, replaced_at=13.0),   # not reached for 2.5 s
        Target(0.0, 13.0, None),                       # never reached
    ], [])
    judge(run, end=20.0)
    assert [t.verdict for t in run.targets] == ["superseded", "late", "lost"]
    assert not run.ok
