#!/usr/bin/env python3
"""A bad Wi-Fi link in userspace: a TCP proxy with latency, jitter and stalls.

A Panda Breath sits in or beside an enclosure on 2.4 GHz Wi-Fi, where stalls
of several seconds while the radio retransmits are normal.  This machine's
kernel has no ``netem``, so the test bed puts this proxy between the bridge
and the device (or between an MQTT device and its broker).  Every chunk is
delayed by ``latency ± jitter`` (in order, per direction); during a stall
nothing is forwarded in either direction, connections the client opens are
not passed on, and both sockets stay open, as on a link that retransmits.
A close from one side reaches the other only after what was sent before it,
so a goodbye sent into a stall arrives when the stall ends.

Profiles (latency ms, jitter ms, a stall of S s every P s, a long stall):

- ``clear``: nothing (a plain relay)
- ``mild``: 80 ± 60 ms, 2 s every 30 s
- ``bad``: 250 ± 200 ms, 5 s every 20 s
- ``awful``: 500 ± 400 ms, 8 s every 15 s and 20 s every 2 min

Control (HTTP GET on ``--control-port``): ``/impair/state``;
``/impair/control?action=profile&name=bad`` (the stall schedule starts over
from now; ``first_stall``/``first_long`` seconds place the first stalls),
``action=stall&seconds=20`` (one stall now), ``action=clear``.
SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
import urllib.parse
from collections import namedtuple
from typing import Any

Profile = namedtuple(
    "Profile", "latency_ms jitter_ms stall_s stall_every_s long_stall_s long_stall_every_s",
    defaults=(0, 0, 0, 0, 0, 0))
PROFILES = {
    "clear": Profile(),
    "mild": Profile(80, 60, 2, 30),
    "bad": Profile(250, 200, 5, 20),
    "awful": Profile(500, 400, 8, 15, 20, 120),
}
READ_SIZE = 65536


class Link:
    """The impairment every connection shares: the profile and the stall schedule."""

    def __init__(self, profile: str, seed: int) -> None:
        self.rng = random.Random(seed)
        self.stalled_until = 0.0
        self.stalls: list[tuple[float, float]] = []  # (start wall time, seconds)
        self.set_profile(profile)

    def set_profile(self, name: str, first_stall_s: float | None = None,
                    first_long_s: float | None = None) -> None:
        """Impair from now on; the first stalls come after ``first_*_s`` (default: a period)."""
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; one of {', '.join(PROFILES)}")
        self.name, self.profile = name, PROFILES[name]
        now = time.monotonic()
        p = self.profile
        first = p.stall_every_s if first_stall_s is None else first_stall_s
        first_long = p.long_stall_every_s if first_long_s is None else first_long_s
        self.next_stall = now + first if p.stall_every_s else None
        self.next_long = now + first_long if p.long_stall_every_s else None

    def stall(self, seconds: float) -> None:
        now = time.monotonic()
        self.stalled_until = max(self.stalled_until, now + seconds)
        self.stalls.append((time.time(), seconds))
        del self.stalls[:-200]

    def tick(self) -> None:
        """Start the scheduled stalls that are due (a long one replaces a short one)."""
        now, p = time.monotonic(), self.profile
        if self.next_long is not None and now >= self.next_long:
            self.stall(p.long_stall_s)
            self.next_long += p.long_stall_every_s
            if self.next_stall is not None and self.next_stall < now + p.long_stall_s:
                self.next_stall = now + p.long_stall_s + p.stall_every_s
        if self.next_stall is not None and now >= self.next_stall:
            self.stall(p.stall_s)
            self.next_stall += p.stall_every_s

    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until

    async def through(self) -> None:
        """Wait until no stall holds the link."""
        while self.stalled():
            await asyncio.sleep(min(0.05, max(0.001, self.stalled_until - time.monotonic())))

    def delay(self) -> float:
        p = self.profile
        ms = p.latency_ms + self.rng.uniform(-p.jitter_ms, p.jitter_ms)
        return max(0.0, ms) / 1000.0


class Proxy:
    """Listens on one port and relays every connection to ``upstream`` through the Link."""

    def __init__(self, link: Link, upstream: tuple[str, int]) -> None:
        self.link, self.upstream = link, upstream
        self.open = 0
        self.accepted = 0
        self.failed = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            await self.link.through()  # no connection is passed on during a stall
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                self.failed += 1
                return
            try:
                await asyncio.gather(self._pipe(reader, up_writer),
                                     self._pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            self.open -= 1
            with contextlib.suppress(Exception):
                writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Read everything from ``src``; deliver each chunk late, in order, never in a stall."""
        queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await self.link.through()
                if data is None:
                    break
                try:
                    dst.write(data)
                    await dst.drain()
                except (OSError, RuntimeError):
                    break
            # Half-close: what the other side still sends comes back (TCP's FIN).
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()
                else:
                    dst.close()

        writer_task = asyncio.ensure_future(deliver())
        last = 0.0
        while True:
            try:
                data = await src.read(READ_SIZE)
            except (OSError, asyncio.IncompleteReadError):
                data = b""
            last = max(last, time.monotonic() + self.link.delay())
            await queue.put((last, data or None))
            if not data:
                break
        await writer_task


