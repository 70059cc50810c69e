"""The DragonBreath firmware's HTTP JSON API v2 and its event stream, without I/O.

DragonBreath (plastikman/DragonBreath, v1.1.11) is open firmware for the
Panda Breath.  It serves no WebSocket; a host talks to it over plain HTTP on
port 80 (reference: dragonbreath-and-helixscreen.md, Part A):

* ``GET /api/v2/info`` names the device, its ``boot_id`` and ``api_version: 2``;
* ``GET /api/v2/state`` is a full snapshot; ``GET /api/v2/events`` is a
  Server-Sent-Events stream (``sse``) carrying the same snapshot (``state`` events on
  every revision change, ``telemetry`` every 2 s); command responses carry it too;
* ``POST /api/v2/command`` (``off``, ``power_on``, ``drying_start``, ...)
  needs the header ``X-DragonBreath-Auth`` and, for revision-aware commands,
  the snapshot's ``state_revision`` as ``expected_revision``;
* a remote ``power_on`` returns a *lease*: the device switches itself off and
  latches a fault when ``POST /api/v2/heartbeat`` does not renew it within
  ``config.comms_ms`` (10-300 s).

Nothing here does I/O and nothing here keeps raw bodies: every decoder turns
device text into a ``DeviceReport`` (or the small result types below) or
raises ``FrameError``, whatever the input.  The auth token only ever goes
into request headers; no text made here contains it, and ``redact`` removes
it from any text a caller builds.

Assumptions where the reference says "unconfirmed" or is silent are marked
ASSUMED below.
"""

from __future__ import annotations

import functools
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .model import (
    MODE_AUTO,
    MODE_DRYING,
    MODE_OFF,
    MODE_ON,
    DeviceReport,
    FrameError,
    as_number,
    device_degrees,
    parse_json_object,
    plausible_temperature,
)

API_VERSION = 2
AUTH_HEADER = "X-DragonBreath-Auth"
#: With no control token set on the device any non-empty value passes; its own
#: pages send this sentinel.
DEFAULT_TOKEN = "web"
MAX_TOKEN_CHARS = 64

PATH_INFO = "/api/v2/info"
PATH_STATE = "/api/v2/state"
PATH_EVENTS = "/api/v2/events"
PATH_COMMAND = "/api/v2/command"
PATH_HEARTBEAT = "/api/v2/heartbeat"
PATH_SETTINGS = "/settings"

#: The policy refuses heat targets below this (400 invalid_command).
MIN_TARGET_C = 30
#: ``config.max_abs``: nothing heats above this, whatever ``config.max`` says.
MAX_TARGET_C = 70
#: ``config.comms_ms`` range in seconds (the device clamps ``POST /settings``).
COMMS_S_RANGE = (10, 300)
#: ``drying_start`` hours: integers 1..12.
DRYING_HOURS_RANGE = (1, 12)
#: ``drying_start`` target: a heat target like any other (at least 30 °C, at most 70).
DRYING_TEMP_RANGE = (MIN_TARGET_C, MAX_TARGET_C)
#: The helper's fixed cadence; a bridge must also stay within a third of comms_ms.
MAX_HEARTBEAT_INTERVAL_S = 30.0
#: Never heartbeat faster than this, whatever a device (or simulator) says.
MIN_HEARTBEAT_INTERVAL_S = 0.2

#: A state snapshot is about 1.5 KB; anything over this is not from the device.
MAX_DOCUMENT_BYTES = 32 * 1024

ACTOR_KIND = "klipper"
MAX_ACTOR_ID_CHARS = 31
_LEASE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
#: Device words (modes, sources, error codes, sensor statuses): short identifiers.
_WORD_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
_BOOT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_REVISION = 2**32 - 1

_MODES = {"off": MODE_OFF, "power_on": MODE_ON, "auto": MODE_AUTO, "drying": MODE_DRYING}
_SENSOR_STATUS = {"open": "open circuit", "short": "short circuit"}
_SENSOR_FAULT_KEYS = {"chamber": "chamber_sensor", "ptc": "ptc_sensor"}

