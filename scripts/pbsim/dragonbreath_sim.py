"""The DragonBreath firmware (``--firmware dragonbreath``) as a simulator personality.

The device's policy is in ``dragonbreath``, its HTTP API and event streams in
``dragonbreath_api``; this module serves them on ``HttpServer``, sends
telemetry every ``frame_interval``, runs the lease watchdog's tick and offers
the control actions that play the world around the device: another
controller taking over, the buttons, faults, busy or silent streams, a slow
device, slow heartbeat answers.  The lease in ``/sim/state`` lists the gaps
between its renewals as the device saw them (``renewal_gaps``).

Clocks: the thermal model, the drying countdown and the 12 h limit of a
button power-on run on the model clock (``--time-scale``); the lease, the
comms watchdog and the stream cadence run on the wall clock, because they
time the host, which runs at real speed.  ``comms_ms_min`` (a simulator knob,
default the device's 10 000) lets a test shrink the lease so that many renewals
fit in a short run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from pbsim.core import Action, SimCore
from pbsim.dragonbreath import (
    CHAMBER_TRIP_C,
    FAULTS,
    FIRMWARE_NAME,
    LOCAL_POWER_MAX_S,
    MIN_TARGET_C,
    PTC_TRIP_C,
    SENSOR_STATUS,
    DragonBreathDevice,
)
from pbsim.dragonbreath_api import DragonBreathApi, EventStreams
from pbsim.faults import optional_bool, optional_float, parse_bool
from pbsim.http_server import HttpServer
from pbsim.journal import Outcome
from pbsim.options import SimOptions

TAKE_OVER_SOURCES = ("button", "web", "ha")


class DragonBreathSimulator(SimCore):
    """A simulated DragonBreath device: HTTP API v2 and event streams on one port."""

    device: DragonBreathDevice

    def __init__(self, options: SimOptions) -> None:
        if options.mqtt:
            raise ValueError("--mqtt: DragonBreath's own MQTT clients are not simulated")
        options.firmware = FIRMWARE_NAME
        super().__init__(options)
        self.db_options = options.dragonbreath
        self.device = DragonBreathDevice(self.thermal, self.flash, self.db_options)
        self.device.on_revision = self._revision_changed
        self.streams = EventStreams(self.device, self.journal, self.db_options.max_streams)
        self.api = DragonBreathApi(
            self.device, self.journal, self.streams,
            {"/sim/state": lambda q: (200, self.state()), "/sim/control": self.http_control},
            uptime=lambda: time.monotonic() - self.booted_at,
        )
        self.server: HttpServer = HttpServer(
            options.host, options.port, self.api.handle, lambda: not self.refusing())

    def _revision_changed(self) -> None:
        self.streams.broadcast("state")

    # -- the device's own loops ------------------------------------------------------------
    def _loops(self) -> list[Coroutine[Any, Any, None]]:
        return [self._paced(lambda: self.streams.broadcast("telemetry")), self._lease_loop()]

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.db_options.lease_check_interval)
            self.device.check_lease(time.monotonic())

    def _cut_connections(self) -> None:
        """Every connection reset; the RAM (replay cache) is gone."""
        self.streams.drop()
        self.server.abort_all()
        self.api.reset()

    def _send_hostile(self, kind: str, size: int | None, depth: int) -> int:
        return self.streams.send_hostile(kind, size, depth)

    # -- world around the device (control actions) -----------------------------------------------
    def take_over(
        self, source: str, mode: str | None = None, target: float | None = None,
        renew: bool = True,
    ) -> dict[str, Any]:
        """Another controller acts: ``button`` (front panel), ``web`` (its dashboard),
        ``ha`` (its Home Assistant client).  ``mode``: power_on (default: toggle for
        the button, power_on otherwise), off, auto, drying, filter."""
        d = self.device
        if source not in TAKE_OVER_SOURCES:
            raise ValueError("source must be button, web or ha")
        if mode is None:
            mode = ("off" if d.mode != "off" else "power_on") if source == "button" else "power_on"
        if mode in ("power_on", "auto", "drying") and (d.fault_latched or d.inhibited):
            raise ValueError("the device has a latched fault: heat refused")
        if mode == "off":
            d.to_off()
        elif mode == "power_on":
            self._power_on(source, float(target if target is not None
                                         else d.params["manual_target_c"]), renew)
        elif mode == "auto":
            d.start_auto(float(target if target is not None else d.params["auto_target_c"]))
        elif mode == "drying":
            d.start_drying(float(target if target is not None else d.params["dry_target_c"]),
                           int(d.params["dry_hours"]))
        elif mode == "filter":
            # A filter toggle changes the revision and source, never the lease.
            d.filter_percent = 0 if d.filter_percent else 100
        else:
            raise ValueError("mode must be power_on, off, auto, drying or filter")
        d.bump(source)
        self.journal.record("takeover", {"source": source, "mode": mode, "target": target},
                            Outcome(applied=[mode]))
        return {"mode": d.mode, "source": d.source, "revision": d.revision}

    def _power_on(self, source: str, degrees: float, renew: bool) -> None:
        """A button power-on runs 12 h at most without a lease; web and HA hold one."""
        d = self.device
        if degrees < MIN_TARGET_C:
            raise ValueError("target below 30 °C refused")
        d.start_power_on(degrees)
        if source == "button":
            d.local_power_deadline = d.model_time + LOCAL_POWER_MAX_S
        else:
            owner = "web-dashboard" if source == "web" else "ha"
            d.issue_lease(owner, source, time.monotonic(), auto_renew=renew)

    def button_long_press(self) -> None:
        """Any button held 2 s: panic-off, latched in RAM only (a reboot clears it)."""
        self.device.latch("panic", source="button")

    def fault(self, reason: str = "chamber_overtemp") -> str:
        """Latch a fault now: a kind from FAULTS, ``inhibit`` (permanent until reboot),
        or any other text (latched and persisted under that text)."""
        d = self.device
        if reason == "inhibit":
            d.inhibit()
            return d.fault_reason or reason
        if reason == "ptc_overtemp":
            self.thermal.set_temperatures(ptc=PTC_TRIP_C + 1.0)
        elif reason == "chamber_overtemp":
            self.thermal.set_temperatures(chamber=CHAMBER_TRIP_C + 1.0)
        d.latch(reason, source="watchdog" if reason == "lease_expired" else "safety",
                reason=None if reason in FAULTS else reason)
        return d.fault_reason or reason

    def sensor_status_fault(self, sensor: str, code: int) -> str:
        if sensor not in ("chamber", "warehouse", "ptc"):
            raise ValueError("sensor must be chamber or ptc")
        self.sensor_fault(sensor, int(code))
        return SENSOR_STATUS.get(int(code), "open")

    def _actions(self) -> dict[str, Action]:
        d = self.device
        return {
            **super()._actions(),
            "take_over": lambda p: self.take_over(
                str(p.get("source", "button")), p.get("mode") or None,
                optional_float(p, "target"),
                parse_bool(p["renew"]) if p.get("renew") not in (None, "") else True),
            "button_long_press": lambda p: self.button_long_press(),
            "fault": lambda p: {"reason": self.fault(str(p.get("reason", "chamber_overtemp")))},
            "clear_fault": lambda p: d.clear_fault("button"),  # Power held while faulted
            "occupy_streams": self._control_occupy_streams,
            "silence_stream": lambda p: self.streams.silence(float(p.get("seconds", 10))),
            "drop_streams": lambda p: {"dropped": self.streams.drop()},
            "slow": lambda p: setattr(self.api, "response_delay", float(p.get("seconds", 5))),
            "slow_heartbeat_answers": lambda p: setattr(
                self.api, "heartbeat_answer_delay", float(p.get("seconds", 5))),
            "auto_print": lambda p: d.set_auto_print(bool(optional_bool(p, "active"))),
            "sensor_fault": lambda p: {"status": self.sensor_status_fault(
                str(p.get("sensor", "chamber")), int(p.get("code", 2)))},
            "comms_ms": lambda p: {"comms_ms": self.api.apply_settings(
                {"comms_ms": str(p["value"])})["comms_ms"]},
        }

    def _control_occupy_streams(self, p: dict[str, Any]) -> dict[str, Any]:
        count = optional_float(p, "n")
        if count is None:
            count = optional_float(p, "count")
        return {"occupied": self.streams.occupy(
            None if count is None else int(count), optional_float(p, "seconds"))}

    # -- observable state -----------------------------------------------------------------------
    def _state(self, now: float) -> dict[str, Any]:
        d = self.device
        lease = d.lease
        return {
            "fw_version": self.db_options.firmware_version,
            "boot_id": d.boot_id,
            "fan_reason": d.fan_reason(),
            "filter_percent": d.filter_percent,
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
                "expires_in": round(d.lease_remaining(now), 3),
                "renewal_gaps": [round(g, 4) for g in lease.gaps],
            },
            "fault_latched": d.fault_latched or d.inhibited,
            "inhibited": d.inhibited,
            "fault_reason": d.fault_reason,
            "drying": {
                "active": d.mode == "drying",
                "remaining_seconds": d.drying_remaining(),
                "target": d.requested_c if d.mode == "drying" else None,
            },
            "streams": len(self.streams.open),
            "phantom_streams": self.streams.phantoms(),
            "stream_silent": self.streams.silent,
            "connections_total": self.server.connections_total,
            "connections_refused": self.server.connections_refused,
        }
