"""DragonBreath's HTTP API v2 on the simulated device: routes, validation, JSON, event streams.

The device's policy is in ``dragonbreath``; this module is what a client
meets on the wire: the routes, the control token, command validation with its
error codes, ``expected_revision`` and the replay cache of the last two
answers, the A.5 state snapshot, the ``/settings`` form and at most
``max_streams`` Server-Sent-Event streams.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pbsim import hostile
from pbsim.dragonbreath import (
    API_VERSION,
    AUTH_HEADER,
    COMMS_MS_MAX,
    FOLDBACK_CUT_C,
    MAX_ABS_C,
    MAX_REVISION,
    MIN_TARGET_C,
    DragonBreathDevice,
    Refused,
)
from pbsim.http_server import EventStream, HttpRequest, HttpResponse, StreamResponse
from pbsim.journal import Journal, Outcome
from pbsim.sessions import is_bridge

#: Kept by hostile events where the kind allows: the client checks it first.
HOSTILE_KEEP = ("api_version",)
#: Commands that need ``expected_revision`` (and are kept for a replay).
REVISED = ("power_on", "auto", "drying_start", "clear_fault")
POST_PATHS = ("/api/v2/command", "/api/v2/heartbeat", "/settings", "/api/v2/token")


def state_json(d: DragonBreathDevice) -> dict[str, Any]:
    """The full A.5 snapshot."""
    lease = d.lease
    return {
        "api_version": API_VERSION,
        "device_id": d.options.device_id,
        "boot_id": d.boot_id,
        "firmware": d.options.firmware_version,
        "state_revision": d.revision,
        "mode": d.mode,
        "source": d.source,
        "target": {
            "requested_c": d.requested_c if d.mode != "off" else 0,
            "effective_c": d.effective_c(),
            "maximum_c": d.max_c,
        },
        "config": {"max": d.max_c, "max_abs": MAX_ABS_C, "comms_ms": d.comms_ms},
        "heater": {"demand": d.demand(), "output": d.relay_on},
        "fan": {
            "requested_percent": d.filter_percent,
            "effective_percent": 100 if d.fan_on else 0,
            "reason": d.fan_reason(),
        },
        "sensors": {
            "chamber": {"temperature_c": d.chamber_c(), "status": d.sensor_status("chamber")},
            "ptc": {"temperature_c": d.ptc_c(), "status": d.sensor_status("ptc")},
        },
        "environment": {
            "control_source": "klipper", "moonraker_connected": False,
            "bed_temperature_c": None, "bed_target_c": None,
            "auto_engaged": d.mode == "auto" and d.auto_engaged,
            "auto_filtering": False,
            "auto_bed_threshold_c": d.params["auto_bed_threshold_c"],
        },
        "drying": {"active": d.mode == "drying", "remaining_seconds": d.drying_remaining()},
        "params": dict(d.params),
        "control": {
            "lease": {
                "active": lease is not None,
                "owner": lease.owner if lease is not None else None,
                "expires_in_ms": int(d.lease_remaining(time.monotonic()) * 1000),
            },
        },
        "safety": {
            "fault_latched": d.fault_latched or d.inhibited,
            "inhibited": d.inhibited,
            "reason": d.fault_reason,
        },
    }


class EventStreams:
    """``GET /api/v2/events``: the open streams, phantom holders and a silenced spell."""

    def __init__(self, device: DragonBreathDevice, journal: Journal, max_streams: int) -> None:
        self.device = device
        self.journal = journal
        self.max_streams = max_streams
        self.open: dict[int, EventStream] = {}
        self.phantom_streams = 0
        self.phantom_until: float | None = None
        self.silent_until = 0.0

    @property
    def silent(self) -> bool:
        return time.monotonic() < self.silent_until

    def phantoms(self) -> int:
        if self.phantom_until is not None and time.monotonic() >= self.phantom_until:
            self.phantom_streams = 0
            self.phantom_until = None
        return self.phantom_streams

    def occupy(self, count: int | None = None, seconds: float | None = None) -> int:
        """Phantom clients (the dashboard, /diag) hold ``count`` stream slots (default all)."""
        n = self.max_streams if count is None else int(count)
        if n < 0:
            raise ValueError("count must not be negative")
        self.phantom_streams = n
        self.phantom_until = None if not seconds else time.monotonic() + float(seconds)
        return n

    def silence(self, seconds: float = 10.0) -> None:
        """Open streams stay open but carry nothing for ``seconds`` (a half-open stream)."""
        self.silent_until = time.monotonic() + float(seconds)

    def drop(self) -> int:
        count = len(self.open)
        for stream in list(self.open.values()):
            stream.abort()
        self.open.clear()
        return count

    def accept(self, bridge: bool = False) -> StreamResponse:
        if len(self.open) + self.phantoms() >= self.max_streams:
            self.journal.count("streams_refused")
            raise Refused(503, "busy", "event stream slots full")

        def opened(stream: EventStream) -> None:
            self.open[stream.id] = stream
            self.journal.count("streams_opened")
            if bridge:
                self.journal.sessions.opened(("stream", stream.id))
            if not self.silent:
                stream.send("state", _compact(state_json(self.device)), self.device.revision)

        def closed(stream: EventStream) -> None:
            self.open.pop(stream.id, None)
            self.journal.sessions.closed(("stream", stream.id))

        return StreamResponse(opened, closed)

    def broadcast(self, event: str) -> int:
        """The state snapshot as ``event`` (``state`` carries the revision as its id)."""
        if self.silent or not self.device.up:
            return 0
        data = _compact(state_json(self.device))
        event_id = self.device.revision if event == "state" else None
        sent = sum(stream.send(event, data, event_id) for stream in list(self.open.values()))
        self.journal.count("%s_events_sent" % event, sent)
        return sent

    def send_hostile(self, kind: str, size: int | None, depth: int) -> int:
        """Hostile ``telemetry`` events, one ``data:`` line each, so the framing holds."""
        pad = size or (hostile.GIANT_WS_BYTES if kind == "giant" else hostile.OVERSIZE_BYTES)
        payloads = hostile.nested_payloads(kind, state_json(self.device), HOSTILE_KEEP, pad, depth)
        return sum(
            stream.send("telemetry", payload)
            for payload in payloads for stream in list(self.open.values())
        )


class DragonBreathApi:
    """Answers one HTTP request the way the firmware's httpd does."""

    def __init__(
        self, device: DragonBreathDevice, journal: Journal, streams: EventStreams,
        sim_routes: dict[str, Callable[[dict[str, str]], tuple[int, Any]]],
        uptime: Callable[[], float],
    ) -> None:
        self.device = device
        self.flash = device.flash
        self.options = device.options
        self.journal = journal
        self.streams = streams
        self.sim_routes = sim_routes
        self.uptime = uptime
        self.response_delay = float(device.options.response_delay)
        #: Seconds a heartbeat's answer is held back after the renewal took effect
        #: (a slow way back: the device renewed, the host hears it late).
        self.heartbeat_answer_delay = 0.0
        self.replay: OrderedDict[tuple[str, str], tuple[int, int, dict[str, Any]]] = OrderedDict()

    def reset(self) -> None:
        """A reboot forgets the replay cache."""
        self.replay.clear()

    async def handle(self, request: HttpRequest) -> HttpResponse | StreamResponse:
        path = request.path
        self.journal.count("http_requests")
        sim_route = self.sim_routes.get(path)
        if sim_route is not None:
            return HttpResponse(*sim_route(dict(request.query)))
        if self.response_delay > 0 and path.startswith(("/api/", "/settings")):
            self.journal.count("delayed_requests")
            await asyncio.sleep(self.response_delay)
        try:
            if request.method == "GET":
                return self._get(path, request.headers.get("user-agent"))
            answer = self._post(request)
            if path == "/api/v2/heartbeat" and self.heartbeat_answer_delay > 0:
                await asyncio.sleep(self.heartbeat_answer_delay)
            return answer
        except Refused as exc:
            self.journal.count("api_errors")
            self.journal.count("error_" + exc.code)
            body = {"ok": False, "error": exc.code, "message": exc.message,
                    "state": state_json(self.device)}
            return HttpResponse(exc.status, body)

    def _get(self, path: str, user_agent: str | None = None) -> HttpResponse | StreamResponse:
        if path == "/api/v2/info":
            return HttpResponse(200, self._info())
        if path == "/api/v2/state":
            self.journal.count("state_reads")
            return HttpResponse(200, state_json(self.device))
        if path == "/api/v2/health":
            return HttpResponse(200, self._health())
        if path == "/settings":
            return HttpResponse(200, self.settings_json())
        if path == "/api/v2/events":
            return self.streams.accept(is_bridge(user_agent))
        if path == "/api/v2/logs":
            return HttpResponse(200, {"api_version": 2, "count": 0, "entries": []})
        # The portal's catch-all serves the dashboard for any other GET.
        return HttpResponse(200, "<!doctype html><title>DragonBreath</title>",
                            content_type="text/html")

    def _post(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if request.method != "POST":
            return HttpResponse(405, {"ok": False, "error": "invalid_command"})
        if path not in POST_PATHS:
            return HttpResponse(404, {"ok": False, "error": "not_found"})
        if not self._authorised(request):
            self.journal.count("auth_failures")
            raise Refused(403, "auth_failed", "missing or wrong X-DragonBreath-Auth")
        if path == "/settings":
            return HttpResponse(200, self.apply_settings(request.form()))
        if request.too_large:
            raise Refused(400, "invalid_command", "body too large")
        body = _json_body(request)
        if path == "/api/v2/heartbeat":
            return HttpResponse(200, self._heartbeat(body))
        if path == "/api/v2/token":
            token = body.get("token") if isinstance(body, dict) else None
            if token is not None and (not isinstance(token, str) or len(token) > 64):
                raise Refused(400, "invalid_command", "token must be at most 64 characters")
            self.flash.update({"ctl_token": token or None})
            return HttpResponse(200, {"ok": True, "token_set": bool(token)})
        return HttpResponse(*self._command(body))

    def _authorised(self, request: HttpRequest) -> bool:
        sent = request.headers.get(AUTH_HEADER, "")
        token = self.options.token or self.flash.get("ctl_token")
        if token:
            return secrets.compare_digest(sent.encode(), str(token).encode())
        return bool(sent)

    def _info(self) -> dict[str, Any]:
        o = self.options
        return {
            "api_version": API_VERSION, "device_id": o.device_id,
            "boot_id": self.device.boot_id, "firmware": o.firmware_version,
            "project": "dragonbreath",
            "ui": {"schema": 1, "product": "dragonbreath", "display_name": "DragonBreath"},
            "rref_kohm": 82, "inactive_slot": {"project": "panda_breath", "version": "V1.0.3",
                                               "label": "stock"},
            "update": {"repo": "plastikman/DragonBreath", "asset_prefix": "dragonbreath-"},
            "capabilities": ["power_on", "auto", "drying", "lease_heartbeat", "sse"],
        }

    def _health(self) -> dict[str, Any]:
        return {
            "api_version": API_VERSION, "boot_id": self.device.boot_id,
            "uptime_ms": int(self.uptime() * 1000),
            "free_heap_bytes": 150_000, "minimum_free_heap_bytes": 120_000,
            "wifi_rssi_dbm": -55, "wifi_channel": 6,
            "sse_clients": len(self.streams.open),
        }

    # -- POST /api/v2/heartbeat ----------------------------------------------------------------
    def _heartbeat(self, body: Any) -> dict[str, Any]:
        self.journal.count("heartbeats_received")
        try:
            if not isinstance(body, dict) or body.get("api_version") != API_VERSION:
                raise Refused(400, "invalid_command", "api_version must be 2")
            lease_id = body.get("lease_id")
            if not isinstance(lease_id, str) or len(lease_id) != 32:
                raise Refused(400, "invalid_command", "lease_id must be 32 hex characters")
            self.device.renew_lease(lease_id, time.monotonic())
        except Refused:
            self.journal.count("heartbeats_refused")
            raise
        self.journal.count("heartbeats_accepted")
        d = self.device
        return {"ok": True, "expires_in_ms": d.comms_ms, "state_revision": d.revision}

    # -- POST /api/v2/command -------------------------------------------------------------------
    def _command(self, body: Any) -> tuple[int, dict[str, Any]]:
        self.journal.count("commands_received")
        command = body.get("command") if isinstance(body, dict) else None
        name = command.get("name") if isinstance(command, dict) else None
        outcome = Outcome()
        try:
            status, answer = self.command(body)
        except Refused as exc:
            outcome.reject(exc.code)
            self._record(name, body, outcome)
            raise
        outcome.apply(str(name))
        self._record(name, body, outcome)
        return status, answer

    def _record(self, name: Any, body: Any, outcome: Outcome) -> None:
        shown = {"command": name}
        if isinstance(body, dict):
            shown["expected_revision"] = body.get("expected_revision")
            actor = body.get("actor")
            shown["actor"] = actor.get("id") if isinstance(actor, dict) else None
            command = body.get("command")
            if isinstance(command, dict):
                shown.update({k: v for k, v in command.items() if k != "name"})
        self.journal.record("http", shown, outcome, changed=list(outcome.applied))

    def command(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Validate and run one command: (HTTP status, response body)."""
        actor_id, request_id, command = _envelope(body)
        name = command["name"]
        key = (actor_id, request_id)
        cached = self.replay.get(key)
        d = self.device
        if cached is not None:
            revision_after, status, response = cached
            if revision_after == d.revision:
                return status, response  # the original answer, replayed
            raise Refused(409, "revision_conflict", "request_id reused after a later change")
        if name in REVISED:
            expected = body.get("expected_revision")
            if (
                isinstance(expected, bool) or not isinstance(expected, int)
                or not 0 <= expected < MAX_REVISION
            ):
                raise Refused(400, "invalid_command", "expected_revision missing or malformed")
            if expected != d.revision:
                raise Refused(409, "revision_conflict", "state changed; re-read and decide")
        extra = self._run(name, command, body["actor"]["kind"], actor_id)
        response = {"ok": True, "request_id": request_id, **extra, "state": state_json(d)}
        if name in REVISED:
            self.replay[key] = (d.revision, 200, response)
            while len(self.replay) > 2:
                self.replay.popitem(last=False)
        return 200, response

    def _run(self, name: str, command: dict[str, Any], source: str, actor_id: str
             ) -> dict[str, Any]:
        d = self.device
        if name in ("off", "drying_stop"):
            if d.mode != "off" or d.lease is not None:
                d.to_off()
                d.bump(source)
        elif name == "power_on":
            target = _target(command)
            d.heat_allowed()
            d.start_power_on(target)
            d.params["manual_target_c"] = d.requested_c
            lease_id = d.issue_lease(actor_id, source, time.monotonic())
            d.bump(source)
            return {"lease_id": lease_id}
        elif name == "auto":
            target = _target(command)
            threshold = _number(command.get("bed_threshold_c"))
            if threshold is None or not 40 <= threshold <= 120:
                raise Refused(400, "invalid_command", "bed_threshold_c must be 40-120")
            d.heat_allowed()
            d.start_auto(target)
            d.params["auto_target_c"] = d.requested_c
            d.params["auto_bed_threshold_c"] = threshold
            d.bump(source)
        elif name == "drying_start":
            target = _target(command)
            hours = command.get("hours")
            if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 12:
                raise Refused(400, "invalid_command", "hours must be an integer 1-12")
            d.heat_allowed()
            d.start_drying(min(target, d.max_c, MAX_ABS_C), hours)
            d.bump(source)
        elif name == "filter":
            percent = _number(command.get("percent"))
            if percent is None or not 0 <= percent <= 100:
                raise Refused(400, "invalid_command", "percent must be 0-100")
            if percent > 0 and (d.demand() or d.purging):
                raise Refused(409, "heater_busy", "the blower is busy with the heater")
            d.filter_percent = int(percent)
            d.bump(source)
        elif name == "clear_fault":
            d.clear_fault(source)
        else:
            raise Refused(400, "invalid_command", "unknown command")
        return {}

    # -- /settings ---------------------------------------------------------------------------
    def settings_json(self) -> dict[str, Any]:
        d = self.device
        return {
            "max": d.max_c, "max_min": MIN_TARGET_C, "max_abs": MAX_ABS_C,
            "comms_ms": d.comms_ms, "comms_ms_min": self.options.comms_ms_min,
            "comms_ms_max": COMMS_MS_MAX,
            "cool_release": self.flash.get("cool_release", 40), "cool_release_min": 30,
            "cool_release_max": 65, "fb_cut": 0, "fb_cut_default": FOLDBACK_CUT_C,
            "fb_cut_min": 90, "fb_cut_max": 104,
            "filter_temp": d.params["filter_temp_c"], "filter_temp_min": 20,
            "filter_temp_max": 60, "filter_auto": d.params["filter_auto_enable"],
            "leds_enabled": True,
        }

    def apply_settings(self, values: dict[str, str]) -> dict[str, Any]:
        """``POST /settings`` (a form): clamped, saved; a new TTL counts from the next renewal."""
        d = self.device
        if not {"comms_ms", "max", "cool_release", "fb_cut", "filter_temp", "filter_auto",
                "leds_enabled"} & set(values):
            raise Refused(400, "invalid_command", "no known setting")
        number = _number(_float_or_none(values.get("comms_ms")))
        if number is not None:
            d.comms_ms = int(min(COMMS_MS_MAX, max(self.options.comms_ms_min, number)))
            self.flash.update({"comms_ms": d.comms_ms})
        number = _number(_float_or_none(values.get("max")))
        if number is not None:
            d.max_c = float(min(MAX_ABS_C, max(MIN_TARGET_C, number)))
            self.flash.update({"max": d.max_c})
        number = _number(_float_or_none(values.get("cool_release")))
        if number is not None:
            self.flash.update({"cool_release": min(65.0, max(30.0, number))})
        return self.settings_json()


def _envelope(body: Any) -> tuple[str, str, dict[str, Any]]:
    """The command's actor id, request id and command object, or the error the device gives."""
    if not isinstance(body, dict):
        raise Refused(400, "invalid_command", "body is not a JSON object")
    if body.get("api_version") != API_VERSION or isinstance(body.get("api_version"), bool):
        raise Refused(400, "unsupported_api_version", "api_version must be 2")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 64:
        raise Refused(400, "invalid_command", "request_id must be 1-64 characters")
    actor = body.get("actor")
    if not isinstance(actor, dict) or actor.get("kind") not in ("klipper", "web"):
        raise Refused(400, "invalid_command", "actor.kind must be klipper or web")
    actor_id = actor.get("id")
    if not isinstance(actor_id, str) or not 0 < len(actor_id) <= 31:
        raise Refused(400, "invalid_command", "actor.id must be 1-31 characters")
    command = body.get("command")
    if not isinstance(command, dict) or not isinstance(command.get("name"), str):
        raise Refused(400, "invalid_command", "command.name missing")
    return actor_id, request_id, command


def _json_body(request: HttpRequest) -> Any:
    if not request.body:
        raise Refused(400, "invalid_command", "empty body")
    try:
        return json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Refused(400, "invalid_command", "body is not JSON") from None


def _target(command: dict[str, Any]) -> float:
    target = _number(command.get("target_c"))
    if target is None or target < MIN_TARGET_C:
        raise Refused(400, "invalid_command", "target_c must be at least 30")
    return target


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