# Outcomes of a command, heartbeat or settings request (CommandResult.kind).
OK = "ok"
REVISION_CONFLICT = "revision_conflict"
BUSY = "busy"
AUTH = "auth"
BAD_REQUEST = "bad_request"
FAULT_LATCHED = "fault_latched"
STALE_LEASE = "stale_lease"
CONFLICT = "conflict"
SERVER_ERROR = "server_error"
UNEXPECTED = "unexpected"

_KIND_BY_ERROR = {
    "revision_conflict": REVISION_CONFLICT,
    "busy": BUSY,
    "auth_failed": AUTH,
    "invalid_command": BAD_REQUEST,
    "unsupported_api_version": BAD_REQUEST,
    "confirmation_required": BAD_REQUEST,
    "fault_latched": FAULT_LATCHED,
    "inhibited": FAULT_LATCHED,
    "stale_lease": STALE_LEASE,
    "heater_busy": CONFLICT,
    "heater_active": CONFLICT,
    "persist_failed": SERVER_ERROR,
    "internal": SERVER_ERROR,
}


class TargetRefused(ValueError):
    """A command the device would refuse; the message says why (never a secret)."""


# Decoding ------------------------------------------------------------------------


_Decoder = TypeVar("_Decoder", bound="Callable[..., Any]")


def _frame_errors_only(what: str) -> Callable[[_Decoder], _Decoder]:
    """Whatever the input, the decoder returns or raises FrameError; a decoder
    bug's FrameError names the exception's type, never the input."""

    def wrap(decode: _Decoder) -> _Decoder:
        @functools.wraps(decode)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return decode(*args, **kwargs)
            except FrameError:
                raise
            except Exception as exc:
                raise FrameError("undecodable %s (%s)" % (what, type(exc).__name__)) from None

        return cast(_Decoder, guarded)

    return wrap


@dataclass
class DeviceInfo:
    """``GET /api/v2/info``: who the device is (no secrets in it)."""

    device_id: str | None = None
    boot_id: str | None = None
    firmware: str | None = None
    project: str | None = None
    product: str | None = None
    capabilities: tuple[str, ...] = ()


@dataclass
class CommandResult:
    """What a command, heartbeat or settings request came back with."""

    status: int
    kind: str
    #: The device's error code (an identifier such as ``revision_conflict``), if any.
    error: str | None = None
    #: ``power_on`` only: the new lease's 32-hex id.  Never logged or shown.
    lease_id: str | None = field(default=None, repr=False)
    #: Heartbeat: time left on the renewed lease.
    expires_in_ms: float | None = None
    #: Heartbeat: the revision the device is at.
    state_revision: int | None = None
    #: The snapshot that came with the response (success and API errors carry one).
    state: DeviceReport | None = None
    #: ``POST /settings``: the comms watchdog the device now uses.
    comms_ms: int | None = None

    @property
    def ok(self) -> bool:
        return self.kind == OK

    def describe(self) -> str:
        """A log-safe summary: HTTP status and the device's error code, nothing else."""
        if self.ok:
            return "HTTP %d ok" % self.status
        return "HTTP %d %s" % (self.status, self.error or self.kind)


@_frame_errors_only("info")
def decode_info(data: str | bytes) -> DeviceInfo:
    """``GET /api/v2/info``; FrameError unless it is a DragonBreath API v2 device."""
    message = parse_json_object(_text(data, "info"), "info")
    version = message.get("api_version")
    if isinstance(version, bool) or version != API_VERSION:
        # Stock firmware serves its web page (HTML) here; other APIs differ.
        raise FrameError("not a DragonBreath API v2 device")
    info = DeviceInfo(
        device_id=_label(message.get("device_id")),
        boot_id=_boot_id(message.get("boot_id")),
        firmware=_label(message.get("firmware")),
        project=_label(message.get("project")),
    )
    ui = message.get("ui")
    if isinstance(ui, Mapping):
        info.product = _label(ui.get("product"))
    caps = message.get("capabilities")
    if isinstance(caps, list):
        info.capabilities = tuple(c for c in caps[:32] if isinstance(c, str) and _WORD_RE.match(c))
    return info


