"""Stock firmware v1.0.4's native MQTT interface (the Home Assistant one), without I/O.

Facts this encodes (device-protocol reference, section 2.9):

* Topics ``<prefix>/<ID>/state`` (flat JSON with the Home Assistant names,
  about twice a second, always the whole state), ``<prefix>/<ID>/command``
  (JSON) and ``<prefix>/<ID>/availability`` (``online``/``offline``, the
  will).  ``<ID>`` is the device's MAC without colons; the prefix defaults to
  ``panda_breath``.
* Commands use the Home Assistant spellings: ``{"mode": "power on"}``,
  ``{"target_temp": 45}`` (a whole number, 0-60), ``{"work_on": "ON"}``.
  They are sent one key per message in the web UI's order, like every other
  write to this firmware.
* The same broker usually serves the user's Home Assistant, which owns the
  device's discovery topics and broker binding: this module only ever writes
  to the command topic, and never retained.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .model import (
    MODE_AUTO,
    MODE_DRYING,
    MODE_ON,
    DeviceReport,
    FrameError,
    as_number,
    device_degrees,
    parse_json_object,
    read_temperature,
)
from .mqtt_common import MqttProtocol, Publish, parse_availability
from .stock_ws import decode_drying, decode_faults

DEFAULT_PREFIX = "panda_breath"

_MODES = {"auto mode": MODE_AUTO, "power on": MODE_ON, "filament drying": MODE_DRYING}
_ON_OFF = {"ON": True, "OFF": False}


class StockMqttProtocol(MqttProtocol):
    """Topic layout of one v1.0.4 device; each state message is a full snapshot."""

    def __init__(
        self, device_id: str, prefix: str = DEFAULT_PREFIX, max_target: float = 60.0
    ) -> None:
        self.device_id = device_id
        self.prefix = prefix
        self.max_target = max_target
        self.base = f"{prefix}/{device_id}"
        self.state_topic = f"{self.base}/state"
        self.command_topic = f"{self.base}/command"
        self.availability_topic = f"{self.base}/availability"

    def topics(self) -> list[str]:
        return [self.availability_topic, self.state_topic]

    # Device -> bridge --------------------------------------------------------

    def _decode(self, topic: str, text: str) -> DeviceReport:
        if topic == self.availability_topic:
            return DeviceReport(online=parse_availability(text))
        if topic != self.state_topic:
            raise FrameError("message on a topic this device does not use")
        state = parse_json_object(text, "state")
        report = DeviceReport(snapshot=True)
        _decode_state(state, report)
        return report

    # Bridge -> device --------------------------------------------------------

    def encode(self, target: float) -> list[Publish]:
        """Heat: mode, target, work_on (the web UI's order); off: work_on alone."""
        if target <= 0.0:
            return [self._command("work_on", "OFF")]
        degrees = min(device_degrees(target), int(self.max_target))
        return [
            self._command("mode", "power on"),
            self._command("target_temp", degrees),
            self._command("work_on", "ON"),
        ]

    def encode_drying(self, temperature: int, hours: int) -> list[Publish]:
        """Custom drying: MQTT number writes apply at once (no commit), then start."""
        return [
            self._command("custom_temp", int(temperature)),
            self._command("custom_timer", int(hours)),
            self._command("drying_running", "ON"),
        ]

    def _command(self, key: str, value: Any) -> Publish:
        return Publish(self.command_topic, json.dumps({key: value}, separators=(",", ":")))


def _decode_state(state: Mapping[str, Any], report: DeviceReport) -> None:
    report.chamber_temp = read_temperature(state, "chamber_temp", report)
    report.ptc_temp = read_temperature(state, "ptc_temp", report)
    work_on = _on_off(state, "work_on", report)
    drying = _on_off(state, "drying_running", report)
    if "mode" in state:
        mode = _MODES.get(state["mode"]) if isinstance(state["mode"], str) else None
        if mode is None:
            report.rejected_fields.append("mode")
        else:
            report.mode = mode
    if drying is not None:
        report.drying = drying
    if drying:
        # A running drying cycle heats whatever work_on says.
        report.mode = MODE_DRYING
        report.work_on = True
    else:
        report.work_on = work_on
    if "target_temp" in state:
        number = as_number(state["target_temp"])
        if number is None or not 0 <= number <= 120:
            report.rejected_fields.append("target_temp")
        else:
            report.device_target = number
    decode_drying(state, report)
    # Sensor-status codes as the WebSocket snapshot carries them, if v1.0.4 sends them.
    decode_faults(state, report)


def _on_off(state: Mapping[str, Any], key: str, report: DeviceReport) -> bool | None:
    if key not in state:
        return None
    value = state[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.upper() in _ON_OFF:
        return _ON_OFF[value.upper()]
    report.rejected_fields.append(key)
    return None
