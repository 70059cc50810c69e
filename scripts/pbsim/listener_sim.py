"""``ListenerSimulator``: the builds served by ``SimServer`` (stock and ESPHome).

They share the listener (``/ws`` where the build has it, ``/sim/state``,
``/sim/control``), its faults (drop, silence, occupy, refuse), the front-panel
``button``, the boot settings of ``--boot-*`` and the stock-style
``sensor_fault`` action. The build decides what a local change means and how a
reading is reported at once.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pbsim.core import Action, SimCore
from pbsim.device import FAULT_READINGS, DeviceCore
from pbsim.faults import optional_bool, optional_float
from pbsim.journal import Outcome
from pbsim.server import Client, SimServer

if TYPE_CHECKING:
    from pbsim.options import SimOptions

log = logging.getLogger("pbsim")

#: Settings a ``reboot`` action may write to flash first.
BOOT_SETTINGS = ("work_on", "set_temp", "work_mode", "mode", "low", "high")


class ListenerSimulator(SimCore):
    """A device behind ``SimServer``; ``ws_enabled`` says whether the build has ``/ws``."""

    ws_enabled = False

    def __init__(self, options: SimOptions) -> None:
        super().__init__(options)
        self.silent_until = 0.0
        self.silence_snapshots = False
        self._write_flash(
            work_on=options.boot_work_on, set_temp=options.boot_set_temp,
            work_mode=options.boot_work_mode,
        )
        self.device = self._make_device()
        self.device.on_event = self._device_event
        if options.swap_sensor_codes:
            self.device.readings_by_code = {1: FAULT_READINGS[2], 2: FAULT_READINGS[1]}
        self.server: SimServer = SimServer(
            options.host,
            options.port,
            self.journal,
            ws_enabled=self.ws_enabled,
            max_clients=options.max_clients,
            refuse_style=options.refuse_style,
            admission=self._admission,
            on_connect=self._ws_connect,
            on_message=self._ws_message,
            routes={
                "/sim/state": lambda q: (200, self.state()),
                "/sim/control": self.http_control,
                "/": lambda q: (200, self._index()),
            },
            ping_interval=options.ws_ping_interval,
        )

    # -- hooks of the build ------------------------------------------------------------------
    def _make_device(self) -> DeviceCore:
        """The build's device, booted from the flash as ``--boot-*`` left it."""
        raise NotImplementedError

    async def _ws_connect(self, client: Client) -> None:
        """A WebSocket client was admitted (builds with ``/ws``)."""

    def _ws_message(self, client: Client, message: str | bytes) -> None:
        """A WebSocket client sent a frame (builds with ``/ws``)."""

    def _device_event(self, event: str) -> None:
        """The device changed something by itself (``fault``, ``climate``)."""

    def _local_change(
        self, work_on: bool | None, work_mode: str | int | None, set_temp: float | None,
        drying: bool | None, outcome: Outcome,
    ) -> None:
        raise NotImplementedError

    def _push_changes(self, changed: list[str], exclude: Client | None = None) -> None:
        """Tell connected clients about a change made elsewhere (where the build does)."""

    def _report_now(self) -> None:
        """Send the current reading at once instead of at the next periodic report."""

    def _cut_connections(self) -> None:
        self.server.drop_all("abort")

    def _reboot_overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        overrides = {key: params[key] for key in BOOT_SETTINGS if key in params}
        if "work_on" in overrides:
            overrides["work_on"] = optional_bool(params, "work_on")
        return overrides

    # -- listener faults ---------------------------------------------------------------------
    def _admission(self) -> str | None:
        if not self.device.up:
            return "device rebooting"
        if time.monotonic() < self.refuse_until:
            return "refusing connections (fault)"
        return None

    @property
    def silent(self) -> bool:
        return time.monotonic() < self.silent_until

    def drop_connections(self, how: str = "abort") -> int:
        """Drop every WebSocket client: ``abort`` (TCP reset, no close frame) or ``close``."""
        if how not in ("abort", "close"):
            raise ValueError("how must be 'abort' or 'close'")
        dropped = self.server.drop_all(how)
        self.journal.count("drops")
        log.info("dropped %d client(s) (%s)", dropped, how)
        return dropped

    def silence(self, seconds: float, snapshots: bool = False) -> None:
        """Stop all device->client WS frames for ``seconds`` without closing anything.

        Commands are still processed. New connections still get their snapshot
        unless ``snapshots`` is true (the observed pauses are of the broadcast).
        """
        self.silent_until = time.monotonic() + float(seconds)
        self.silence_snapshots = bool(snapshots)
        log.info("silent for %gs", seconds)

    def occupy(self, clients: int | None = None, seconds: float = 10.0) -> int:
        """Phantom clients hold ``clients`` WebSocket slots (default: all) for ``seconds``.

        New connections are refused as when the device is full; open ones stay.
        """
        if not self.ws_enabled:
            raise ValueError(f"{self.options.firmware} has no WebSocket server to fill")
        count = self.options.max_clients if clients is None else int(clients)
        self.server.occupy(count, float(seconds))
        self.journal.count("occupied")
        log.info("%d phantom client(s) for %gs", count, seconds)
        return count

    # -- the world around the device ----------------------------------------------------------
    def press_button(
        self,
        work_on: bool | None = None,
        work_mode: str | int | None = None,
        set_temp: float | None = None,
        drying: bool | None = None,
    ) -> list[str]:
        """A change made at the device (its panel, web UI or Home Assistant), saved to flash.

        The build says what each input means (``_local_change``; ``drying`` is
        the stock panel's Filament Drying button) and who hears of it; returns
        the names applied.
        """
        outcome = Outcome()
        self._local_change(work_on, work_mode, set_temp, drying, outcome)
        payload = {"work_on": work_on, "work_mode": work_mode, "set_temp": set_temp,
                   "drying": drying}
        self.journal.record(
            "button", {k: v for k, v in payload.items() if v is not None}, outcome,
            changed=list(outcome.applied),
        )
        self._push_changes(list(outcome.applied))
        return outcome.applied

    def emit_temperature(self, value: float) -> float:
        """Set the chamber to ``value`` and report it at once; returns the wall time sent.

        For latency benchmarks: the build's periodic report (``_report_now``)
        goes out immediately instead of at the next tick.
        """
        self.thermal.set_temperatures(chamber=float(value))
        sent_at = time.time()
        self._report_now()
        return sent_at

    def _actions(self) -> dict[str, Action]:
        return {
            **super()._actions(),
            "drop": lambda p: {"dropped": self.drop_connections(p.get("how", "abort"))},
            "silence": lambda p: self.silence(
                float(p.get("seconds", 20)), bool(optional_bool(p, "snapshots"))),
            "occupy": self._control_occupy,
            "sensor_fault": lambda p: {"field": self.sensor_fault(
                p.get("sensor", "ptc"), int(p.get("code", 1)), optional_float(p, "reading"),
                optional_float(p, "seconds"))},
            "clear_faults": lambda p: self.clear_faults(),
            "button": self._control_button,
            "emit_temperature": lambda p: {"sent_at": self.emit_temperature(float(p["value"]))},
        }

    def _control_occupy(self, p: dict[str, Any]) -> dict[str, Any]:
        clients = optional_float(p, "clients")
        return {"clients": self.occupy(
            None if clients is None else int(clients), float(p.get("seconds", 10)))}

    def _control_button(self, p: dict[str, Any]) -> dict[str, Any]:
        mode = p.get("work_mode")
        return {"applied": self.press_button(
            optional_bool(p, "work_on"),
            int(mode) if isinstance(mode, str) and mode.isdigit() else mode,
            optional_float(p, "set_temp"),
            optional_bool(p, "drying"),
        )}

    # -- observable state ------------------------------------------------------------------
    def _state(self, now: float) -> dict[str, Any]:
        c = self.journal.counters
        return {
            "clients": len(self.server.clients),
            **{name: c[name] for name in (
                "connections_total", "connections_refused", "frames_received",
                "frames_applied", "frames_ignored", "keys_applied", "keys_ignored",
                "frames_sent", "snapshots_sent", "periodic_frames_sent", "hostile_count")},
            "silent": self.silent,
            "silent_remaining": round(max(0.0, self.silent_until - now), 3),
            "occupied": self.server.phantoms,
            "occupied_remaining": round(self.server.phantoms_remaining, 3),
            "last_applied_at": dict(self.journal.last_applied_at),
        }

    def _index(self) -> dict[str, Any]:
        return {
            "device": "Panda Breath (simulated)",
            "firmware": self.options.firmware,
            "endpoints": ["/ws", "/sim/state", "/sim/control?action=NAME&param=value"],
        }