@_frame_errors_only("state")
def decode_state(
    data: str | bytes | Mapping[str, Any], actor_id: str | None = None
) -> DeviceReport:
    """One state snapshot (``/api/v2/state``, an SSE event, a command response).

    ``actor_id`` is this bridge's actor: ``lease_owned`` is true only when the
    active lease's owner is exactly that id (``source`` says who changed the
    device last, which is not the same thing).  Any input gives a report or
    FrameError; the FrameError's text never quotes the input.
    """
    if isinstance(data, Mapping):
        message = data
    else:
        message = parse_json_object(_text(data, "state"), "state")
    report = DeviceReport(snapshot=True)
    version = message.get("api_version")
    if version is not None and (isinstance(version, bool) or version != API_VERSION):
        raise FrameError("state of an unsupported API version")
    _decode_fields(message, _FIELDS, report)
    if "firmware" in message:
        report.firmware_version = _label(message["firmware"])
    if report.mode is not None:
        report.work_on = report.mode != MODE_OFF
    faults = _decode_sensors(message, report)
    safety = _decode_safety(message, report)
    if faults is not None or safety is not None:
        merged = dict(faults or {})
        merged.update(safety or {})
        report.faults = merged
    _decode_fields(message, _LATE_FIELDS, report)
    _decode_lease(message, report, actor_id)
    return report


def _decode_sensors(message: Mapping[str, Any], report: DeviceReport) -> dict[str, str] | None:
    sensors = _group(message, "sensors", report)
    if sensors is None:
        return None
    faults: dict[str, str] = {}
    for name, fault_key in _SENSOR_FAULT_KEYS.items():
        sensor = sensors.get(name)
        if sensor is None:
            continue
        if not isinstance(sensor, Mapping):
            report.rejected_fields.append("sensors." + name)
            continue
        status = sensor.get("status", "ok")
        usable = status == "ok"
        if not usable:
            if status == "uninit":
                # ASSUMED: "uninit" is the short window before the first
                # sample after boot, not a fault; there is just no reading yet
                # (the device itself trips only on open/short while armed).
                pass
            elif isinstance(status, str) and status in _SENSOR_STATUS:
                faults[fault_key] = _SENSOR_STATUS[status]
            else:
                # An unknown status fails closed: it counts as a fault.
                word = _word(status)
                faults[fault_key] = "status %s" % (word or "unknown")
                report.rejected_fields.append("sensors.%s.status" % name)
        value = sensor.get("temperature_c")
        reading = None
        if value is not None:
            reading = plausible_temperature(value)
            if reading is None:
                report.rejected_fields.append("sensors.%s.temperature_c" % name)
        if not usable:
            reading = None  # a sensor that is not "ok" reads nothing meaningful
        if name == "chamber":
            report.chamber_temp = reading
        else:
            report.ptc_temp = reading
    return faults


def _decode_safety(message: Mapping[str, Any], report: DeviceReport) -> dict[str, str] | None:
    safety = _group(message, "safety", report)
    if safety is None:
        return None
    latched = safety.get("fault_latched")
    inhibited = safety.get("inhibited")
    for key, value in (("fault_latched", latched), ("inhibited", inhibited)):
        if value is not None and not isinstance(value, bool):
            report.rejected_fields.append("safety." + key)
    latched_b = latched is True
    inhibited_b = inhibited is True
    report.fault_latched = latched_b or inhibited_b
    reason = safety.get("reason")
    report.fault_reason = _sentence(reason) if reason is not None else None
    if reason is not None and report.fault_reason is None:
        report.rejected_fields.append("safety.reason")
    if inhibited_b:
        return {"safety": "inhibited until reboot: %s" % (report.fault_reason or "no reason")}
    if latched_b:
        return {"safety": report.fault_reason or "fault latched"}
    return {}


def _decode_lease(message: Mapping[str, Any], report: DeviceReport, actor_id: str | None) -> None:
    control = message.get("control")
    if control is None:
        return
    lease = control.get("lease") if isinstance(control, Mapping) else None
    if not isinstance(lease, Mapping):
        report.rejected_fields.append("control.lease")
        return
    active = lease.get("active")
    if not isinstance(active, bool):
        report.rejected_fields.append("control.lease.active")
        return
    owner = lease.get("owner")
    if active:
        if actor_id is not None:
            report.lease_owned = isinstance(owner, str) and owner == actor_id
        expires = as_number(lease.get("expires_in_ms"))
        if expires is None or expires < 0:
            report.rejected_fields.append("control.lease.expires_in_ms")
        else:
            report.lease_expires_s = expires / 1000.0
    else:
        report.lease_owned = False
        report.lease_expires_s = 0.0


