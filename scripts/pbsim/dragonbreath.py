"""The DragonBreath firmware (plastikman/DragonBreath v1.1.11) as a simulator personality.

``--firmware dragonbreath``: HTTP JSON API v2 and Server-Sent Events on one
port, as the reference describes it (dragonbreath-and-helixscreen.md, Parts A
and D.2).  Two parts:

* :class:`DragonBreathDevice` (this module) is the firmware's policy on the
  shared device core and thermal model: modes (off, power_on, auto, drying),
  the revision counter (bumped only by control, mode, lease, fault, safety,
  filter and AUTO changes), the lease and its watchdog, latched faults
  (persisted in the simulated NVS, so they survive a reboot as "safety trip"),
  the over-temperature and sensor trips, the residual-heat purge, drying, and
  ``config.comms_ms``.
* ``dragonbreath_api`` is its HTTP API: the routes (``/api/v2/info``,
  ``state``, ``health``, ``events``, ``command``, ``heartbeat``,
  ``/settings``, ``/api/v2/token``), command validation, the replay cache, the
  JSON it answers with and at most two event streams (the third gets 503
  ``busy``).
* ``dragonbreath_sim`` is the simulator personality: telemetry every
  ``frame_interval`` (2 s by default), the lease watchdog's tick and the
  control actions tests use to play the world around the device.

The clocks each part runs on are described in ``dragonbreath_sim``.

ASSUMED where the reference is silent: a ``POST /settings`` change does not
bump the revision; ``off`` when already off with no lease bumps nothing; the
on-device Home Assistant client's actor is reported as source ``ha``; web and
HA leases taken over in tests are renewed by the simulator (as a live
dashboard or HA client would); an oversized body is 400 ``invalid_command``;
the bang-bang band of the heater loop is 0.5 °C.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pbsim.device import DeviceCore, Flash
from pbsim.thermal import ThermalModel

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

@dataclass
class DragonBreathOptions:
    """What the CLI (``--db-*``) and ``create_simulator(firmware="dragonbreath", ...)`` set."""

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


class Refused(Exception):
    """An API error: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


#: How many renewal gaps a lease keeps for ``/sim/state``.
RECENT_GAPS = 100


@dataclass
class Lease:
    lease_id: str
    owner: str
    kind: str
    deadline: float  # wall monotonic
    #: Simulated other controllers (web dashboard, HA client) renew their own lease.
    auto_renew: bool = False
    #: When it was last taken or renewed, and the recent gaps between renewals
    #: (wall seconds, as the watchdog sees them; ``/sim/state`` shows them).
    renewed_at: float = 0.0
    gaps: list[float] = field(default_factory=list)


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

    def lease_remaining(self, now: float) -> float:
        return max(0.0, self.lease.deadline - now) if self.lease is not None else 0.0

    def drying_remaining(self) -> int:
        """Whole model seconds left of a drying run (0 when none runs)."""
        if self.drying_deadline is None:
            return 0
        return max(0, math.ceil(self.drying_deadline - self.model_time))

    # -- control loop (model time) --------------------------------------------------------------
    def control(self, dt: float) -> None:
        if not self.up:
            self.set_relay(False)
            self.fan_on = False
            return
        chamber, ptc = self.thermal.chamber, self.thermal.ptc
        if not (self.fault_latched or self.inhibited):
            self._trip(chamber, ptc)
        for deadline in (self.drying_deadline if self.mode == "drying" else None,
                         self.local_power_deadline if self.mode == "power_on" else None):
            if deadline is not None and self.model_time >= deadline:
                self.to_off()
                self.bump("watchdog")  # the end of a timed run, not a fault
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

    def _trip(self, chamber: float, ptc: float) -> None:
        """The over-temperature and sensor trips of the firmware's safety task."""
        if self.sensor_status("ptc") == "ok" and ptc >= PTC_TRIP_C:
            self.latch("ptc_overtemp")
        elif self.sensor_status("chamber") == "ok" and chamber >= CHAMBER_TRIP_C:
            self.latch("chamber_overtemp")
        elif self.demand() and self.sensor_status("chamber") != "ok":
            self.latch("chamber_sensor")
        elif self.demand() and self.sensor_status("ptc") != "ok":
            self.latch("ptc_sensor")

    # -- transitions ------------------------------------------------------------------------
    def to_off(self) -> None:
        self.mode = "off"
        self.requested_c = 0.0
        self.lease = None
        self.drying_deadline = None
        self.local_power_deadline = None
        self.auto_engaged = False
        self.set_relay(False)

    def start_power_on(self, target: float) -> None:
        self.to_off()
        self.mode = "power_on"
        self.requested_c = min(target, self.max_c, MAX_ABS_C)

    def start_auto(self, target: float) -> None:
        self.to_off()
        self.mode = "auto"
        self.requested_c = min(target, self.max_c, MAX_ABS_C)
        self.auto_engaged = self.auto_print

    def start_drying(self, target: float, hours: int) -> None:
        self.to_off()
        self.mode = "drying"
        self.requested_c = target
        self.drying_deadline = self.model_time + hours * 3600.0
        self.params["dry_target_c"] = target
        self.params["dry_hours"] = hours

    def set_auto_print(self, active: bool) -> None:
        """The printer starts or stops printing: AUTO engages or disengages (a new revision)."""
        self.auto_print = active
        engaged = self.mode == "auto" and active
        if engaged != self.auto_engaged:
            self.auto_engaged = engaged
            self.bump(self.source)

    def latch(self, kind: str, source: str = "safety", reason: str | None = None) -> None:
        """``pb_heater_emergency_off``: SSR off, mode off, fault latched (persisted if a hazard)."""
        text, persisted = FAULTS.get(kind, (reason or kind, True))
        self.to_off()
        self.fault_latched = True
        self.fault_reason = reason or text
        if persisted:
            self.flash.update({"fault_latch": True, "fault_code": kind})
        self.bump(source)
        log.info("fault latched: %s", self.fault_reason)

    def inhibit(self) -> None:
        """The task watchdog is unavailable: no heat until the next reboot."""
        self.to_off()
        self.inhibited = True
        self.fault_reason = "task watchdog unavailable"
        self.bump("safety")

    def heat_allowed(self) -> None:
        if self.inhibited:
            raise Refused(409, "inhibited", "heater inhibited until reboot")
        if self.fault_latched:
            raise Refused(409, "fault_latched", "a fault is latched; clear it first")

    def clear_fault(self, source: str) -> None:
        if self.inhibited:
            raise Refused(409, "inhibited", "a permanent inhibit clears only by reboot")
        if self.options.persist_fail:
            raise Refused(500, "persist_failed", "could not clear the persisted latch")
        self.flash.update({"fault_latch": False, "fault_code": None})
        self.to_off()
        self.fault_latched = False
        self.fault_reason = None
        self.bump(source)

    # -- the lease -----------------------------------------------------------------------------
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
        self.lease = Lease(lease_id, owner, kind, now + self.comms_ms / 1000.0, auto_renew, now)
        return lease_id

    def renew_lease(self, lease_id: str, now: float) -> None:
        lease = self.lease
        if (
            lease is None or lease.lease_id != lease_id or self.mode != "power_on"
            or now > lease.deadline
        ):
            raise Refused(409, "stale_lease", "no such lease")
        lease.deadline = now + self.comms_ms / 1000.0
        lease.gaps = lease.gaps[-(RECENT_GAPS - 1):] + [now - lease.renewed_at]
        lease.renewed_at = now
