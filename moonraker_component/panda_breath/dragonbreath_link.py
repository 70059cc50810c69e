"""One HTTP session with a DragonBreath device: state stream, polling fallback, lease.

A session reads ``/api/v2/info`` (is it DragonBreath API v2? which boot?),
then ``/api/v2/state``, reports the link up, and follows the device through
its Server-Sent-Events stream.  The device serves at most two streams and
its own dashboard takes one, so a 503 ``busy`` (or a stream that falls
silent) is normal: the session then polls ``/api/v2/state`` every
``POLL_INTERVAL_S`` and tries the stream again now and then (1, 2, 4 ... 30 s).
Only when nothing at all has been heard for ``silence_timeout`` is the device
counted as gone; the next session starts after the usual backoff.

Heating is a ``power_on`` command with the newest ``state_revision``; it
returns a lease that heartbeats renew at a third of the device's
``config.comms_ms`` (at most every 30 s).  If the heartbeats stop (Moonraker,
this host or the network dies) the device switches itself off and latches
"controller lease expired": that watchdog, not our OFF, is the real fail-safe.
A new ``boot_id`` is a reboot: the lease is gone, the revision restarts, and
the listener hears ``on_link_up`` again so the desired state is resent.

Nothing here blocks: tornado's HTTP client on the running loop, names resolved
by ``resolve.resolve_host``.  The control token goes into request headers only,
never into a log line, an error text or ``describe()``; response bodies are
decoded, never logged.  The lease id is kept private for the same reason.

ASSUMED (not confirmed by the reference): the event stream uses chunked
transfer encoding (ESP-IDF's ``httpd_resp_send_chunk`` does; tornado's client
streams only chunked or sized bodies, an unsized one would arrive at close);
an ``off`` needs no revision and may be sent at any time, also while a fault
is latched; ``POST /settings`` takes ``comms_ms`` as an urlencoded body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.iostream import IOStream
from tornado.simple_httpclient import SimpleAsyncHTTPClient
from tornado.tcpclient import TCPClient

from . import dragonbreath as db
from .backoff import Backoff
from .link import (
    LINK_CLOSED,
    LINK_CONNECTED,
    LINK_CONNECTING,
    LINK_DISCONNECTED,
    DeviceLink,
    LinkListener,
)
from .model import MODE_OFF, MODE_ON, DeviceReport, FrameError, device_degrees
from .resolve import resolve_host

#: Per-request limit for everything but the stream (the reference suggests ~4 s).
REQUEST_TIMEOUT_S = 4.0
#: How often ``/api/v2/state`` is read while there is no stream.
POLL_INTERVAL_S = 1.0
#: The stream sends a full snapshot at least every 2 s; this much quiet ends it
#: (and polling takes over) long before the device itself counts as gone.
STREAM_SILENCE_S = 6.0
#: Waits before trying the stream again after a refusal or a drop.
STREAM_RETRY_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
#: A stream that lasted this long was healthy: the next retry starts from 1 s.
STREAM_STABLE_S = 30.0
#: Network retries of one command (same request id: the device's replay cache
#: answers a retry of a command that did arrive with its original response).
COMMAND_ATTEMPTS = 3
COMMAND_RETRY_S = 0.5
#: Revision conflicts in a row before a heat intent is given up (until the next one).
MAX_CONFLICTS = 3
#: How often a device whose comms_ms differs from ``lease_timeout`` is told again.
SETTINGS_RETRY_S = 30.0
#: A report younger than this counts as the device's current state.
STATE_FRESH_S = 3.0
#: A session that lasted this long resets the reconnect backoff.
STABLE_SESSION_S = 2.0
#: The request body limit of everything but the stream.
_MAX_BODY = 4 * db.MAX_DOCUMENT_BYTES
#: The stream is endless; tornado counts its bytes against this (no buffering).
_MAX_STREAM_BODY = 1 << 50

STREAM = "stream"
POLLING = "polling"


def _collect(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as seen (no "never retrieved" noise)."""
    if not future.cancelled():
        future.exception()