@_frame_errors_only("response")
def decode_response(
    status: int, body: str | bytes | None, actor_id: str | None = None
) -> CommandResult:
    """A command, heartbeat or settings response, whatever its status.

    Error statuses always give a result (their body may be missing or be a
    proxy's HTML page); a 2xx whose body is unusable raises FrameError, as
    does a status that is not an HTTP status.
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise FrameError("not an HTTP status")
    message: Mapping[str, Any] | None = None
    if body:
        try:
            message = parse_json_object(_text(body, "response"), "response")
        except FrameError:
            if 200 <= status < 300:
                raise
            message = None
    elif 200 <= status < 300:
        raise FrameError("empty response")
    error = _word(message.get("error")) if message is not None else None
    if 200 <= status < 300:
        assert message is not None
        kind = OK if message.get("ok", True) is True and error is None else UNEXPECTED
    else:
        kind = _KIND_BY_ERROR.get(error or "", "") or _kind_by_status(status)
    result = CommandResult(status=status, kind=kind, error=error)
    if message is None:
        return result
    lease_id = message.get("lease_id")
    if isinstance(lease_id, str) and _LEASE_ID_RE.match(lease_id):
        result.lease_id = lease_id
    expires = as_number(message.get("expires_in_ms"))
    if expires is not None and expires >= 0:
        result.expires_in_ms = expires
    if "state_revision" in message:
        result.state_revision = _revision(message["state_revision"])
    comms = as_number(message.get("comms_ms"))
    if comms is not None and 100 <= comms <= 3_600_000:
        result.comms_ms = int(comms)
    state = message.get("state")
    if isinstance(state, Mapping):
        try:
            result.state = decode_state(state, actor_id)
        except FrameError:
            result.state = None
    return result


def _kind_by_status(status: int) -> str:
    if status in (401, 403):
        return AUTH
    if status == 400 or status == 413:
        return BAD_REQUEST
    if status == 409:
        return CONFLICT
    if status == 503:
        return BUSY
    if status >= 500:
        return SERVER_ERROR
    return UNEXPECTED


# Value helpers -----------------------------------------------------------------------


def _text(data: str | bytes, what: str) -> str:
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise FrameError("oversized %s (%d bytes)" % (what, len(raw)))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("%s is not UTF-8" % what) from None
    if not isinstance(data, str):
        raise FrameError("%s is not text" % what)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FrameError("oversized %s (%d characters)" % (what, len(data)))
    return data


def _revision(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value < _MAX_REVISION + 1 else None


def _boot_id(value: Any) -> str | None:
    if isinstance(value, str) and _BOOT_ID_RE.match(value):
        return value
    return None


def _word(value: Any) -> str | None:
    if isinstance(value, str) and _WORD_RE.match(value):
        return value
    return None


def _label(value: Any) -> str | None:
    """A short printable name (firmware tag, device id), or None."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return None
    if not value.isprintable():
        return None
    return value


def _sentence(value: Any) -> str | None:
    """A short printable device text (a fault reason), or None."""
    if not isinstance(value, str):
        return None
    cleaned = "".join(ch for ch in value[:200] if ch.isprintable()).strip()
    return cleaned[:120] or None


def _within(low: float, high: float, above: bool = False) -> Callable[[Any], float | None]:
    """A parser for numbers in [low, high] (above: in (low, high])."""

    def parse(value: Any) -> float | None:
        number = as_number(value)
        if number is None or not low <= number <= high or (above and number == low):
            return None
        return number

    return parse


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _mode(value: Any) -> str | None:
    return _MODES.get(value) if isinstance(value, str) else None


def _requested(value: Any) -> bool | None:
    percent = _within(0, 100)(value)
    return None if percent is None else percent > 0


def _comms_ms(value: Any) -> int | None:
    # Wider than the device's 10-300 s: a simulator may shrink it for tests.
    number = _within(100, 3_600_000)(value)
    return None if number is None else int(number)


