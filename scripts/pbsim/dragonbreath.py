"""The DragonBreath firmware (plastikman/DragonBreath v1.1.11) as a simulator personality.

``--firmware dragonbreath``: HTTP JSON API v2 and Server-Sent Events on one
port, as the reference describes it (dragonbreath-and-helixscreen.md, Parts A
and D.2).  Two parts:

* :class:`DragonBreathDevice` is the firmware's policy on the shared device
  core and thermal model: modes (off, power_on, auto, drying), the revision
  counter (bumped only by control, mode, lease, fault, safety, filter and AUTO
  changes), the replay cache, the lease and its watchdog, latched faults
  (persisted in the simulated NVS, so they survive a reboot as "safety trip"),
  the over-temperature and sensor trips, the residual-heat purge, drying, and
  ``config.comms_ms``.
* :class:`DragonBreathSimulator` is the ``Simulator`` for it: the HTTP routes
  (``/api/v2/info``, ``state``, ``health``, ``events``, ``command``,
  ``heartbeat``, ``/settings``, ``/api/v2/token``, plus ``/sim/state`` and
  ``/sim/control``), at most two event streams (the third gets 503 ``busy``),
  telemetry every ``frame_interval`` (2 s by default), and the control actions
  tests use to play the world around the device (see ``control``).

Clocks: the thermal model, the drying countdown and the 12 h limit of a
button power-on run on the model clock (``--time-scale``); the lease, the
comms watchdog and the stream cadence run on the wall clock, because they
time the host, which runs at real speed.  ``comms_ms_min`` (a simulator knob,
default the device's 10 000) lets a test shrink the lease so that many renewals
fit in a short run.

ASSUMED where the reference is silent: a ``POST /settings`` change does not
bump the revision; ``off`` when already off with no lease bumps nothing; the
on-device Home Assistant client's actor is reported as source ``ha``; web and
HA leases taken over in tests are renewed by the simulator (as a live
dashboard or HA client would); an oversized body is 400 ``invalid_command``;
the bang-bang band of the heater loop is 0.5 °C.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any

from pbsim import hostile
from pbsim.device import DeviceCore, Flash
from pbsim.faults import optional_bool, optional_float, parse_bool
from pbsim.http_server import EventStream, HttpRequest, HttpResponse, HttpServer, StreamResponse
from pbsim.journal import Journal, Outcome
from pbsim.simulator import SimOptions, Simulator
from pbsim.thermal import ThermalModel, ThermalParams

log = logging.getLogger("pbsim.dragonbreath")

FIRMWARE_NAME = "dragonbreath"
API_VERSION = 2
AUTH_HEADER = "x-dragonbreath-auth"

MIN_TARGET_C = 30.0
MAX_ABS_C = 70.0
COMMS_MS_MAX = 300_000
PTC_TRIP_C = 105.0
CHAMBER_TRIP_C = 85.0
FOLDBACK_CUT_C = 102.0  # 82 kΩ board: SSR hard-cut, back on 3 °C lower
FOLDBACK_HYSTERESIS_C = 3.0
LOOP_BAND_C = 0.5
LOCAL_POWER_MAX_S = 12 * 3600.0
MAX_REVISION = 2**32 - 1

SOURCES = ("boot", "web", "klipper", "button", "safety", "watchdog", "ha")
SENSOR_STATUS = {0: "ok", 1: "short", 2: "open"}
#: Canonical fault texts (``safety.reason``) and whether the latch is persisted.
FAULTS: dict[str, tuple[str, bool]] = {
    "ptc_overtemp": ("PTC element over-temp", True),
    "chamber_overtemp": ("chamber over-temp", True),
    "chamber_sensor": ("chamber sensor fault", True),
    "ptc_sensor": ("PTC sensor fault", True),
    "link_lost": ("controller link lost", True),
    "lease_expired": ("controller lease expired", True),
    "panic": ("button panic-off", False),
    "nvs_unreadable": ("persisted fault state unreadable", True),
}

#: Kept by hostile events where the kind allows: the client checks it first.
HOSTILE_KEEP = ("api_version",)

@dataclass
class DragonBreathOptions:
    """What the CLI (``--db-*``) and ``Simulator(firmware="dragonbreath", ...)`` can set."""

    #: The control token (``X-DragonBreath-Auth`` must equal it); None: any non-empty value.
    token: str | None = None
    #: ``config.comms_ms`` at first boot (the device default is 300 s).
    comms_ms: int = COMMS_MS_MAX
    #: Lowest comms_ms ``POST /settings`` accepts (the device: 10 000; tests may go lower).
    comms_ms_min: int = 10_000
    #: Event streams served at once (the device: 2).
    max_streams: int = 2
    #: Runtime ceiling ``config.max`` at first boot.
    max_c: float = MAX_ABS_C
    #: Wall seconds between lease checks (the firmware's 500 ms control tick).
    lease_check_interval: float = 0.5
    #: Wall seconds every API answer is held back (a slow device).
    response_delay: float = 0.0
    #: ``clear_fault`` fails with 500 persist_failed (an NVS write error).
    persist_fail: bool = False
    device_id: str = "dragonbreath-a1b2c3"
    firmware_version: str = "v1.1.11"


OPTION_NAMES = {f.name for f in fields(DragonBreathOptions)}


class Refused(Exception):
    """An API error: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Lease:
    lease_id: str
    owner: str
    kind: str
    deadline: float  # wall monotonic
    #: Simulated other controllers (web dashboard, HA client) renew their own lease.
    auto_renew: bool = False