class _StreamTCPClient(TCPClient):
    """Remembers the socket of the (single) event stream so a silent one can be closed.

    tornado's HTTP client has no way to cancel a request in flight; closing its
    socket ends it at once (the fetch completes with a 599), which frees the
    device's stream slot too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_stream: IOStream | None = None

    async def connect(self, *args: Any, **kwargs: Any) -> IOStream:
        stream = await super().connect(*args, **kwargs)
        self.last_stream = stream
        return stream


class _Session:
    """What lives exactly as long as one session (tasks, the writer's wake-up)."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Future[Any]] = []
        self.alive = True


class DragonBreathLink(DeviceLink):
    """``firmware: dragonbreath``; see the module docstring."""

    reports_settings = True
    supports_drying = True
    supports_filter = True
    arbitrates = True
    own_source = db.ACTOR_KIND
    min_target = float(db.MIN_TARGET_C)

    def __init__(
        self,
        listener: LinkListener,
        name: str,
        host: str,
        port: int = 80,
        token: str = db.DEFAULT_TOKEN,
        connect_timeout: float = 5.0,
        silence_timeout: float = 10.0,
        backoff: Backoff | None = None,
        lease_timeout: float | None = None,
    ) -> None:
        super().__init__(listener, name)
        self.host = host
        self.port = port
        self._token = db.validate_token(token)
        self.connect_timeout = connect_timeout
        self.silence_timeout = silence_timeout
        self.backoff = backoff or Backoff()
        if lease_timeout is not None:
            db.comms_ms_query(lease_timeout)  # ValueError outside 10-300 s
        #: Seconds of the device's lease/watchdog to set (``config.comms_ms``);
        #: None leaves the device's own value.
        self.lease_timeout = lease_timeout
        #: This bridge's ``actor.id``; the lease owner when we hold it.
        self.actor_id = db.new_actor_id()
        self.address: str | None = None
        self.info: db.DeviceInfo | None = None
        self.boot_id: str | None = None
        self.revision: int | None = None
        self.source: str | None = None
        self.comms_ms: int | None = None
        self.firmware_version: str | None = None
        #: STREAM, POLLING, or None while there is no session.
        self.stream_state: str | None = None
        #: We hold the device's control lease (its state names our actor as owner).
        self.lease_owned = False
        self.heartbeats_sent = 0
        self.heartbeat_failures = 0
        self.leases_acquired = 0
        self.leases_lost = 0
        self.revision_conflicts = 0
        self.stream_connects = 0
        #: 503 ``busy`` answers to the stream request (both slots taken).
        self.stream_refusals = 0
        self.polls = 0
        #: OFFs not sent because the device was already as our last OFF left it.
        self.offs_skipped = 0
        self.reboots_seen = 0
        #: Snapshots older than one already seen (same boot), ignored.
        self.stale_states = 0
        #: Why the device will not (or cannot) take the last target; None once a
        #: target is accepted.  The controller may show it as an error.
        self.last_refusal: str | None = None
        self._lease_id: str | None = None
        self._off_acked_revision: int | None = None
        self._lease_revision = 0
        self._lease_expires_at: float | None = None
        self._last_renewal = 0.0
        self._last_state: DeviceReport | None = None
        self._last_heard = 0.0
        self._stream_last = 0.0
        self._stream_retry_at = 0.0
        self._stream_retry_index = 0
        self._settings_sent_at = -SETTINGS_RETRY_S
        self._desired: float | None = None
        self._intent = 0
        self._closing = False
        self._session: _Session | None = None
        self._http: SimpleAsyncHTTPClient | None = None
        self._stream_http: SimpleAsyncHTTPClient | None = None
        self._stream_tcp: _StreamTCPClient | None = None
        self._stream_abandoned = False

    # Session loop ------------------------------------------------------------

    async def run(self) -> None:
        self._make_clients()
        try:
            while not self._closing:
                self._set_state(LINK_CONNECTING)
                try:
                    report = await asyncio.wait_for(self._open_session(), self._open_timeout())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every failure means "retry later"
                    self._note_error("connect failed: %s" % self._describe_exc(exc))
                else:
                    started = time.monotonic()
                    await self._serve(report)
                    if time.monotonic() - started >= STABLE_SESSION_S:
                        self.backoff.reset()
                if self._closing:
                    break
                self._set_state(LINK_DISCONNECTED)
                await asyncio.sleep(self.backoff.next_delay())
        finally:
            self._set_state(LINK_CLOSED)
            self._close_clients()

    def _open_timeout(self) -> float:
        # Resolution plus two requests, plus setting comms_ms.
        return self.connect_timeout + 3 * REQUEST_TIMEOUT_S

    def _make_clients(self) -> None:
        if self._http is None:
            self._http = SimpleAsyncHTTPClient(force_instance=True, max_body_size=_MAX_BODY)
        if self._stream_http is None:
            self._stream_http = SimpleAsyncHTTPClient(
                force_instance=True, max_body_size=_MAX_STREAM_BODY
            )
            self._stream_tcp = _StreamTCPClient()
            self._stream_http.tcp_client = self._stream_tcp

    def _close_clients(self) -> None:
        for client in (self._http, self._stream_http):
            if client is not None:
                client.close()
        self._http = self._stream_http = None
        self._stream_tcp = None

    async def _open_session(self) -> DeviceReport:
        self.address = await resolve_host(self.host, self.connect_timeout)
        host = "[%s]" % self.address if ":" in self.address else self.address
        self._base = "http://%s:%d" % (host, self.port)
        info = db.decode_info(await self._get(db.PATH_INFO))
        report = db.decode_state(await self._get(db.PATH_STATE), self.actor_id)
        self.info = info
        self.firmware_version = info.firmware
        if self.lease_timeout is not None:
            await self._apply_lease_timeout(report.comms_ms)
        return report

    async def _serve(self, first: DeviceReport) -> None:
        session = _Session()
        self._session = session
        self.connected_since = time.monotonic()
        self.last_error = None
        self._note_connected()
        self._heard()
        self._stream_retry_at = 0.0
        self._stream_retry_index = 0
        # A new session is a new start: whatever the old one believed is void.
        self.boot_id = first.boot_id or (self.info.boot_id if self.info else None)
        self.revision = None
        self._off_acked_revision = None
        self._drop_lease(None)
        logging.info("panda_breath [%s]: connected to DragonBreath %s at %s:%d (firmware %s)",
                     self.name, self.info.device_id if self.info else "?", self.address,
                     self.port, self.firmware_version or "?")
        reason = "closed"
        try:
            self._set_state(LINK_CONNECTED)
            self.listener.on_link_up()
            self._note_frame()
            self._absorb(first)
            session.tasks.append(asyncio.ensure_future(self._heartbeat_loop(session)))
            session.tasks.append(asyncio.ensure_future(self._writer(session)))
            while not self._closing:
                if self._lost():
                    reason = "device silent for %.0f s" % self.silence_timeout
                    break
                if time.monotonic() >= self._stream_retry_at:
                    await self._stream_once(session)
                    continue
                self.stream_state = POLLING
                await self._poll_once()
                pause = min(POLL_INTERVAL_S, max(0.0, self._stream_retry_at - time.monotonic()))
                await asyncio.sleep(pause)
        finally:
            session.alive = False
            self._session = None
            self._abort_stream()
            for task in session.tasks:
                task.cancel()
            self.stream_state = None
            self._drop_lease(None)
            if self._closing:
                reason = "closing"
            self.last_error = None if self._closing else reason
            logging.info("panda_breath [%s]: disconnected (%s)", self.name, reason)
            self._set_state(LINK_DISCONNECTED)
            self.listener.on_link_down(reason)

    def _lost(self) -> bool:
        return time.monotonic() - self._last_heard > self.silence_timeout

    def _heard(self) -> None:
        self._last_heard = time.monotonic()

    # Event stream ------------------------------------------------------------

    def _stream_silence(self) -> float:
        return min(STREAM_SILENCE_S, max(0.5, self.silence_timeout / 2.0))

    async def _stream_once(self, session: _Session) -> None:
        """Follow the event stream until it ends; then schedule the next try."""
        client = self._stream_http
        assert client is not None
        parser = db.SseParser()
        status: dict[str, Any] = {"code": None, "events": False, "error_body": bytearray(),
                                  "dropped": 0}
        self._stream_abandoned = False
        started = time.monotonic()
        self._stream_last = started

        def on_header(line: str) -> None:
            if status["code"] is None and line.startswith("HTTP/"):
                parts = line.split(" ", 2)
                if len(parts) >= 2 and parts[1].isdigit():
                    status["code"] = int(parts[1])
            elif line.lower().startswith("content-type:"):
                status["event_stream"] = "text/event-stream" in line.lower()
            elif line in ("\r\n", "\n") and status["code"] == 200:
                if status.get("event_stream"):
                    self._stream_opened()

        def on_chunk(chunk: bytes) -> None:
            if self._stream_abandoned or not session.alive:
                return  # its socket is being closed; nothing more from it counts
            if status["code"] != 200 or not status.get("event_stream"):
                body = status["error_body"]
                if len(body) < _MAX_BODY:
                    body += chunk[: _MAX_BODY - len(body)]
                return
            self._stream_last = time.monotonic()
            for event in parser.feed(chunk):
                status["events"] = True
                self._on_event(event)
            if parser.events_dropped != status["dropped"]:
                # Counted as they happen: the stream may stay open for hours.
                self.frames_dropped += parser.events_dropped - status["dropped"]
                status["dropped"] = parser.events_dropped
                self._log_limited("dropped %d over-long stream line(s)" % parser.lines_dropped)

        request = HTTPRequest(
            self._base + db.PATH_EVENTS,
            method="GET",
            headers={"Accept": "text/event-stream", "Cache-Control": "no-cache"},
            connect_timeout=min(self.connect_timeout, REQUEST_TIMEOUT_S),
            request_timeout=0,  # endless; silence is watched below
            header_callback=on_header,
            streaming_callback=on_chunk,
        )
        future = asyncio.ensure_future(client.fetch(request, raise_error=False))
        # If this task is cancelled while the stream runs, its end is still collected.
        future.add_done_callback(_collect)
        outcome = "closed by device"
        while not future.done():
            await asyncio.wait([future], timeout=0.25)
            if future.done():
                break
            if self._closing or not session.alive:
                outcome = "closing"
                self._abort_stream()
            elif time.monotonic() - self._stream_last > self._stream_silence():
                outcome = "silent for %.1f s" % self._stream_silence()
                self._abort_stream()
            elif self._lost():
                outcome = "device silent"
                self._abort_stream()
        response: HTTPResponse | None = None
        try:
            response = await future
        except Exception as exc:  # noqa: BLE001 - a failed stream is retried later
            outcome = "failed: %s" % self._describe_exc(exc)
        lasted = time.monotonic() - started
        if parser.events_dropped != status["dropped"]:
            self.frames_dropped += parser.events_dropped - status["dropped"]
            self._log_limited("dropped %d over-long stream line(s)" % parser.lines_dropped)
        code = status["code"] if status["code"] is not None else (
            response.code if response is not None else None)
        if code == 503:
            self.stream_refusals += 1
            outcome = "busy (both stream slots taken)"
            self._absorb_error_state(bytes(status["error_body"]), 503)
        elif code not in (None, 200, 599):
            outcome = "HTTP %d" % code
        elif code == 200 and not status.get("event_stream"):
            outcome = "not an event stream"
        elif response is not None and response.code == 599 and outcome == "closed by device":
            outcome = "lost: %s" % self._describe_exc(response.error)
        if self._closing:
            return
        if lasted >= STREAM_STABLE_S and status["events"]:
            self._stream_retry_index = 0
        delay = STREAM_RETRY_S[min(self._stream_retry_index, len(STREAM_RETRY_S) - 1)]
        self._stream_retry_index += 1
        self._stream_retry_at = time.monotonic() + delay
        self.stream_state = POLLING
        self._log_limited("event stream ended (%s); polling, stream retried in %.0f s" % (
            outcome, delay))
        self.listener.on_link_changed()

    def _stream_opened(self) -> None:
        self.stream_connects += 1
        self.stream_state = STREAM
        self._stream_last = time.monotonic()
        self.listener.on_link_changed()

    def _abort_stream(self) -> None:
        self._stream_abandoned = True
        tcp = self._stream_tcp
        stream = tcp.last_stream if tcp is not None else None
        if stream is not None and not stream.closed():
            stream.close()

    def _on_event(self, event: db.SseEvent) -> None:
        if event.event not in ("state", "telemetry", "message"):
            return
        self._note_frame()
        try:
            report = db.decode_state(event.data, self.actor_id)
        except FrameError as exc:
            self._drop_frame(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not end the session
            self._drop_frame("undecodable (%s)" % type(exc).__name__)
            return
        self._heard()
        self._absorb(report)

    # Polling -----------------------------------------------------------------

    async def _poll_once(self) -> None:
        try:
            body = await self._get(db.PATH_STATE)
        except Exception as exc:  # noqa: BLE001 - the silence check decides
            self._note_error("state poll failed: %s" % self._describe_exc(exc))
            return
        self.polls += 1
        self._note_frame()
        try:
            report = db.decode_state(body, self.actor_id)
        except FrameError as exc:
            self._drop_frame(str(exc))
            return
        self._heard()
        self._absorb(report)

    async def _refresh_state(self) -> None:
        """Re-read the state now (after a conflict or a lost lease)."""
        await self._poll_once()

    # What the device says ------------------------------------------------------

    def _absorb(self, report: DeviceReport) -> None:
        """Take one snapshot: reboot and ordering checks, lease facts, then the listener."""
        rebooted = False
        if report.boot_id is not None:
            if self.boot_id is not None and report.boot_id != self.boot_id:
                rebooted = True
                self._on_reboot(report.boot_id)
            self.boot_id = report.boot_id
        if (
            not rebooted and report.revision is not None and self.revision is not None
            and report.revision < self.revision
        ):
            self.stale_states += 1  # an older snapshot overtaken by a newer one
            return
        if report.revision is not None:
            self.revision = report.revision
        if report.source is not None:
            self.source = report.source
        if report.firmware_version is not None:
            self.firmware_version = report.firmware_version
        if report.comms_ms is not None:
            self.comms_ms = report.comms_ms
            if (
                self.lease_timeout is not None and self._session is not None
                and report.comms_ms != int(round(self.lease_timeout * 1000))
                and time.monotonic() - self._settings_sent_at >= SETTINGS_RETRY_S
            ):
                self._settings_sent_at = time.monotonic()
                self._spawn(self._apply_lease_timeout(report.comms_ms))
        if self._lease_id is not None and report.lease_owned is False and (
            report.revision is None or report.revision >= self._lease_revision
        ):
            if self._desired is not None and self._desired <= 0:
                # Our own off (or drying) ended it; its answer is still on its way.
                self._drop_lease(None)
            else:
                self._drop_lease("the device no longer shows our lease (%s)" % (
                    "changed by %s" % report.source if report.source else "lease inactive"))
        self.lease_owned = bool(self._lease_id is not None and report.lease_owned)
        if report.lease_expires_s is not None and self.lease_owned:
            self._lease_expires_at = time.monotonic() + report.lease_expires_s
        self._last_state = report
        if report.rejected_fields:
            self.fields_rejected += len(report.rejected_fields)
            self._log_limited("ignored malformed fields: %s" % ", ".join(report.rejected_fields))
        self._pass_on(report)

    def _on_reboot(self, boot_id: str) -> None:
        self.reboots_seen += 1
        self.revision = None
        self._off_acked_revision = None
        self._drop_lease(None)  # a reboot ends every lease; not a loss to report
        # A reboot may have lost lease_timeout (the device's comms_ms): apply
        # it again at once, not after the retry pause; until then the
        # device's watchdog runs on its own (longer) default.
        self._settings_sent_at = -SETTINGS_RETRY_S
        logging.info("panda_breath [%s]: the device rebooted (new boot id)", self.name)
        # The controller resends the desired state once it has this snapshot.
        self.listener.on_link_up()

    def _absorb_error_state(self, body: bytes, status: int) -> None:
        """API errors (and the stream's 503) carry the state: use it."""
        if not body:
            return
        try:
            result = db.decode_response(status, body, self.actor_id)
        except FrameError:
            return
        if result.state is not None:
            self._heard()
            self._absorb(result.state)

    # Writes ------------------------------------------------------------------

    def send_target(self, target: float) -> bool:
        session = self._session
        if session is None or self.state != LINK_CONNECTED:
            return False
        refusal = db.refusal_for_target(target)
        if refusal is not None:
            self._refuse(target, refusal)
            target = 0.0  # fail safe: a target the device will not take means off
        self._intent += 1
        self._desired = target
        if target <= 0:
            if refusal is None:
                self.last_refusal = None
            if self._off_is_redundant():
                self.offs_skipped += 1
            else:
                self._spawn(self._off(self._intent), track=True)
        else:
            session.wake.set()
        return True

    def _off_is_redundant(self) -> bool:
        """The device is exactly as our last acknowledged OFF left it.

        Every change at the device bumps its revision and is pushed at once,
        so a fresh report at the revision our OFF produced, showing it off and
        leaseless, needs no second OFF (the controller writes OFF on every
        report while the device shows a fault: one request per telemetry
        event otherwise).
        """
        state = self._last_state
        age = self.last_frame_age()
        return (
            state is not None and self._off_acked_revision is not None
            and state.revision == self._off_acked_revision and state.mode == MODE_OFF
            and not state.drying and self._lease_id is None
            and age is not None and age < STATE_FRESH_S
        )

    def send_drying(self, temperature: int, hours: int) -> bool:
        session = self._session
        if session is None or self.state != LINK_CONNECTED:
            return False
        low, high = db.DRYING_HOURS_RANGE
        run_hours = min(high, max(low, int(hours)))
        if run_hours != hours:
            self._log_limited("drying for %d h: DragonBreath runs %d-%d h cycles" % (
                run_hours, low, high))
        degrees = min(db.MAX_TARGET_C, max(db.MIN_TARGET_C, int(temperature)))
        self._intent += 1
        self._desired = 0.0
        self._spawn(self._drying(degrees, run_hours, self._intent), track=True)
        return True

    def send_filter(self, on: bool) -> bool:
        """Filtration on or off: a plain request, like the device's own button.

        Not held as desired state: a reboot, a fault or another controller may
        switch the blower off, and the status then says so.
        """
        if self._session is None or self.state != LINK_CONNECTED:
            return False
        self._spawn(self._filter(on), track=True)
        return True

    def clear_fault(self) -> bool:
        """Ask the device to clear a latched fault (an explicit user action only).

        The device is then off and needs a fresh ``power_on``; the controller
        resends the desired state when the report shows the fault gone.
        """
        if self._session is None or self.state != LINK_CONNECTED:
            return False
        self._spawn(self._clear_fault(), track=True)
        return True

    def _refuse(self, target: float, reason: str) -> None:
        self.last_refusal = reason
        self._log_limited("target refused: %s" % reason)
        self._call_hook("refused_target", target, reason)
        self.listener.on_link_changed()

    def _call_hook(self, name: str, *args: Any) -> None:
        """The listener's optional DragonBreath hook ``name``, if it has one."""
        hook = getattr(self.listener, name, None)
        if callable(hook):
            try:
                hook(*args)
            except Exception:  # noqa: BLE001 - the listener's problem must not end the session
                logging.exception("panda_breath [%s]: %s hook failed", self.name, name)

    def _heat_satisfied(self, target: float) -> bool:
        """The device already heats to ``target`` under our lease: only heartbeats needed."""
        state = self._last_state
        if state is None or self._lease_id is None or not self.lease_owned:
            return False
        if state.mode != MODE_ON or state.device_target is None or state.fault_latched:
            return False
        wanted = float(min(db.MAX_TARGET_C, device_degrees(target)))
        if state.device_max_target is not None:
            wanted = min(wanted, state.device_max_target)
        return abs(state.device_target - wanted) < 0.5

    async def _writer(self, session: _Session) -> None:
        """Carries heat intents to the device, one at a time, the newest winning."""
        while session.alive:
            await session.wake.wait()
            session.wake.clear()
            conflicts = 0
            while session.alive and self._desired is not None and self._desired > 0:
                target = self._desired
                intent = self._intent
                if self._heat_satisfied(target):
                    break
                state = self._last_state
                if state is not None and state.fault_latched:
                    self._refuse(target, "the device has a latched fault (%s); it must be "
                                 "cleared first" % (state.fault_reason or "no reason given"))
                    break
                if self.revision is None:
                    await self._refresh_state()
                    if self.revision is None:
                        await asyncio.sleep(COMMAND_RETRY_S)
                        continue
                outcome = await self._power_on(target, self.revision, intent)
                if outcome == "conflict" and self._intent == intent:
                    conflicts += 1
                    if conflicts >= MAX_CONFLICTS:
                        self._note_error("power_on: %d revision conflicts in a row; waiting "
                                         "for the next change" % conflicts)
                        break
                    continue  # re-read done: decide again with the new state
                if self._intent != intent:
                    continue  # a newer heat target arrived meanwhile
                break

    async def _power_on(self, target: float, revision: int, intent: int) -> str:
        request_id = db.new_request_id()
        try:
            body = db.power_on_command(target, revision, self.actor_id, request_id)
        except (ValueError, db.TargetRefused) as exc:
            self._refuse(target, str(exc))
            return "refused"
        result = await self._command(body, "power_on", intent)
        if result is None:
            return "failed"
        if result.ok:
            if result.lease_id is None:
                # A success without a lease cannot be kept alive: fail safe.
                self._note_error("power_on answered without a lease id; switching off")
                self._spawn(self._off(self._intent), track=True)
                return "failed"
            self._lease_id = result.lease_id
            self._lease_revision = (result.state.revision if result.state is not None
                                    and result.state.revision is not None else revision + 1)
            self._last_renewal = time.monotonic()
            self.leases_acquired += 1
            self.last_refusal = None
            if result.state is not None:
                self._absorb(result.state)
            self.lease_owned = True
            if self._desired is None or self._desired <= 0:
                # An OFF crossed this ON: the ON may have landed last.
                self._spawn(self._off(self._intent), track=True)
            return "ok"
        if result.state is not None:
            self._absorb(result.state)
        if result.kind == db.REVISION_CONFLICT:
            self.revision_conflicts += 1
            if result.state is None:
                await self._refresh_state()
            return "conflict"
        if result.kind == db.FAULT_LATCHED:
            self._refuse(target, "the device refuses heat while a fault is latched (%s)" % (
                self._last_state.fault_reason if self._last_state is not None
                and self._last_state.fault_reason else result.describe()))
        elif result.kind == db.BAD_REQUEST:
            self._refuse(target, "the device refused target %.0f °C (%s)" % (
                target, result.describe()))
            self._spawn(self._off(self._intent), track=True)
        elif result.kind == db.AUTH:
            self._refuse(target, "the device refused our control token (%s): set the "
                         "section's token to the device's control token" % result.describe())
        else:
            self._note_error("power_on failed: %s" % result.describe())
        return "refused"

    async def _off(self, intent: int) -> None:
        request_id = db.new_request_id()
        body = db.off_command(self.actor_id, request_id)
        result = await self._command(body, "off", intent, retry_while_superseded=True)
        if result is None:
            return
        if result.ok:
            self._drop_lease(None)
            if result.state is not None and result.state.revision is not None:
                self._off_acked_revision = result.state.revision
        elif result.kind == db.AUTH:
            self._refuse(0.0, "the device refused our control token (%s)" % result.describe())
        else:
            self._note_error("off failed: %s" % result.describe())
        if result.state is not None:
            self._absorb(result.state)

    async def _drying(self, temperature: int, hours: int, intent: int) -> None:
        for _ in range(MAX_CONFLICTS):
            if self.revision is None:
                await self._refresh_state()
            if self.revision is None or self._intent != intent:
                return
            try:
                body = db.drying_start_command(
                    temperature, hours, self.revision, self.actor_id, db.new_request_id())
            except db.TargetRefused as exc:
                self._refuse(float(temperature), str(exc))
                return
            result = await self._command(body, "drying_start", intent)
            if result is None:
                return
            if result.state is not None:
                self._absorb(result.state)
            if result.ok:
                self._drop_lease(None)  # drying runs on its own; any lease of ours is gone
                return
            if result.kind == db.REVISION_CONFLICT:
                self.revision_conflicts += 1
                if result.state is None:
                    await self._refresh_state()
                continue
            self._refuse(float(temperature), "the device refused drying (%s)" % result.describe())
            return

    async def _filter(self, on: bool) -> None:
        body = db.filter_command(on, self.actor_id, db.new_request_id())
        result = await self._command(body, "filter", None)
        if result is None:
            self._request_refused("filter %s not applied: the device did not answer"
                                  % ("on" if on else "off"))
            return
        if result.state is not None:
            self._absorb(result.state)
        if result.ok:
            return
        if result.kind == db.CONFLICT:
            reason = ("the device runs its blower for the heater now; filtration can be "
                      "switched on while it does not heat")
        else:
            reason = "the device refused it (%s)" % result.describe()
        self._request_refused("filter %s not applied: %s" % ("on" if on else "off", reason))

    def _request_refused(self, reason: str) -> None:
        self._log_limited(reason)
        self._call_hook("refused_request", reason)

    async def _clear_fault(self) -> None:
        for _ in range(MAX_CONFLICTS):
            if self.revision is None:
                await self._refresh_state()
            if self.revision is None:
                return
            body = db.clear_fault_command(self.revision, self.actor_id, db.new_request_id())
            result = await self._command(body, "clear_fault", None)
            if result is None:
                return
            if result.state is not None:
                self._absorb(result.state)
            if result.kind == db.REVISION_CONFLICT:
                self.revision_conflicts += 1
                if result.state is None:
                    await self._refresh_state()
                continue
            if not result.ok:
                self._note_error("clear_fault failed: %s" % result.describe())
            return

    async def _command(
        self, body: str, what: str, intent: int | None, retry_while_superseded: bool = False
    ) -> db.CommandResult | None:
        """POST one command, retried on network errors with the same request id."""
        for attempt in range(COMMAND_ATTEMPTS):
            if attempt:
                await asyncio.sleep(COMMAND_RETRY_S)
            if self._session is None:
                return None  # the session ended; the next one resends the desired state
            if attempt:
                if intent is not None and intent != self._intent and not (
                    retry_while_superseded and (self._desired or 0.0) <= 0
                ):
                    return None  # a newer intent took over
            result = await self._post(db.PATH_COMMAND, body, what)
            if result is not None and result.kind not in (db.BUSY, db.SERVER_ERROR):
                return result
            if result is not None:
                self._note_error("%s: %s" % (what, result.describe()))
        return None

    # Lease -------------------------------------------------------------------

    def _drop_lease(self, lost_reason: str | None) -> None:
        """Forget our lease; ``lost_reason`` when it was taken from us (reported)."""
        had = self._lease_id is not None
        self._lease_id = None
        self._lease_expires_at = None
        self.lease_owned = False
        if had and lost_reason is not None:
            self.leases_lost += 1
            self._log_limited("lease lost: %s" % lost_reason)
            self._call_hook("lease_lost", lost_reason)
            self.listener.on_link_changed()

    async def _heartbeat_loop(self, session: _Session) -> None:
        last_attempt = 0.0
        while session.alive:
            interval = db.heartbeat_interval(self.comms_ms)
            await asyncio.sleep(min(0.25, interval / 4.0))
            lease_id = self._lease_id
            if lease_id is None:
                continue
            now = time.monotonic()
            due = self._last_renewal + interval
            retry_due = last_attempt + min(1.0, interval / 3.0)
            if now < due or (last_attempt > self._last_renewal and now < retry_due):
                continue
            last_attempt = now
            result = await self._post(db.PATH_HEARTBEAT, db.heartbeat_body(lease_id), "heartbeat")
            if lease_id != self._lease_id:
                continue  # the lease changed while this heartbeat was out
            if result is None:
                self.heartbeat_failures += 1
                continue
            if result.ok:
                self.heartbeats_sent += 1
                self._last_renewal = time.monotonic()
                if result.expires_in_ms is not None:
                    self._lease_expires_at = self._last_renewal + result.expires_in_ms / 1000.0
                continue
            self.heartbeat_failures += 1
            if result.kind == db.STALE_LEASE:
                # A reboot shows in the fresh state as a new boot id (no loss to report).
                await self._refresh_state()
                if self._lease_id == lease_id:
                    self._drop_lease("the device refused our heartbeat (%s)" % (
                        result.describe()))
            else:
                self._note_error("heartbeat failed: %s" % result.describe())

    async def _apply_lease_timeout(self, device_comms_ms: int | None) -> None:
        if self.lease_timeout is None:
            return
        wanted = int(round(self.lease_timeout * 1000))
        if device_comms_ms == wanted:
            return
        self._settings_sent_at = time.monotonic()
        query = db.comms_ms_query(self.lease_timeout)
        result = await self._post(db.PATH_SETTINGS, query, "settings", form=True)
        if result is None:
            return
        if result.ok and result.comms_ms is not None:
            self.comms_ms = result.comms_ms
            if result.comms_ms != wanted:
                self._log_limited("the device set comms_ms %d (asked %d)" % (
                    result.comms_ms, wanted))
        elif not result.ok:
            self._note_error("setting comms_ms failed: %s" % result.describe())

    # HTTP --------------------------------------------------------------------

    _base = ""

    async def _get(self, path: str) -> bytes:
        client = self._http
        if client is None:
            raise ConnectionError("link closed")
        request = HTTPRequest(
            self._base + path,
            method="GET",
            headers={"Accept": "application/json"},
            connect_timeout=min(self.connect_timeout, REQUEST_TIMEOUT_S),
            request_timeout=REQUEST_TIMEOUT_S,
        )
        response = await client.fetch(request, raise_error=False)
        if response.code == 599:
            raise ConnectionError(self._describe_exc(response.error))
        if response.code != 200:
            raise ConnectionError("HTTP %d on %s" % (response.code, path))
        return response.body or b""

    async def _post(
        self, path: str, body: str, what: str, form: bool = False
    ) -> db.CommandResult | None:
        """POST with the auth header; a decoded result, or None (already noted)."""
        client = self._http
        if client is None:
            return None
        headers = db.request_headers(self._token, json_body=not form)
        if form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = HTTPRequest(
            self._base + path,
            method="POST",
            body=body,
            headers=headers,
            connect_timeout=min(self.connect_timeout, REQUEST_TIMEOUT_S),
            request_timeout=REQUEST_TIMEOUT_S,
        )
        self.frames_sent += 1
        try:
            response = await client.fetch(request, raise_error=False)
        except Exception as exc:  # noqa: BLE001 - e.g. the client closed under us
            self._note_error("%s failed: %s" % (what, self._describe_exc(exc)))
            return None
        if response.code == 599:
            self._note_error("%s failed: %s" % (what, self._describe_exc(response.error)))
            return None
        try:
            result = db.decode_response(response.code, response.body, self.actor_id)
        except FrameError as exc:
            self._drop_frame("%s response: %s" % (what, exc))
            return None
        self._heard()
        return result

    # Plumbing ----------------------------------------------------------------

    def _spawn(self, coro: Any, track: bool = False) -> None:
        if track:
            # Commands count as writes: flush() waits for them (an OFF at exit).
            self._track_write(coro)
            return
        session = self._session
        task = asyncio.ensure_future(coro)
        if session is not None:
            session.tasks = [t for t in session.tasks if not t.done()]
            session.tasks.append(task)

    async def close(self) -> None:
        self._closing = True
        self._abort_stream()

    def _note_error(self, message: str) -> None:
        message = db.redact(message, self._secret())
        self.last_error = message
        self._log_limited(message)
        self.listener.on_link_changed()

    def _secret(self) -> str | None:
        # The sentinel "web" is no secret (and would mangle words like "website").
        return None if self._token == db.DEFAULT_TOKEN else self._token

    def _describe_exc(self, exc: BaseException | None) -> str:
        if exc is None:
            return "unknown error"
        if isinstance(exc, asyncio.TimeoutError):
            return "timed out"
        text = str(exc) or type(exc).__name__
        return db.redact(text[:200], self._secret())

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        expires = None
        if self.lease_owned and self._lease_expires_at is not None:
            expires = round(max(0.0, self._lease_expires_at - time.monotonic()), 1)
        info.update({
            "address": self.address,
            "firmware_version": self.firmware_version,
            "device_id": self.info.device_id if self.info else None,
            "stream": self.stream_state,
            "stream_refusals": self.stream_refusals,
            "lease_owned": self.lease_owned,
            "lease_expires_s": expires,
            "lease_timeout": self.lease_timeout,
            "comms_ms": self.comms_ms,
            "source": self.source,
            "boot_id": self.boot_id,
            "revision": self.revision,
            "heartbeats_sent": self.heartbeats_sent,
            "offs_skipped": self.offs_skipped,
            "heartbeat_failures": self.heartbeat_failures,
            "leases_lost": self.leases_lost,
            "revision_conflicts": self.revision_conflicts,
            "reboots_seen": self.reboots_seen,
            "last_refusal": self.last_refusal,
        })
        return info