if TYPE_CHECKING:
    #: (key, DeviceReport attribute, parser giving None for an unusable value)
    _Field = tuple[str, str, Callable[[Any], Any]]

#: Plain fields of a snapshot, by group ("" is the top level).  A group that is
#: not an object, or a field its parser refuses, is rejected by its path.
_FIELDS: dict[str, tuple[_Field, ...]] = {
    "": (
        ("state_revision", "revision", _revision),
        ("boot_id", "boot_id", _boot_id),
        ("mode", "mode", _mode),
        ("source", "source", _word),
    ),
    # The set point the heater loop uses (0 while off, and while AUTO waits).
    "target": (
        ("effective_c", "device_target", _within(0, 120)),
        ("maximum_c", "device_max_target", _within(0, 120, above=True)),
    ),
    "heater": (("output", "heater_on", _flag),),  # the SSR right now (it cycles)
    "fan": (
        ("requested_percent", "filter_requested", _requested),
        ("reason", "fan_reason", _word),
    ),
}
_LATE_FIELDS: dict[str, tuple[_Field, ...]] = {
    "drying": (
        ("active", "drying", _flag),
        ("remaining_seconds", "drying_remaining_s", _within(0, math.inf)),
    ),
    "config": (("comms_ms", "comms_ms", _comms_ms),),
}


def _group(message: Mapping[str, Any], name: str, report: DeviceReport) -> Mapping[str, Any] | None:
    """``message[name]`` if it is an object; one that is something else is rejected."""
    group = message.get(name)
    if group is not None and not isinstance(group, Mapping):
        report.rejected_fields.append(name)
        return None
    return group


def _decode_fields(
    message: Mapping[str, Any], table: dict[str, tuple[_Field, ...]], report: DeviceReport
) -> None:
    for name, fields in table.items():
        group = _group(message, name, report) if name else message
        if group is None:
            continue
        for key, attribute, parse in fields:
            if key in group:
                value = parse(group[key])
                if value is None:
                    report.rejected_fields.append("%s.%s" % (name, key) if name else key)
                else:
                    setattr(report, attribute, value)


def redact(text: str, *secret_values: str | None) -> str:
    """``text`` with every secret replaced, for the rare text built near one."""
    for secret in secret_values:
        if secret:
            text = text.replace(secret, "***")
    return text


# Commands --------------------------------------------------------------------------


def validate_token(token: Any) -> str:
    """The control token to send; ValueError (never quoting it) if unusable."""
    if not isinstance(token, str) or not token:
        raise ValueError("the DragonBreath token must be a non-empty string")
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError("the DragonBreath token is longer than %d characters" % MAX_TOKEN_CHARS)
    if not token.isprintable() or not token.isascii():
        raise ValueError("the DragonBreath token must be printable ASCII")
    return token


def request_headers(token: str, json_body: bool = True) -> dict[str, str]:
    headers = {AUTH_HEADER: token, "Accept": "application/json"}
    if json_body:
        headers["Content-Type"] = "application/json"
    return headers


def new_actor_id(prefix: str = "moonraker") -> str:
    """A per-process actor id (the device allows 1-31 characters)."""
    return ("%s-%s" % (prefix, secrets.token_hex(6)))[:MAX_ACTOR_ID_CHARS]


def new_request_id() -> str:
    """One per intent; reused only to retry that intent (the device's replay cache)."""
    return secrets.token_hex(16)


def refusal_for_target(target: float) -> str | None:
    """Why the device would refuse ``target`` as a heat target (None: it takes it)."""
    if target <= 0:
        return None
    if target < MIN_TARGET_C:
        return "DragonBreath refuses heat targets below %d °C (asked %.1f °C)" % (
            MIN_TARGET_C, target)
    return None


def heartbeat_interval(comms_ms: int | None) -> float:
    """Seconds between lease renewals: a third of the device's comms_ms, at most 30 s."""
    if comms_ms is None or comms_ms <= 0:
        comms_ms = COMMS_S_RANGE[0] * 1000  # unknown: assume the tightest the device allows
    return max(MIN_HEARTBEAT_INTERVAL_S, min(MAX_HEARTBEAT_INTERVAL_S, comms_ms / 3000.0))


