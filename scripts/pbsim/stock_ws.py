"""The stock firmware's WebSocket protocol: snapshot, periodic frames, and client writes.

Pure protocol (no I/O): :class:`StockWsProtocol` builds the frames the device
sends and interprets the frames a client sends, with each build's quirks. Where
the reference marks behaviour unverified, the documented behaviour is the
default and the alternative is an option (see :class:`WsOptions`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pbsim.hostile import json_payloads
from pbsim.journal import Outcome
from pbsim.secrets import SECRET_AP_PASSWORD, SECRET_WIFI_PASSWORD, SECRET_WIFI_SSID
from pbsim.stock import StockDevice

#: Fake LAN address the device reports for itself.
DEVICE_LAN_IP = "192.168.1.57"
AP_IP = "192.168.254.1"

#: Keys the device reports but does not take as writes.
READ_ONLY_KEYS = frozenset(
    {
        "fw_version", "warehouse_temper", "cal_warehouse_temp", "cal_ptc_temp", "chamber_temp",
        "custom_temp", "custom_timer", "remaining_seconds", "drying_remaining_min",
        "ptc_sensor_status", "warehouse_sensor_status", "ptc_heater_status", "filament_button",
    }
)
#: v1.0.4 Home-Assistant spellings the WS may accept (unverified on WS, §2.14 #2).
WS_ALIASES = {
    "target_temp": "set_temp",
    "filter_temp": "filtertemp",
    "heater_temp": "hotbedtemp",
    "drying_running": "isrunning",
}
NOT_SIMULATED_ROOTS = frozenset({"printer", "wifi", "ap"})
NO_OP_ROOTS = frozenset({"query", "get_settings"})


@dataclass
class WsOptions:
    """Switches for behaviour the reference marks unverified or optional."""

    #: Snapshot ``work_on`` as int 0/1 (default, as snapshots were observed) or JSON bool.
    snapshot_bool_work_on: bool = False
    #: Add ``cal_warehouse_temp``/``cal_ptc_temp`` (one decimal) to frames (§2.14 #1).
    cal_temp: bool = False
    #: Add ``work_on``/``work_mode`` to periodic frames (§2.14 #5; off by default).
    periodic_state: bool = False
    #: v1.0.4: accept target_temp/filter_temp/heater_temp/drying_running on WS (§2.14 #2).
    ws_aliases: bool = True
    #: v1.0.3+: apply every key of a multi-key settings frame instead of only the first.
    multi_key_frames: bool = False
    #: v1.0.4 periodic frames carry ``chamber_temp`` *and* ``warehouse_temper`` (the web UI
    #: reads the latter on every build); True drops ``warehouse_temper``.
    chamber_temp_only: bool = False
    #: Send ``{"printer":{"state":N}}`` after every Nth temperature frame (0: never).
    printer_frame_every: int = 5
    #: Push a change made by one client, a button or MQTT to the WS clients as a
    #: ``settings`` frame. Off by default: the V1.0.0 build does not (confirmed) and
    #: it is unverified for later builds (§2.3).
    push_changes: bool = False
    device_id: str = "ACEBE68FE51C"


def whole_degrees(value: float) -> int:
    """The device reports the chamber in 1 °C steps (``WAREHOUSE_TEMP: %d``); round half up."""
    if not math.isfinite(value):
        return 0
    return int(math.floor(value + 0.5))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class WriteResult:
    """One interpreted client frame: the outcome, replies for that client, device actions."""

    outcome: Outcome
    payload: Any = None
    replies: list[dict[str, Any]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # "reboot", "factory_reset"
    #: Setting names whose value this frame changed (for ``last_applied_at``).
    changed: list[str] = field(default_factory=list)


class StockWsProtocol:
    """Builds device frames and applies client frames for one stock device."""

    def __init__(
        self,
        device: StockDevice,
        options: WsOptions | None = None,
        ha_status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.device = device
        self.options = options or WsOptions()
        self.ha_status = ha_status or (lambda: {"ip": "", "port": 1883, "user": "", "state": 0})

    # -- device -> client --------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The full state sent as the first frame after a WebSocket upgrade."""
        d = self.device
        s = d.settings
        fw = d.firmware
        chamber = whole_degrees(d.chamber_reading())
        settings: dict[str, Any] = {
            "fw_version": fw.fw_version,
            "language": s.language,
            "work_on": s.work_on if self.options.snapshot_bool_work_on else int(s.work_on),
            "work_mode": d.mode_number(),
            fw.target_key: s.set_temp,
        }
        if fw.v103_features:
            settings["filtertemp"] = s.filtertemp
        settings.update(
            {
                "hotbedtemp": s.hotbedtemp,
                "custom_temp": s.custom_temp,
                "custom_timer": s.custom_timer,
                "isrunning": int(d.drying_running),
                "remaining_seconds": d.remaining_whole_seconds(),
            }
        )
        if fw.drying_commit:
            settings["filament_drying_mode"] = s.filament_drying_mode
        if fw.v103_features:
            settings["printer_type"] = s.printer_type
        settings["warehouse_temper"] = chamber
        if fw.v104:
            settings.update(
                {
                    "chamber_temp": chamber,
                    "target_temp": s.set_temp,
                    "filter_temp": s.filtertemp,
                    "heater_temp": s.hotbedtemp,
                    "drying_running": "ON" if d.drying_running else "OFF",
                    "drying_remaining_min": d.remaining_whole_seconds() // 60,
                }
            )
        settings.update(self._cal_fields())
        if fw.v103_features:
            settings.update(d.faults)
        p = d.printer
        frame: dict[str, Any] = {
            "settings": settings,
            "printer": {
                "name": p.name, "host": p.host, "port": p.port, "state": p.state,
                "list": list(p.list),
            },
            "sta": {"ip": DEVICE_LAN_IP, "hostname": s.hostname, "state": 1},
            "ap": {
                "ssid": f"Panda_Breath_{self.options.device_id[-6:]}",
                "password": SECRET_AP_PASSWORD,
                "ip": AP_IP,
                "on": 0,
            },
            "wifi": {"ssid": SECRET_WIFI_SSID, "password": SECRET_WIFI_PASSWORD},
        }
        if fw.v104:
            frame["ha"] = self.ha_status()
        return frame

    def periodic(self, tick: int) -> list[dict[str, Any]]:
        """Frames for the ``tick``-th periodic broadcast (temperature, sometimes link state)."""
        d = self.device
        chamber = whole_degrees(d.chamber_reading())
        settings: dict[str, Any] = {}
        if not (d.firmware.v104 and self.options.chamber_temp_only):
            settings["warehouse_temper"] = chamber
        if d.firmware.v104:
            settings["chamber_temp"] = chamber
        settings.update(self._cal_fields())
        if d.firmware.v103_features:
            settings.update({k: v for k, v in d.faults.items() if v})
        if self.options.periodic_state:
            s = d.settings
            settings["work_on"] = s.work_on if self.options.snapshot_bool_work_on else int(
                s.work_on
            )
            settings["work_mode"] = d.mode_number()
        frames: list[dict[str, Any]] = [{"settings": settings}]
        every = self.options.printer_frame_every
        if every and tick % every == every - 1:
            frames.append({"printer": {"state": d.printer.state}})
        return frames

    def change_frame(self, changed: list[str]) -> dict[str, Any] | None:
        """``--push-changes``: the new values of ``changed`` settings, as a snapshot shows them."""
        settings = self.snapshot()["settings"]
        names = {"set_temp": self.device.firmware.target_key}
        keys = [names.get(name, name) for name in changed]
        body = {key: settings[key] for key in keys if key in settings}
        return {"settings": body} if body else None

    def fault_frame(self) -> dict[str, Any] | None:
        """Pushed when a sensor/heater fault appears or clears (the UI shows a dialog)."""
        if not self.device.firmware.v103_features:
            return None
        return {"settings": dict(self.device.faults)}

    def hostile(self, kind: str, size: int, depth: int) -> list[str | bytes]:
        """Hostile frames (``pbsim.hostile``) shaped like this build's snapshot settings."""
        settings = self.snapshot()["settings"]
        first = ("warehouse_temper", "work_on", "work_mode", self.device.firmware.target_key)
        fields = {key: settings[key] for key in first if key in settings}
        fields.update(settings)
        return json_payloads(kind, fields, "settings", size, depth)

    def _cal_fields(self) -> dict[str, Any]:
        if not self.options.cal_temp:
            return {}
        d = self.device
        return {
            "cal_warehouse_temp": round(d.chamber_reading(), 1),
            "cal_ptc_temp": round(d.ptc_reading(), 1),
        }

    # -- client -> device ------------------------------------------------------------------
    def handle(self, message: str | bytes) -> WriteResult:
        """Interpret one received WebSocket message. Never raises on bad input."""
        outcome = Outcome()
        result = WriteResult(outcome)
        if isinstance(message, bytes):
            outcome.reject("binary frame")
            result.payload = {"_binary": len(message)}
            return result
        try:
            payload = json.loads(message)
        except ValueError:
            outcome.reject("malformed JSON")
            result.payload = {"_raw": message[:200]}
            return result
        result.payload = payload
        if not isinstance(payload, dict):
            outcome.reject("not a JSON object")
            return result
        if not payload:
            outcome.reject("empty object")
            return result
        for root, body in payload.items():
            if root == "settings":
                self._settings(body, result)
            elif root == "sta":
                self._sta(body, result)
            elif root in NO_OP_ROOTS:
                outcome.ignore(root, "no-op: not handled by the firmware")
            elif root in NOT_SIMULATED_ROOTS:
                outcome.ignore(root, "root not simulated")
            else:
                outcome.ignore(root, "unknown root")
        return result

    def _settings(self, body: Any, result: WriteResult) -> None:
        outcome = result.outcome
        if not isinstance(body, dict):
            outcome.ignore("settings", "settings is not an object")
            return
        items = list(body.items())
        if not items:
            outcome.ignore("settings", "empty settings object")
            return
        fw = self.device.firmware
        if fw.single_key_frames and not self.options.multi_key_frames:
            # Assumption modelling "multi-field frames are order-sensitive/unreliable on
            # v1.0.3" (§2.13): only the first key takes effect.
            for key, _ in items[1:]:
                outcome.ignore(key, "only the first key of a multi-key settings frame is applied")
            items = items[:1]
        for key, value in items:
            self._setting(key, value, result)

    def _setting(self, key: str, value: Any, result: WriteResult) -> None:
        d = self.device
        fw = d.firmware
        outcome = result.outcome
        name = key
        if fw.v104 and self.options.ws_aliases and key in WS_ALIASES:
            name = WS_ALIASES[key]
        if name in ("temp", "set_temp"):
            if name != fw.target_key:
                outcome.ignore(key, f"not the target key on {fw.fw_version} (uses {fw.target_key})")
            elif not is_number(value):
                outcome.ignore(key, "target is not a number")
            else:
                d.set_number("set_temp", value)
                self._applied(result, key, "set_temp")
        elif name == "work_on":
            if isinstance(value, bool):
                d.set_work_on(value)
                self._applied(result, key, "work_on")
            elif fw.work_on_bool_only:
                outcome.ignore(key, "work_on must be a JSON boolean on v1.0.3+")
            elif is_number(value) and value in (0, 1):
                d.set_work_on(bool(value))
                self._applied(result, key, "work_on")
            else:
                outcome.ignore(key, "work_on is neither boolean nor 0/1")
        elif name == "work_mode":
            mode = fw.mode_by_number.get(value) if is_number(value) else None
            if mode is None or not float(value).is_integer():
                outcome.ignore(key, f"work_mode not one of {sorted(fw.mode_by_number)}")
            else:
                d.set_mode(mode)
                self._applied(result, key, "work_mode")
        elif name == "hotbedtemp" or (name == "filtertemp" and fw.v103_features):
            if is_number(value):
                d.set_number(name, value)
                self._applied(result, key, name)
            else:
                outcome.ignore(key, f"{name} is not a number")
        elif name in ("filament_temp", "filament_timer"):
            if not is_number(value):
                outcome.ignore(key, f"{key} is not a number")
            elif fw.drying_commit:
                d.stage_drying(name, value)
                self._applied(result, key)  # staged until {"filament_drying_mode": 3}
            else:
                target = "custom_temp" if name == "filament_temp" else "custom_timer"
                d.set_number(target, value)
                self._applied(result, key, target)
        elif name == "filament_drying_mode" and fw.drying_commit:
            if is_number(value) and value in (1, 2, 3):
                staged = list(d.pending_drying) if value == 3 else ["custom_temp", "custom_timer"]
                d.select_drying_mode(int(value))
                self._applied(result, key, "filament_drying_mode", *staged)
            else:
                outcome.ignore(key, "filament_drying_mode not 1, 2 or 3")
        elif name == "isrunning":
            flag = _on_off(value)
            if flag is None:
                outcome.ignore(key, "isrunning not 0/1")
            else:
                (d.start_drying if flag else d.stop_drying)()
                self._applied(result, key, "isrunning")
        elif name == "printer_type" and fw.v103_features:
            if is_number(value) and value in (1, 2):
                d.set_value("printer_type", int(value))
                self._applied(result, key, "printer_type")
                result.replies.append({"response": {"type": "printer_type", "ok": 1}})
            else:
                outcome.ignore(key, "printer_type not 1 or 2")
        elif name == "language":
            if value in ("en", "zh"):
                d.set_value("language", value)
                self._applied(result, key, "language")
            else:
                outcome.ignore(key, "language not en/zh")
        elif name == "reset":
            if value in (1, True):
                result.actions.append("reboot")
                self._applied(result, key, "reset")
            else:
                outcome.ignore(key, "reset not 1")
        elif name == "factory_reset":
            if value in (1, True):
                result.replies.append({"response": {"type": "factory_reset", "ok": 1}})
                result.actions.append("factory_reset")
                self._applied(result, key, "factory_reset")
            else:
                outcome.ignore(key, "factory_reset not 1")
        elif key in READ_ONLY_KEYS:
            outcome.ignore(key, "read-only field")
        else:
            outcome.ignore(key, "unknown key")

    def _sta(self, body: Any, result: WriteResult) -> None:
        if isinstance(body, dict) and isinstance(body.get("hostname"), str) and body["hostname"]:
            self.device.set_value("hostname", body["hostname"][:32])
            self._applied(result, "sta", "hostname")
            result.replies.append({"response": {"type": "set_hostname", "ok": 1}})
        else:
            result.outcome.ignore("sta", "root not simulated")

    @staticmethod
    def _applied(result: WriteResult, key: str, *changed: str) -> None:
        result.outcome.apply(key)
        result.changed.extend(changed)


def _on_off(value: Any) -> bool | None:
    """isrunning / drying_running: 1/0, true/false, or the HA words ON/OFF."""
    if isinstance(value, bool):
        return value
    if is_number(value) and value in (0, 1):
        return bool(value)
    if value in ("ON", "OFF"):
        return value == "ON"
    return None
