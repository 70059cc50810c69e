"""Firmware v1.0.4's native MQTT (Home Assistant) interface, §2.9.

- ``<prefix>/<ID>/state``: flat JSON with the HA names, about twice a second,
  always the device's true state (changes from WS or buttons included).
- ``<prefix>/<ID>/availability``: ``online``/``offline`` retained, with the will.
- ``<prefix>/<ID>/command``: JSON with the HA spellings; every key of one
  message is applied in order (verified multi-key commands, [plast]) and number
  writes apply at once (no drying commit). Other spellings are ignored and counted.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

from pbsim.firmware import DRYING_PRESETS, Mode
from pbsim.hostile import json_payloads
from pbsim.journal import Journal, Outcome
from pbsim.mqtt_link import Broker, MqttLink
from pbsim.stock import StockDevice
from pbsim.stock_ws import is_number, whole_degrees

MODE_WORDS = {Mode.AUTO: "auto mode", Mode.ON: "power on", Mode.DRYING: "filament drying"}
DRYING_MODE_WORDS = {1: "pla", 2: "petg", 3: "custom"}
NUMBER_KEYS = {
    "target_temp": "set_temp",
    "filter_temp": "filtertemp",
    "heater_temp": "hotbedtemp",
    "custom_temp": "custom_temp",
    "custom_timer": "custom_timer",
}


class StockMqttProtocol:
    """Builds the v1.0.4 state payload and applies command messages."""

    def __init__(self, device: StockDevice, device_id: str, prefix: str = "panda_breath") -> None:
        self.device = device
        self.device_id = device_id
        base = f"{prefix}/{device_id}"
        self.state_topic = f"{base}/state"
        self.command_topic = f"{base}/command"
        self.availability_topic = f"{base}/availability"

    def state(self) -> dict[str, Any]:
        d = self.device
        s = d.settings
        p = d.printer
        return {
            "chamber_temp": whole_degrees(d.chamber_reading()),
            "work_on": "ON" if s.work_on else "OFF",
            "mode": MODE_WORDS[s.mode],
            "target_temp": s.set_temp,
            "filament_drying_mode": DRYING_MODE_WORDS.get(s.filament_drying_mode, "custom"),
            "filter_temp": s.filtertemp,
            "heater_temp": s.hotbedtemp,
            "custom_temp": s.custom_temp,
            "custom_timer": s.custom_timer,
            "drying_running": "ON" if d.drying_running else "OFF",
            "drying_remaining_min": d.remaining_whole_seconds() // 60,
            "printer_sn": "",
            "printer_bind": "ON" if p.state in (3, 5) else "OFF",
            "printer_ip": p.host,
            "printer_name": p.name,
        }

    def hostile(self, kind: str, size: int, depth: int) -> list[str | bytes]:
        """Hostile payloads (``pbsim.hostile``) shaped like the state message."""
        return json_payloads(kind, self.state(), None, size, depth)

    def handle(self, payload: bytes) -> tuple[Outcome, Any, list[str]]:
        """Apply one command message; returns the outcome, the parsed payload, changed names."""
        outcome = Outcome()
        changed: list[str] = []
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            outcome.reject("malformed JSON")
            return outcome, {"_raw": payload[:200].decode("utf-8", "replace")}, changed
        if not isinstance(data, dict) or not data:
            outcome.reject("not a non-empty JSON object")
            return outcome, data, changed
        d = self.device
        for key, value in data.items():
            if key in NUMBER_KEYS:
                if is_number(value) and math.isfinite(value):
                    d.set_number(NUMBER_KEYS[key], value)
                    outcome.apply(key)
                    changed.append(NUMBER_KEYS[key])
                else:
                    outcome.ignore(key, "not a number")
            elif key == "work_on":
                if value in ("ON", "OFF"):
                    d.set_work_on(value == "ON")
                    outcome.apply(key)
                    changed.append("work_on")
                else:
                    outcome.ignore(key, 'work_on must be "ON" or "OFF" on MQTT')
            elif key == "mode":
                mode = {word: m for m, word in MODE_WORDS.items()}.get(value)
                if mode is None:
                    outcome.ignore(key, f"mode not one of {sorted(MODE_WORDS.values())}")
                else:
                    d.set_mode(mode)
                    outcome.apply(key)
                    changed.append("work_mode")
            elif key == "drying_running":
                if value in ("ON", "OFF"):
                    (d.start_drying if value == "ON" else d.stop_drying)()
                    outcome.apply(key)
                    changed.append("isrunning")
                else:
                    outcome.ignore(key, 'drying_running must be "ON" or "OFF"')
            elif key == "filament_drying_mode":
                preset = {"pla": 1, "petg": 2}.get(value) if isinstance(value, str) else None
                if preset is None or preset not in DRYING_PRESETS:
                    outcome.ignore(key, 'filament_drying_mode must be "pla" or "petg"')
                else:
                    d.select_drying_mode(preset)
                    outcome.apply(key)
                    changed.extend(["filament_drying_mode", "custom_temp", "custom_timer"])
            else:
                outcome.ignore(key, "unknown command key")
        return outcome, data, changed


class StockMqttClient:
    """The v1.0.4 device's MQTT client: its state about twice a second, commands applied.

    ``on_changed`` gets the settings a command changed (the WebSocket side may
    push them); ``is_up`` says whether the device is running.
    """

    def __init__(
        self, protocol: StockMqttProtocol, broker: Broker, journal: Journal,
        interval: float, is_up: Callable[[], bool], on_changed: Callable[[list[str]], None],
    ) -> None:
        self.protocol, self.journal, self.interval, self.is_up = protocol, journal, interval, is_up
        self.on_changed = on_changed
        self.session = MqttLink(
            broker, f"panda_breath_{protocol.device_id}", protocol.availability_topic,
            [protocol.command_topic], on_connected=self.publish_state, on_message=self._message,
        )

    async def state_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.publish_state()

    def publish_state(self) -> None:
        if not self.session.connected or not self.is_up():
            return
        self.session.publish(self.protocol.state_topic, json.dumps(self.protocol.state()))
        self.journal.count("mqtt_states_published")

    def _message(self, topic: str, payload: bytes, retained: bool) -> None:
        if not self.is_up() or topic != self.protocol.command_topic:
            return
        outcome, data, changed = self.protocol.handle(payload)
        self.journal.record("mqtt", data, outcome, source=topic, changed=changed)
        self.on_changed(changed)

    def send_hostile(self, kind: str, size: int, depth: int) -> int:
        """Hostile payloads on the state topic, never retained; returns how many."""
        if not self.session.connected or not self.is_up():
            return 0
        topic = self.protocol.state_topic
        return sum(
            self.session.publish(topic, payload)
            for payload in self.protocol.hostile(kind, size, depth)
        )

    def ha_status(self) -> dict[str, Any]:
        """The snapshot's ``ha`` root: the broker the device is set up for."""
        broker = self.session.broker
        return {"ip": broker.host, "port": broker.port, "user": "",
                "state": 1 if self.session.connected else 0}

    def info(self) -> dict[str, Any]:
        return {
            **self.session.info(self.journal.counters),
            "state_topic": self.protocol.state_topic,
            "command_topic": self.protocol.command_topic,
            "availability_topic": self.protocol.availability_topic,
        }
