"""Follows a DragonBreath device through its event stream, polling while it has none.

The device serves at most two streams and its own dashboard takes one, so a
503 ``busy`` (or a stream that falls silent) is normal: the follower then
polls ``/api/v2/state`` every ``POLL_INTERVAL_S`` (``UNANSWERED_POLL_S`` while
the device does not answer) and tries the stream again now and then (1, 2,
4 ... 30 s).  Every event is decoded and handed to the
link, or dropped and counted; its text is never logged.

ASSUMED (not confirmed by the reference): the event stream uses chunked
transfer encoding (ESP-IDF's ``httpd_resp_send_chunk`` does; tornado's client
streams only chunked or sized bodies, an unsized one would arrive at close).
"""

from __future__ import annotations

import asyncio
import time

from tornado.httpclient import HTTPResponse

from . import dragonbreath as db
from . import sse
from .dragonbreath_http import MAX_BODY, DragonBreathHttp
from .dragonbreath_session import Session, SessionLink
from .model import FrameError

#: How often ``/api/v2/state`` is read while there is no stream.
POLL_INTERVAL_S = 1.0
#: ... and while the device does not answer (a restart: it is back in sync
#: within a fraction of a second of answering; a LAN request is cheap).
UNANSWERED_POLL_S = 0.25
#: The stream sends a full snapshot at least every 2 s; this much quiet ends it
#: (and polling takes over) long before the device itself counts as gone.
STREAM_SILENCE_S = 6.0
#: Waits before trying the stream again after a refusal or a drop.
STREAM_RETRY_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
#: A stream that lasted this long was healthy: the next retry starts from 1 s.
STREAM_STABLE_S = 30.0

STREAM = "stream"
POLLING = "polling"


class _Attempt:
    """One request for the event stream: its status line, its type, what it brought."""

    def __init__(self, follower: EventStream, session: Session) -> None:
        self.follower, self.session = follower, session
        self.parser = sse.SseParser()
        self.code: int | None = None
        self.event_stream = False
        self.events = False
        self.error_body = bytearray()
        self.dropped = 0
        self.started = time.monotonic()

    def on_header(self, line: str) -> None:
        if self.code is None and line.startswith("HTTP/"):
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[1].isdigit():
                self.code = int(parts[1])
        elif line.lower().startswith("content-type:"):
            self.event_stream = "text/event-stream" in line.lower()
        elif line in ("\r\n", "\n") and self.code == 200 and self.event_stream:
            self.follower.opened()

    def on_chunk(self, chunk: bytes) -> None:
        if self.follower.abandoned or not self.session.alive:
            return  # its socket is being closed; nothing more from it counts
        if self.code != 200 or not self.event_stream:
            if len(self.error_body) < MAX_BODY:
                self.error_body += chunk[: MAX_BODY - len(self.error_body)]
            return
        self.follower.last_chunk = time.monotonic()
        for event in self.parser.feed(chunk):
            self.events = True
            self.follower.on_event(event)
        self.count_dropped()

    def count_dropped(self) -> None:
        """Dropped events counted as they happen: the stream may stay open for hours."""
        dropped = self.parser.events_dropped
        if dropped != self.dropped:
            self.follower.link.frames_dropped += dropped - self.dropped
            self.dropped = dropped
            self.follower.link._log_limited(
                "dropped %d over-long stream line(s)" % self.parser.lines_dropped)

    def outcome(self, response: HTTPResponse | None, outcome: str) -> str:
        """Why the stream ended, in a few safe words."""
        code = self.code if self.code is not None else (
            response.code if response is not None else None)
        if code == 503:
            self.follower.refusals += 1
            self.follower.take_error_state(bytes(self.error_body), 503)
            return "busy (both stream slots taken)"
        if code not in (None, 200, 599):
            return "HTTP %d" % code
        if code == 200 and not self.event_stream:
            return "not an event stream"
        if response is not None and response.code == 599 and outcome == "closed by device":
            return "lost: %s" % self.follower.http.describe_exc(response.error)
        return outcome