class DragonBreathDevice(DeviceCore):
    """The firmware's policy and safety layer on the shared hardware model."""

    def __init__(self, thermal: ThermalModel, flash: Flash, options: DragonBreathOptions) -> None:
        super().__init__(thermal, flash)
        self.options = options
        #: Called after every revision change (the simulator pushes a ``state`` event).
        self.on_revision = lambda: None
        self.boot()

    # -- boot -------------------------------------------------------------------------------
    def boot(self) -> None:
        self.set_relay(False)  # SSR forced off first; never resumes heat
        self.fan_on = False
        self.boot_id = secrets.token_hex(16)
        self.boot_wall = time.monotonic()
        self.revision = 1
        self.source = "boot"
        self.mode = "off"
        self.requested_c = 0.0
        self.lease: Lease | None = None
        self.drying_deadline: float | None = None  # model time
        self.local_power_deadline: float | None = None  # model time (button power-on)
        self.auto_engaged = False
        self.auto_print = False
        self.filter_percent = 0
        self.heated_this_session = False
        self.purging = False
        self.foldback = False
        self.inhibited = False  # a permanent inhibit lasts until the next reboot
        self.replay: OrderedDict[tuple[str, str], tuple[int, int, dict[str, Any]]] = OrderedDict()
        self.comms_ms = int(self.flash.get("comms_ms", self.options.comms_ms))
        self.max_c = float(self.flash.get("max", self.options.max_c))
        params = self.flash.get("params") or {}
        self.params: dict[str, Any] = {
            "manual_target_c": 50, "auto_target_c": 60, "auto_bed_threshold_c": 100,
            "dry_target_c": 60, "dry_hours": 12, "filter_temp_c": 30, "filter_auto_enable": False,
        }
        if isinstance(params, dict):
            self.params.update({k: v for k, v in params.items() if k in self.params})
        # A persisted latch comes back as the canonical code string.
        self.fault_latched = bool(self.flash.get("fault_latch", False))
        self.fault_reason: str | None = "safety trip" if self.fault_latched else None

    # -- revision ---------------------------------------------------------------------------
    def bump(self, source: str) -> None:
        self.revision = self.revision + 1 if self.revision < MAX_REVISION - 1 else 1
        self.source = source
        self.on_revision()

    # -- readings ----------------------------------------------------------------------------
    def sensor_status(self, sensor: str) -> str:
        field = "warehouse_sensor_status" if sensor == "chamber" else "ptc_sensor_status"
        return SENSOR_STATUS.get(self.faults[field], "open")

    def chamber_c(self) -> float | None:
        return round(self.thermal.chamber, 1) if self.sensor_status("chamber") == "ok" else None

    def ptc_c(self) -> float | None:
        return round(self.thermal.ptc, 1) if self.sensor_status("ptc") == "ok" else None

    def effective_c(self) -> float:
        if self.fault_latched or self.inhibited:
            return 0.0
        if self.mode in ("power_on", "drying"):
            return self.requested_c
        if self.mode == "auto" and self.auto_engaged:
            return self.requested_c
        return 0.0

    def demand(self) -> bool:
        return self.effective_c() > 0

    def fan_reason(self) -> str:
        if self.fault_latched or self.inhibited:
            return "fault"
        if self.demand():
            return "heater"
        if self.purging:
            return "thermal_purge"
        if self.filter_percent > 0:
            return "requested"
        return "off"

    # -- control loop (model time) --------------------------------------------------------------
    def control(self, dt: float) -> None:
        if not self.up:
            self.set_relay(False)
            self.fan_on = False
            return
        chamber, ptc = self.thermal.chamber, self.thermal.ptc
        if not (self.fault_latched or self.inhibited):
            if self.sensor_status("ptc") == "ok" and ptc >= PTC_TRIP_C:
                self.latch("ptc_overtemp")
            elif self.sensor_status("chamber") == "ok" and chamber >= CHAMBER_TRIP_C:
                self.latch("chamber_overtemp")
            elif self.demand() and self.sensor_status("chamber") != "ok":
                self.latch("chamber_sensor")
            elif self.demand() and self.sensor_status("ptc") != "ok":
                self.latch("ptc_sensor")
        if self.mode == "drying" and self.drying_deadline is not None:
            if self.model_time >= self.drying_deadline:
                self._to_off()
                self.bump("watchdog")  # the end of a drying run, not a fault
        if self.mode == "power_on" and self.local_power_deadline is not None:
            if self.model_time >= self.local_power_deadline:
                self._to_off()
                self.bump("watchdog")
        target = self.effective_c()
        if target <= 0:
            self.set_relay(False)
        else:
            self.heated_this_session = True
            if ptc >= FOLDBACK_CUT_C:
                self.foldback = True
            elif ptc < FOLDBACK_CUT_C - FOLDBACK_HYSTERESIS_C:
                self.foldback = False
            if self.foldback or chamber >= target:
                self.set_relay(False)
            elif chamber < target - LOOP_BAND_C:
                self.set_relay(True)
        cool = float(self.flash.get("cool_release", 40))
        self.purging = self.heated_this_session and not self.demand() and (
            chamber >= cool or ptc >= cool)
        if self.heated_this_session and not self.purging and not self.demand():
            self.heated_this_session = chamber >= cool or ptc >= cool
        self.fan_on = self.fan_reason() != "off"

    # -- transitions ------------------------------------------------------------------------
    def _to_off(self) -> None:
        self.mode = "off"
        self.requested_c = 0.0
        self.lease = None
        self.drying_deadline = None
        self.local_power_deadline = None
        self.auto_engaged = False
        self.set_relay(False)

    def latch(self, kind: str, source: str = "safety", reason: str | None = None) -> None:
        """``pb_heater_emergency_off``: SSR off, mode off, fault latched (persisted if a hazard)."""
        text, persisted = FAULTS.get(kind, (reason or kind, True))
        self._to_off()
        self.fault_latched = True
        self.fault_reason = reason or text
        if persisted:
            self.flash.update({"fault_latch": True, "fault_code": kind})
        self.bump(source)
        log.info("fault latched: %s", self.fault_reason)

    def check_lease(self, now: float) -> None:
        lease = self.lease
        if lease is None or not self.up:
            return
        if lease.auto_renew:
            lease.deadline = now + self.comms_ms / 1000.0
            return
        if now > lease.deadline:
            # "Web controller lease expired ..." since PR #102; host leases keep this text.
            self.latch("lease_expired", source="watchdog")

    def issue_lease(self, owner: str, kind: str, now: float, auto_renew: bool = False) -> str:
        lease_id = secrets.token_hex(16)
        self.lease = Lease(lease_id, owner, kind, now + self.comms_ms / 1000.0, auto_renew)
        return lease_id

    # -- the API -------------------------------------------------------------------------------
    def heat_allowed(self) -> None:
        if self.inhibited:
            raise Refused(409, "inhibited", "heater inhibited until reboot")
        if self.fault_latched:
            raise Refused(409, "fault_latched", "a fault is latched; clear it first")

    def command(self, body: Any, now: float) -> tuple[int, dict[str, Any]]:
        """``POST /api/v2/command``: (HTTP status, response body)."""
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
        name = command["name"]
        key = (actor_id, request_id)
        cached = self.replay.get(key)
        if cached is not None:
            revision_after, status, response = cached
            if revision_after == self.revision:
                return status, response  # the original answer, replayed
            raise Refused(409, "revision_conflict", "request_id reused after a later change")
        if name in ("power_on", "auto", "drying_start", "clear_fault"):
            expected = body.get("expected_revision")
            if (
                isinstance(expected, bool) or not isinstance(expected, int)
                or not 0 <= expected < MAX_REVISION
            ):
                raise Refused(400, "invalid_command", "expected_revision missing or malformed")
            if expected != self.revision:
                raise Refused(409, "revision_conflict", "state changed; re-read and decide")
        source = actor["kind"]
        extra: dict[str, Any] = {}
        cache = True
        if name in ("off", "drying_stop"):
            cache = False
            if self.mode != "off" or self.lease is not None:
                self._to_off()
                self.bump(source)
        elif name == "power_on":
            target = _number(command.get("target_c"))
            if target is None or target < MIN_TARGET_C:
                raise Refused(400, "invalid_command", "target_c must be at least 30")
            self.heat_allowed()
            self._to_off()
            self.mode = "power_on"
            self.requested_c = min(target, self.max_c, MAX_ABS_C)
            self.params["manual_target_c"] = self.requested_c
            extra["lease_id"] = self.issue_lease(actor_id, source, now)
            self.bump(source)
        elif name == "auto":
            target = _number(command.get("target_c"))
            threshold = _number(command.get("bed_threshold_c"))
            if target is None or target < MIN_TARGET_C:
                raise Refused(400, "invalid_command", "target_c must be at least 30")
            if threshold is None or not 40 <= threshold <= 120:
                raise Refused(400, "invalid_command", "bed_threshold_c must be 40-120")
            self.heat_allowed()
            self._to_off()
            self.mode = "auto"
            self.requested_c = min(target, self.max_c, MAX_ABS_C)
            self.params["auto_target_c"] = self.requested_c
            self.params["auto_bed_threshold_c"] = threshold
            self.auto_engaged = self.auto_print
            self.bump(source)
        elif name == "drying_start":
            target = _number(command.get("target_c"))
            hours = command.get("hours")
            if target is None or target < MIN_TARGET_C:
                raise Refused(400, "invalid_command", "target_c must be at least 30")
            if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 12:
                raise Refused(400, "invalid_command", "hours must be an integer 1-12")
            self.heat_allowed()
            self.start_drying(min(target, self.max_c, MAX_ABS_C), hours)
            self.bump(source)
        elif name == "filter":
            cache = False
            percent = _number(command.get("percent"))
            if percent is None or not 0 <= percent <= 100:
                raise Refused(400, "invalid_command", "percent must be 0-100")
            if percent > 0 and (self.demand() or self.purging):
                raise Refused(409, "heater_busy", "the blower is busy with the heater")
            self.filter_percent = int(percent)
            self.bump(source)
        elif name == "clear_fault":
            self.clear_fault(source)
        else:
            raise Refused(400, "invalid_command", "unknown command")
        response = {"ok": True, "request_id": request_id, **extra, "state": self.state_json()}
        if cache:
            self.replay[key] = (self.revision, 200, response)
            while len(self.replay) > 2:
                self.replay.popitem(last=False)
        return 200, response

    def start_drying(self, target: float, hours: int) -> None:
        self._to_off()
        self.mode = "drying"
        self.requested_c = target
        self.drying_deadline = self.model_time + hours * 3600.0
        self.params["dry_target_c"] = target
        self.params["dry_hours"] = hours

    def clear_fault(self, source: str) -> None:
        if self.inhibited:
            raise Refused(409, "inhibited", "a permanent inhibit clears only by reboot")
        if self.options.persist_fail:
            raise Refused(500, "persist_failed", "could not clear the persisted latch")
        self.flash.update({"fault_latch": False, "fault_code": None})
        self._to_off()
        self.fault_latched = False
        self.fault_reason = None
        self.bump(source)

    def heartbeat(self, body: Any, now: float) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or body.get("api_version") != API_VERSION:
            raise Refused(400, "invalid_command", "api_version must be 2")
        lease_id = body.get("lease_id")
        if not isinstance(lease_id, str) or len(lease_id) != 32:
            raise Refused(400, "invalid_command", "lease_id must be 32 hex characters")
        lease = self.lease
        if (
            lease is None or lease.lease_id != lease_id or self.mode != "power_on"
            or now > lease.deadline
        ):
            raise Refused(409, "stale_lease", "no such lease")
        lease.deadline = now + self.comms_ms / 1000.0
        return 200, {"ok": True, "expires_in_ms": self.comms_ms,
                     "state_revision": self.revision}

    def settings_json(self) -> dict[str, Any]:
        return {
            "max": self.max_c, "max_min": MIN_TARGET_C, "max_abs": MAX_ABS_C,
            "comms_ms": self.comms_ms, "comms_ms_min": self.options.comms_ms_min,
            "comms_ms_max": COMMS_MS_MAX,
            "cool_release": self.flash.get("cool_release", 40), "cool_release_min": 30,
            "cool_release_max": 65, "fb_cut": 0, "fb_cut_default": FOLDBACK_CUT_C,
            "fb_cut_min": 90, "fb_cut_max": 104,
            "filter_temp": self.params["filter_temp_c"], "filter_temp_min": 20,
            "filter_temp_max": 60, "filter_auto": self.params["filter_auto_enable"],
            "leds_enabled": True,
        }

    def apply_settings(self, values: dict[str, str]) -> dict[str, Any]:
        known = False
        if "comms_ms" in values:
            known = True
            number = _number(_float_or_none(values["comms_ms"]))
            if number is not None:
                self.comms_ms = int(min(COMMS_MS_MAX, max(self.options.comms_ms_min, number)))
                self.flash.update({"comms_ms": self.comms_ms})
                if self.lease is not None:  # the new TTL applies from the next renewal
                    pass
        if "max" in values:
            known = True
            number = _number(_float_or_none(values["max"]))
            if number is not None:
                self.max_c = float(min(MAX_ABS_C, max(MIN_TARGET_C, number)))
                self.flash.update({"max": self.max_c})
        if "cool_release" in values:
            known = True
            number = _number(_float_or_none(values["cool_release"]))
            if number is not None:
                self.flash.update({"cool_release": min(65.0, max(30.0, number))})
        for other in ("fb_cut", "filter_temp", "filter_auto", "leds_enabled"):
            known = known or other in values
        if not known:
            raise Refused(400, "invalid_command", "no known setting")
        return self.settings_json()

    def state_json(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full A.5 snapshot."""
        lease = self.lease
        now = time.monotonic()
        remaining = None
        if self.mode == "drying" and self.drying_deadline is not None:
            remaining = max(0, math.ceil(self.drying_deadline - self.model_time))
        state: dict[str, Any] = {
            "api_version": API_VERSION,
            "device_id": self.options.device_id,
            "boot_id": self.boot_id,
            "firmware": self.options.firmware_version,
            "state_revision": self.revision,
            "mode": self.mode,
            "source": self.source,
            "target": {
                "requested_c": self.requested_c if self.mode != "off" else 0,
                "effective_c": self.effective_c(),
                "maximum_c": self.max_c,
            },
            "config": {"max": self.max_c, "max_abs": MAX_ABS_C, "comms_ms": self.comms_ms},
            "heater": {"demand": self.demand(), "output": self.relay_on},
            "fan": {
                "requested_percent": self.filter_percent,
                "effective_percent": 100 if self.fan_on else 0,
                "reason": self.fan_reason(),
            },
            "sensors": {
                "chamber": {"temperature_c": self.chamber_c(),
                            "status": self.sensor_status("chamber")},
                "ptc": {"temperature_c": self.ptc_c(), "status": self.sensor_status("ptc")},
            },
            "environment": {
                "control_source": "klipper", "moonraker_connected": False,
                "bed_temperature_c": None, "bed_target_c": None,
                "auto_engaged": self.mode == "auto" and self.auto_engaged,
                "auto_filtering": False,
                "auto_bed_threshold_c": self.params["auto_bed_threshold_c"],
            },
            "drying": {"active": self.mode == "drying", "remaining_seconds": remaining or 0},
            "params": dict(self.params),
            "control": {
                "lease": {
                    "active": lease is not None,
                    "owner": lease.owner if lease is not None else None,
                    "expires_in_ms": (
                        max(0, int((lease.deadline - now) * 1000)) if lease is not None else 0
                    ),
                },
            },
            "safety": {
                "fault_latched": self.fault_latched or self.inhibited,
                "inhibited": self.inhibited,
                "reason": self.fault_reason,
            },
        }
        if extra:
            state.update(extra)
        return state


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class DragonBreathSimulator(Simulator):
    """A simulated DragonBreath device; built by ``Simulator(firmware="dragonbreath")``."""

    def __init__(self, options: SimOptions | None = None, **overrides: Any) -> None:
        db_values = {k: overrides.pop(k) for k in list(overrides) if k in OPTION_NAMES}
        if isinstance(overrides.get("dragonbreath"), DragonBreathOptions):
            self.db_options = overrides.pop("dragonbreath")
            for name, value in db_values.items():
                setattr(self.db_options, name, value)
        else:
            overrides.pop("dragonbreath", None)
            self.db_options = DragonBreathOptions(**db_values)
        self.options = (options or SimOptions()).apply(**overrides)
        o = self.options
        o.firmware = FIRMWARE_NAME
        if o.mqtt:
            raise ValueError("--mqtt: DragonBreath's own MQTT clients are not simulated")
        self.firmware = None
        self.esphome = False
        self.broker = None
        self.time_scale = float(o.time_scale)
        self.frame_interval = o.frame_interval or 2.0
        self.journal = Journal()
        self.flash = Flash(o.state_file)
        self.thermal = ThermalModel(ThermalParams(ambient=o.ambient))
        self.device: DragonBreathDevice = DragonBreathDevice(
            self.thermal, self.flash, self.db_options)
        self.device.on_revision = self._revision_changed
        self.esp = None
        self.ws = None
        self.smqtt = None
        self.mqtt_link = None
        self.server = HttpServer(o.host, o.port, self._handle, self._admission_ok)
        self._init_runtime()
        self.streams: dict[int, EventStream] = {}
        self.phantom_streams = 0
        self.phantom_until: float | None = None
        self.stream_silent_until = 0.0
        self.response_delay = float(self.db_options.response_delay)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> DragonBreathSimulator:
        self._loop = asyncio.get_running_loop()
        await self.server.start()
        self.started_at = self.booted_at = time.monotonic()
        self.running = True
        self._spawn(self._tick_loop())
        self._spawn(self._telemetry_loop())
        self._spawn(self._lease_loop())
        log.info("Panda Breath simulator (dragonbreath) on %s:%d, time scale %g",
                 self.options.host, self.port, self.time_scale)
        return self

    async def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.server.stop()
        self.flash.save()

    async def _tick_loop(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.options.tick_interval)
            now = time.monotonic()
            self.device.advance((now - last) * self.time_scale)
            last = now

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.db_options.lease_check_interval)
            self.device.check_lease(time.monotonic())

    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.frame_interval)
            if self.device.up:
                self._broadcast("telemetry")

    def _broadcast(self, event: str) -> int:
        if time.monotonic() < self.stream_silent_until or not self.device.up:
            return 0
        data = json.dumps(self.device.state_json(), separators=(",", ":"))
        event_id = self.device.revision if event == "state" else None
        sent = 0
        for stream in list(self.streams.values()):
            if stream.send(event, data, event_id):
                sent += 1
        self.journal.count("%s_events_sent" % event, sent)
        return sent

    def send_malformed(self, kind: str, count: int = 1, size: int | None = None,
                       depth: int = hostile.DEFAULT_DEPTH) -> int:
        """Hostile ``telemetry`` events (``pbsim.hostile`` kinds) on every open stream.

        Built from the real state snapshot, one ``data:`` line each, so the
        stream's framing holds and the client meets them in its decoder.
        Returns the events sent.
        """
        snapshot = self.device.state_json()
        sent = 0
        for each in hostile.kinds(kind):
            if size is not None:
                pad = size
            else:
                pad = hostile.GIANT_WS_BYTES if each == "giant" else hostile.OVERSIZE_BYTES
            payloads = hostile.nested_payloads(each, snapshot, HOSTILE_KEEP, pad, depth)
            for _ in range(max(1, count)):
                for payload in payloads:
                    for stream in list(self.streams.values()):
                        if stream.send("telemetry", payload):
                            sent += 1
                            self.journal.count("hostile_count")
        return sent

    def _revision_changed(self) -> None:
        self._broadcast("state")

    # -- HTTP ----------------------------------------------------------------------------------
    def _admission_ok(self) -> bool:
        return self.device.up and time.monotonic() >= self.refuse_until

    def _authorised(self, request: HttpRequest) -> bool:
        sent = request.headers.get(AUTH_HEADER, "")
        token = self.db_options.token or self.flash.get("ctl_token")
        if token:
            return secrets.compare_digest(sent.encode(), str(token).encode())
        return bool(sent)

    async def _handle(self, request: HttpRequest) -> HttpResponse | StreamResponse:
        path = request.path
        self.journal.count("http_requests")
        if path == "/sim/state":
            return HttpResponse(200, self.state())
        if path == "/sim/control":
            status, body = self._http_control(dict(request.query))
            return HttpResponse(status, body)
        if self.response_delay > 0 and path.startswith(("/api/", "/settings")):
            self.journal.count("delayed_requests")
            await asyncio.sleep(self.response_delay)
        try:
            return self._route(request)
        except Refused as exc:
            self.journal.count("api_errors")
            self.journal.count("error_" + exc.code)
            body = {"ok": False, "error": exc.code, "message": exc.message,
                    "state": self.device.state_json()}
            return HttpResponse(exc.status, body)

    def _route(self, request: HttpRequest) -> HttpResponse | StreamResponse:
        d = self.device
        method, path = request.method, request.path
        now = time.monotonic()
        if method == "GET":
            if path == "/api/v2/info":
                return HttpResponse(200, self._info())
            if path == "/api/v2/state":
                self.journal.count("state_reads")
                return HttpResponse(200, d.state_json())
            if path == "/api/v2/health":
                return HttpResponse(200, self._health())
            if path == "/settings":
                return HttpResponse(200, d.settings_json())
            if path == "/api/v2/events":
                return self._open_stream()
            if path == "/api/v2/logs":
                return HttpResponse(200, {"api_version": 2, "count": 0, "entries": []})
            # The portal's catch-all serves the dashboard for any other GET.
            return HttpResponse(200, "<!doctype html><title>DragonBreath</title>",
                                content_type="text/html")
        if method != "POST":
            return HttpResponse(405, {"ok": False, "error": "invalid_command"})
        if path not in ("/api/v2/command", "/api/v2/heartbeat", "/settings", "/api/v2/token"):
            return HttpResponse(404, {"ok": False, "error": "not_found"})
        if not self._authorised(request):
            self.journal.count("auth_failures")
            raise Refused(403, "auth_failed", "missing or wrong X-DragonBreath-Auth")
        if path == "/settings":
            return HttpResponse(200, d.apply_settings(request.form()))
        if request.too_large:
            raise Refused(400, "invalid_command", "body too large")
        body = _json_body(request)
        if path == "/api/v2/heartbeat":
            self.journal.count("heartbeats_received")
            try:
                status, answer = d.heartbeat(body, now)
            except Refused:
                self.journal.count("heartbeats_refused")
                raise
            self.journal.count("heartbeats_accepted")
            return HttpResponse(status, answer)
        if path == "/api/v2/token":
            token = body.get("token") if isinstance(body, dict) else None
            if token is not None and (not isinstance(token, str) or len(token) > 64):
                raise Refused(400, "invalid_command", "token must be at most 64 characters")
            self.flash.update({"ctl_token": token or None})
            return HttpResponse(200, {"ok": True, "token_set": bool(token)})
        self.journal.count("commands_received")
        name = body.get("command", {}).get("name") if isinstance(body, dict) and isinstance(
            body.get("command"), dict) else None
        outcome = Outcome()
        try:
            status, answer = d.command(body, now)
        except Refused as exc:
            outcome.reject(exc.code)
            self._record(name, body, outcome)
            raise
        outcome.apply(str(name))
        self._record(name, body, outcome)
        return HttpResponse(status, answer)

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

    def _open_stream(self) -> HttpResponse | StreamResponse:
        if len(self.streams) + self._phantoms() >= self.db_options.max_streams:
            self.journal.count("streams_refused")
            raise Refused(503, "busy", "event stream slots full")

        def opened(stream: EventStream) -> None:
            self.streams[stream.id] = stream
            self.journal.count("streams_opened")
            if time.monotonic() >= self.stream_silent_until:
                data = json.dumps(self.device.state_json(), separators=(",", ":"))
                stream.send("state", data, self.device.revision)

        def closed(stream: EventStream) -> None:
            self.streams.pop(stream.id, None)

        return StreamResponse(opened, closed)

    def _phantoms(self) -> int:
        if self.phantom_until is not None and time.monotonic() >= self.phantom_until:
            self.phantom_streams = 0
            self.phantom_until = None
        return self.phantom_streams

    def _info(self) -> dict[str, Any]:
        o = self.db_options
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
            "uptime_ms": int((time.monotonic() - self.booted_at) * 1000),
            "free_heap_bytes": 150_000, "minimum_free_heap_bytes": 120_000,
            "wifi_rssi_dbm": -55, "wifi_channel": 6,
            "sse_clients": len(self.streams),
        }

    # -- world around the device (control actions) -----------------------------------------------
    def reboot(self, down: float | None = None, wipe: bool = False, **_: Any) -> bool:
        """Power cycle: every connection reset, down ``down`` s, then a new boot_id,
        revision 1, mode off; a persisted latch comes back as "safety trip"."""
        if self._rebooting or not self.running:
            return False
        if wipe:
            self.flash.clear()
        self._rebooting = True
        wait = self.options.reboot_down_time if down is None else float(down)
        self.down_until = time.monotonic() + wait
        self.device.up = False
        self.device.set_relay(False)
        self.device.fan_on = False
        for stream in list(self.streams.values()):
            stream.abort()
        self.streams.clear()
        self.server.abort_all()
        self._spawn(self._reboot_after(wait))
        log.info("rebooting (down %gs)", wait)
        return True

    async def _reboot_after(self, down: float) -> None:
        await asyncio.sleep(down)
        self.device.boot()
        self.device.up = True
        self.boot_count += 1
        self.booted_at = time.monotonic()
        self._rebooting = False
        log.info("booted (boot #%d)", self.boot_count)

    def take_over(
        self, source: str, mode: str | None = None, target: float | None = None,
        renew: bool = True,
    ) -> dict[str, Any]:
        """Another controller acts: ``button`` (front panel), ``web`` (its dashboard),
        ``ha`` (its Home Assistant client).  ``mode``: power_on (default: toggle for
        the button, power_on otherwise), off, auto, drying, filter."""
        d = self.device
        now = time.monotonic()
        if source not in ("button", "web", "ha"):
            raise ValueError("source must be button, web or ha")
        if mode is None:
            mode = ("off" if d.mode != "off" else "power_on") if source == "button" else "power_on"
        if mode in ("power_on", "auto", "drying") and (d.fault_latched or d.inhibited):
            raise ValueError("the device has a latched fault: heat refused")
        if mode == "off":
            d._to_off()
            d.bump(source)
        elif mode == "power_on":
            degrees = float(target if target is not None else d.params["manual_target_c"])
            if degrees < MIN_TARGET_C:
                raise ValueError("target below 30 °C refused")
            d._to_off()
            d.mode = "power_on"
            d.requested_c = min(degrees, d.max_c)
            if source == "button":
                d.local_power_deadline = d.model_time + LOCAL_POWER_MAX_S  # no lease
            else:
                owner = "web-dashboard" if source == "web" else "ha"
                d.issue_lease(owner, source, now, auto_renew=renew)
            d.bump(source)
        elif mode == "auto":
            d._to_off()
            d.mode = "auto"
            d.requested_c = float(target if target is not None else d.params["auto_target_c"])
            d.auto_engaged = d.auto_print
            d.bump(source)
        elif mode == "drying":
            d.start_drying(float(target if target is not None else d.params["dry_target_c"]),
                           int(d.params["dry_hours"]))
            d.bump(source)
        elif mode == "filter":
            # A filter toggle changes the revision and source, never the lease.
            d.filter_percent = 0 if d.filter_percent else 100
            d.bump(source)
        else:
            raise ValueError("mode must be power_on, off, auto, drying or filter")
        self.journal.record("takeover", {"source": source, "mode": mode, "target": target},
                            Outcome(applied=[mode]))
        return {"mode": d.mode, "source": d.source, "revision": d.revision}

    def button_long_press(self) -> None:
        """Any button held 2 s: panic-off, latched in RAM only (a reboot clears it)."""
        self.device.latch("panic", source="button")

    def fault(self, reason: str = "chamber_overtemp") -> str:
        """Latch a fault now: a kind from FAULTS, ``inhibit`` (permanent until reboot),
        or any other text (latched and persisted under that text)."""
        d = self.device
        if reason == "inhibit":
            d._to_off()
            d.inhibited = True
            d.fault_reason = "task watchdog unavailable"
            d.bump("safety")
            return d.fault_reason
        if reason == "ptc_overtemp":
            self.thermal.set_temperatures(ptc=PTC_TRIP_C + 1.0)
        elif reason == "chamber_overtemp":
            self.thermal.set_temperatures(chamber=CHAMBER_TRIP_C + 1.0)
        d.latch(reason, source="watchdog" if reason == "lease_expired" else "safety",
                reason=None if reason in FAULTS else reason)
        return d.fault_reason or reason

    def occupy_streams(self, count: int | None = None, seconds: float | None = None) -> int:
        """Phantom clients (the dashboard, /diag) hold ``count`` stream slots (default all)."""
        n = self.db_options.max_streams if count is None else int(count)
        if n < 0:
            raise ValueError("count must not be negative")
        self.phantom_streams = n
        self.phantom_until = None if not seconds else time.monotonic() + float(seconds)
        return n

    def silence_stream(self, seconds: float = 10.0) -> None:
        """Open streams stay open but carry nothing for ``seconds`` (a half-open stream)."""
        self.stream_silent_until = time.monotonic() + float(seconds)

    def drop_streams(self) -> int:
        count = len(self.streams)
        for stream in list(self.streams.values()):
            stream.abort()
        self.streams.clear()
        return count

    def sensor_status_fault(self, sensor: str, code: int) -> str:
        field = {"chamber": "warehouse_sensor_status", "warehouse": "warehouse_sensor_status",
                 "ptc": "ptc_sensor_status"}.get(sensor)
        if field is None:
            raise ValueError("sensor must be chamber or ptc")
        self.device.set_fault(field, int(code))
        return SENSOR_STATUS.get(int(code), "open")

    def control(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        p = dict(params or {})
        d = self.device
        result: dict[str, Any] = {"ok": True, "action": action}
        if action == "take_over":
            result.update(self.take_over(
                str(p.get("source", "button")), p.get("mode") or None,
                optional_float(p, "target"),
                parse_bool(p["renew"]) if p.get("renew") not in (None, "") else True,
            ))
        elif action == "button_long_press":
            self.button_long_press()
        elif action == "fault":
            result["reason"] = self.fault(str(p.get("reason", "chamber_overtemp")))
        elif action == "clear_fault":
            d.clear_fault("button")  # a long press of Power while faulted
        elif action == "occupy_streams":
            count = optional_float(p, "n")
            if count is None:
                count = optional_float(p, "count")
            result["occupied"] = self.occupy_streams(
                None if count is None else int(count), optional_float(p, "seconds"))
        elif action == "silence_stream":
            self.silence_stream(float(p.get("seconds", 10)))
        elif action == "drop_streams":
            result["dropped"] = self.drop_streams()
        elif action == "reboot":
            result["started"] = self.reboot(optional_float(p, "down"),
                                            bool(optional_bool(p, "wipe")))
        elif action == "refuse":
            self.refuse_until = time.monotonic() + float(p.get("seconds", 10))
        elif action == "slow":
            self.response_delay = float(p.get("seconds", 5))
        elif action == "auto_print":
            d.auto_print = bool(optional_bool(p, "active"))
            engaged = d.mode == "auto" and d.auto_print
            if engaged != d.auto_engaged:
                d.auto_engaged = engaged
                d.bump(d.source)  # AUTO engage/disengage bumps the revision
        elif action == "sensor_fault":
            result["status"] = self.sensor_status_fault(
                str(p.get("sensor", "chamber")), int(p.get("code", 2)))
        elif action == "comms_ms":
            d.apply_settings({"comms_ms": str(p["value"])})
            result["comms_ms"] = d.comms_ms
        elif action in ("set_temps", "thermal"):
            self.set_temperatures(optional_float(p, "chamber"), optional_float(p, "ptc"),
                                  optional_float(p, "ambient"))
        elif action == "time_scale":
            self.set_time_scale(float(p["value"]))
        elif action == "malformed":
            result.update(self._control_malformed(p))
        elif action == "state":
            result["state"] = self.state()
        else:
            raise KeyError(f"unknown action {action!r} for dragonbreath")
        return result

    # -- observable state -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        d = self.device
        c = self.journal.counters
        lease = d.lease
        return {
            "firmware": FIRMWARE_NAME,
            "fw_version": self.db_options.firmware_version,
            "port": self.port,
            "time": time.time(),
            "time_scale": self.time_scale,
            "frame_interval": self.frame_interval,
            "up": d.up,
            "rebooting": self._rebooting,
            "boot_count": self.boot_count,
            "boot_id": d.boot_id,
            "uptime": round(now - self.booted_at, 3) if d.up else 0.0,
            "model_time": round(d.model_time, 3),
            "chamber_temp": round(self.thermal.chamber, 3),
            "ptc_temp": round(self.thermal.ptc, 3),
            "ambient_temp": round(self.thermal.params.ambient, 3),
            "heater_on": d.relay_on,
            "fan_on": d.fan_on,
            "fan_reason": d.fan_reason(),
            "filter_percent": d.filter_percent,
            "relay_switches": d.relay_switches,
            "mode": d.mode,
            "work_on": d.mode != "off",
            "source": d.source,
            "revision": d.revision,
            "requested_c": d.requested_c,
            "effective_c": d.effective_c(),
            "set_temp": d.requested_c if d.mode != "off" else None,
            "heating_target": d.effective_c() or None,
            "comms_ms": d.comms_ms,
            "max_c": d.max_c,
            "lease": None if lease is None else {
                "owner": lease.owner, "kind": lease.kind,
                "expires_in": round(max(0.0, lease.deadline - now), 3),
            },
            "fault_latched": d.fault_latched or d.inhibited,
            "inhibited": d.inhibited,
            "fault_reason": d.fault_reason,
            "sensor_faults": dict(d.faults),
            "drying": {
                "active": d.mode == "drying",
                "remaining_seconds": (max(0, math.ceil(d.drying_deadline - d.model_time))
                                      if d.drying_deadline is not None else 0),
                "target": d.requested_c if d.mode == "drying" else None,
            },
            "streams": len(self.streams),
            "phantom_streams": self._phantoms(),
            "stream_silent": now < self.stream_silent_until,
            "refusing": now < self.refuse_until or not d.up,
            "connections_total": self.server.connections_total,
            "connections_refused": self.server.connections_refused,
            "counters": dict(c),
            "recent_frames": list(self.journal.recent),
            "flash": {k: v for k, v in self.flash.data.items() if k != "ctl_token"},
        }


def _json_body(request: HttpRequest) -> Any:
    if not request.body:
        raise Refused(400, "invalid_command", "empty body")
    try:
        return json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Refused(400, "invalid_command", "body is not JSON") from None