def _check_revision(expected_revision: Any) -> int:
    if (
        isinstance(expected_revision, bool) or not isinstance(expected_revision, int)
        or not 0 <= expected_revision < _MAX_REVISION
    ):
        raise ValueError("expected_revision must be an integer 0 <= r < 2**32 - 1")
    return expected_revision


_REVISION_COMMANDS = ("power_on", "auto", "drying_start", "clear_fault")


def _command(
    name: str, actor_id: str, request_id: str, expected_revision: int | None = None,
    **fields: Any,
) -> str:
    if not 0 < len(actor_id) <= MAX_ACTOR_ID_CHARS:
        raise ValueError("actor id must be 1-%d characters" % MAX_ACTOR_ID_CHARS)
    if not 0 < len(request_id) <= 64:
        raise ValueError("request id must be 1-64 characters")
    body: dict[str, Any] = {
        "api_version": API_VERSION,
        "request_id": request_id,
        "actor": {"kind": ACTOR_KIND, "id": actor_id},
        "command": dict(name=name, **fields),
    }
    if expected_revision is not None or name in _REVISION_COMMANDS:
        # The device refuses these without one (clients cannot say "any revision").
        body["expected_revision"] = _check_revision(expected_revision)
    return json.dumps(body, separators=(",", ":"))


def power_on_command(
    target: float, expected_revision: int, actor_id: str, request_id: str
) -> str:
    """Heat to ``target`` (whole degrees) under a new lease; TargetRefused below 30 °C.

    ASSUMED: ``target_c`` is sent as whole degrees (the device reports 0.1 °C
    but every client seen sends integers).  Above ``config.max`` the device
    clamps; above 70 we clamp ourselves.
    """
    refusal = refusal_for_target(target)
    if refusal is not None or target <= 0:
        raise TargetRefused(refusal or "power_on needs a target above 0")
    degrees = min(MAX_TARGET_C, device_degrees(target))
    return _command("power_on", actor_id, request_id, expected_revision, target_c=degrees)


def off_command(actor_id: str, request_id: str) -> str:
    """Off needs no revision; it also ends drying and invalidates any lease."""
    return _command("off", actor_id, request_id)


def clear_fault_command(expected_revision: int, actor_id: str, request_id: str) -> str:
    return _command("clear_fault", actor_id, request_id, expected_revision)


def drying_start_command(
    target_c: int, hours: int, expected_revision: int, actor_id: str, request_id: str
) -> str:
    """Start the device's drying cycle (no lease: the device runs it on its own)."""
    if not MIN_TARGET_C <= target_c <= MAX_TARGET_C:
        raise TargetRefused(
            "DragonBreath dries at %d-%d °C (asked %s)" % (MIN_TARGET_C, MAX_TARGET_C, target_c))
    low, high = DRYING_HOURS_RANGE
    if isinstance(hours, bool) or not isinstance(hours, int) or not low <= hours <= high:
        raise TargetRefused("DragonBreath dries for %d-%d whole hours (asked %s)" % (
            low, high, hours))
    return _command(
        "drying_start", actor_id, request_id, expected_revision,
        target_c=int(target_c), hours=hours,
    )


def filter_command(on: bool, actor_id: str, request_id: str) -> str:
    """The blower alone, for filtration: on (100 %) or off; no revision, no lease.

    The blower is on/off only, so the request is 0 or 100.  The device
    refuses "on" while it heats or purges (409 ``heater_busy``).
    """
    return _command("filter", actor_id, request_id, percent=100 if on else 0)


def heartbeat_body(lease_id: str) -> str:
    if not _LEASE_ID_RE.match(lease_id):
        raise ValueError("a lease id is 32 lower-case hex digits")
    return json.dumps({"api_version": API_VERSION, "lease_id": lease_id}, separators=(",", ":"))


def comms_ms_query(seconds: float) -> str:
    """``POST /settings?comms_ms=...`` query for a lease/watchdog of ``seconds`` (10-300)."""
    low, high = COMMS_S_RANGE
    number = as_number(seconds)
    if number is None or not low <= number <= high:
        raise ValueError("lease_timeout must be %d-%d seconds" % (low, high))
    return "comms_ms=%d" % int(round(number * 1000))