class EventStream:
    """The stream with its polling fallback, for one session at a time."""

    def __init__(self, link: SessionLink, http: DragonBreathHttp) -> None:
        self.link = link
        self.http = http
        #: STREAM, POLLING, or None while there is no session.
        self.state: str | None = None
        #: 503 ``busy`` answers to the stream request (both slots taken).
        self.refusals = 0
        self.polls = 0
        self.abandoned = False
        self.last_chunk = 0.0
        self._retry_at = 0.0
        self._retry_index = 0

    async def follow(self, session: Session) -> str:
        """Stream or poll until the session ends; why it ended."""
        self._retry_at = 0.0
        self._retry_index = 0
        try:
            while not self.link.closing and session.alive:
                if self.link.lost():
                    return "device silent for %.0f s" % self.link.silence_timeout
                if time.monotonic() >= self._retry_at:
                    await self._stream_once(session)
                    continue
                self.state = POLLING
                answered = await self.poll_once()
                pause = min(POLL_INTERVAL_S if answered else UNANSWERED_POLL_S,
                            max(0.0, self._retry_at - time.monotonic()))
                await asyncio.sleep(pause)
            return session.failure or "closed"
        finally:
            self.abort()
            self.state = None

    def abort(self) -> None:
        self.abandoned = True
        self.http.abort_stream()

    def _silence(self) -> float:
        return min(STREAM_SILENCE_S, max(0.5, self.link.silence_timeout / 2.0))

    async def _stream_once(self, session: Session) -> None:
        """Follow the event stream until it ends; then schedule the next try."""
        attempt = _Attempt(self, session)
        self.abandoned = False
        self.last_chunk = attempt.started
        future = self.http.open_stream(attempt.on_header, attempt.on_chunk)
        outcome = await self._watch(future, session)
        response: HTTPResponse | None = None
        try:
            response = await future
        except Exception as exc:  # noqa: BLE001 - a failed stream is retried later
            outcome = "failed: %s" % self.http.describe_exc(exc)
        attempt.count_dropped()
        outcome = attempt.outcome(response, outcome)
        if self.link.closing:
            return
        if time.monotonic() - attempt.started >= STREAM_STABLE_S and attempt.events:
            self._retry_index = 0
        delay = STREAM_RETRY_S[min(self._retry_index, len(STREAM_RETRY_S) - 1)]
        self._retry_index += 1
        self._retry_at = time.monotonic() + delay
        self.state = POLLING
        self.link._log_limited("event stream ended (%s); polling, stream retried in %.0f s" % (
            outcome, delay))
        self.link.listener.on_link_changed()

    async def _watch(self, future: asyncio.Future[HTTPResponse], session: Session) -> str:
        """Wait for the stream to end; end it when it (or the device) falls silent."""
        outcome = "closed by device"
        while not future.done():
            await asyncio.wait([future], timeout=0.25)
            if future.done():
                break
            if self.link.closing or not session.alive:
                outcome = "closing"
                self.abort()
            elif time.monotonic() - self.last_chunk > self._silence():
                outcome = "silent for %.1f s" % self._silence()
                self.abort()
            elif self.link.lost():
                outcome = "device silent"
                self.abort()
        return outcome

    def opened(self) -> None:
        self.state = STREAM
        self.last_chunk = time.monotonic()
        self.link.listener.on_link_changed()

    def on_event(self, event: sse.SseEvent) -> None:
        if event.event not in ("state", "telemetry", "message"):
            return
        self.link._note_frame()
        try:
            report = db.decode_state(event.data, self.link.actor_id)
        except FrameError as exc:
            self.link._drop_frame(str(exc))
            return
        self.link.take(report)

    async def poll_once(self) -> bool:
        """Read the state once; False if the device did not answer."""
        try:
            body = await self.http.get(db.PATH_STATE)
        except Exception as exc:  # noqa: BLE001 - the silence check decides
            self.link.note_error("state poll failed: %s" % self.http.describe_exc(exc))
            return False
        self.polls += 1
        self.link._note_frame()
        try:
            report = db.decode_state(body, self.link.actor_id)
        except FrameError as exc:
            self.link._drop_frame(str(exc))
            return True
        self.link.take(report)
        return True

    def take_error_state(self, body: bytes, status: int) -> None:
        """The stream's 503 carries the state: use it."""
        if not body:
            return
        try:
            result = db.decode_response(status, body, self.link.actor_id)
        except FrameError:
            return
        if result.state is not None:
            self.link.take(result.state)