async def control(link: Link, proxy: Proxy, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    """``GET /impair/state`` and ``GET /impair/control?action=...``."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        target = head.decode("latin-1").split(" ")[1]
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query))
        status, body = 200, {}
        try:
            if url.path == "/impair/control":
                action = query.get("action", "")
                if action == "profile":
                    first, long = query.get("first_stall"), query.get("first_long")
                    link.set_profile(query.get("name", ""),
                                     None if first is None else float(first),
                                     None if long is None else float(long))
                elif action == "stall":
                    link.stall(float(query.get("seconds", "5")))
                elif action == "clear":
                    link.stalled_until = 0.0
                    link.set_profile("clear")
                else:
                    raise ValueError(f"unknown action {action!r}")
            elif url.path != "/impair/state":
                status = 404
        except (ValueError, KeyError) as exc:
            status, body = 400, {"error": str(exc)}
        body = {**state(link, proxy), **body}
        payload = json.dumps(body).encode()
        writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (status, len(payload))
                     + payload)
        await writer.drain()
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, IndexError):
        pass
    finally:
        writer.close()


def state(link: Link, proxy: Proxy) -> dict[str, Any]:
    return {
        "profile": link.name, **link.profile._asdict(),
        "stalled": link.stalled(),
        "stall_remaining": round(max(0.0, link.stalled_until - time.monotonic()), 3),
        "stalls": [{"at": at, "seconds": s} for at, s in link.stalls],
        "open": proxy.open, "accepted": proxy.accepted, "upstream_failed": proxy.failed,
    }


async def main_async(args: argparse.Namespace) -> None:
    host, _, port = args.upstream.rpartition(":")
    link = Link(args.profile, args.seed)
    proxy = Proxy(link, (host or "127.0.0.1", int(port)))
    relay = await asyncio.start_server(proxy.serve, args.host, args.port)
    ctl = await asyncio.start_server(lambda r, w: control(link, proxy, r, w), args.host,
                                     args.control_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ports = (relay.sockets[0].getsockname()[1], ctl.sockets[0].getsockname()[1])
    print(f"impair: {args.host}:{ports[0]} -> {args.upstream} (control {ports[1]}, "
          f"profile {args.profile})", flush=True)
    while not stop.is_set():
        link.tick()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
        if args.exit_with_parent and os.getppid() != args.parent:
            break
    relay.close()
    ctl.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="impair", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="where the client connects")
    parser.add_argument("--upstream", required=True, metavar="HOST:PORT")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--profile", default="clear", choices=sorted(PROFILES))
    parser.add_argument("--seed", type=int, default=1, help="jitter random seed")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit when the process that started it is gone")
    args = parser.parse_args(argv)
    args.parent = os.getppid()
    return args


if __name__ == "__main__":
    asyncio.run(main_async(parse_args(sys.argv[1:])))
