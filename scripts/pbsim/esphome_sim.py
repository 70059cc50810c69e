"""The ESPHome build as a simulator personality: a climate over MQTT, no WebSocket.

The device and its topics are in ``esphome``; this module connects them to
the broker (``--mqtt``), publishes changed states as the device's loop makes
them and the sensors every ``frame_interval`` (5 s by default), and runs the
optional host watchdog. The listener serves only ``/sim/state`` and
``/sim/control``.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from pbsim import hostile
from pbsim.esphome import EsphomeDevice, EsphomeMqtt, target_band
from pbsim.journal import Outcome
from pbsim.listener_sim import ListenerSimulator
from pbsim.mqtt_link import Broker, MqttLink
from pbsim.options import SimOptions


class EsphomeSimulator(ListenerSimulator):
    """The earlier project's ESPHome YAML on the device, as it behaves over MQTT."""

    default_frame_interval = 5.0
    device: EsphomeDevice

    def __init__(self, options: SimOptions) -> None:
        super().__init__(options)
        self.esp = EsphomeMqtt(self.device, options.mqtt_prefix or "panda-breath")
        self.mqtt: MqttLink | None = None
        if options.mqtt:
            self.mqtt = MqttLink(
                Broker.parse(options.mqtt), f"{self.esp.prefix}-{options.device_id.lower()}",
                self.esp.status_topic, self.esp.subscriptions,
                on_connected=self._mqtt_connected, on_message=self._mqtt_message,
            )

    def _make_device(self) -> EsphomeDevice:
        return EsphomeDevice(self.thermal, self.flash, self.options.esphome)

    # -- transports ------------------------------------------------------------------------
    def _loops(self) -> list[Coroutine[Any, Any, None]]:
        # Sensors every frame_interval, with every state again.
        return [self._paced(lambda: self._publish(force=True, sensors=True))]

    def _connect_transports(self) -> None:
        if self.mqtt is not None and self._loop is not None:
            self.mqtt.start(self._loop)

    async def _close_transports(self, power_cut: bool) -> None:
        if self.mqtt is not None:
            await self.mqtt.stop(power_cut)

    def _ticked(self) -> None:
        self.esp.check_watchdog()
        self._publish()

    def _publish(self, force: bool = False, sensors: bool = False) -> None:
        """Changed climate/switch/fan states (all with ``force``), retained; sensors too."""
        mqtt = self.mqtt
        if mqtt is None or not mqtt.connected or not self.device.up:
            return
        states = self.esp.changed(force)
        for topic, payload in states.items():
            mqtt.publish(topic, payload, retain=True)
        self.esp.mark_published(states)
        if sensors:
            for topic, payload in self.esp.sensor_states().items():
                mqtt.publish(topic, payload, retain=True)

    def _mqtt_connected(self) -> None:
        self.esp.forget_published()
        self._publish(force=True, sensors=True)

    def _mqtt_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if not self.device.up:
            return
        handled = self.esp.handle(topic, payload)
        if handled is None:
            return
        outcome, shown = handled
        self.journal.record("mqtt", shown, outcome, source=topic, changed=outcome.applied)
        self._publish()

    def _device_event(self, event: str) -> None:
        if event == "fault":
            self._publish(force=True, sensors=True)
        elif event == "climate":
            self._publish()

    def _report_now(self) -> None:
        self.device.current = self.thermal.chamber
        self._publish(force=True, sensors=True)

    def _send_hostile(self, kind: str, size: int | None, depth: int) -> int:
        mqtt_size = size or (
            hostile.GIANT_MQTT_BYTES if kind == "giant" else hostile.OVERSIZE_BYTES)
        sent = 0
        if self.mqtt is not None and self.mqtt.connected and self.device.up:
            for topic, payload in self.esp.hostile(kind, mqtt_size, depth):
                sent += self.mqtt.publish(topic, payload)
        self.journal.count("malformed_frames_sent", 0)
        self.journal.count("malformed_mqtt_sent", sent)
        return sent

    # -- the world around the device ----------------------------------------------------------
    def _local_change(
        self, work_on: bool | None, work_mode: str | int | None, set_temp: float | None,
        drying: bool | None, outcome: Outcome,
    ) -> None:
        """Its web UI or Home Assistant: one climate call, published at once."""
        self.device.local_change(work_on, work_mode, set_temp, outcome)

    def _write_flash(
        self, work_on: Any = None, set_temp: Any = None, mode: Any = None,
        low: Any = None, high: Any = None, **_: Any,
    ) -> None:
        saved = dict(self.flash.get("climate") or {})
        saved.setdefault("mode", "heat")
        saved.setdefault("low", self.options.esphome.default_low)
        saved.setdefault("high", self.options.esphome.default_high)
        changes: dict[str, Any] = {}
        if work_on is not None:
            changes["mode"] = "heat" if work_on else "off"
        if mode is not None:
            changes["mode"] = str(mode).lower()
        if set_temp is not None:
            changes["low"], changes["high"] = target_band(float(set_temp))
        if low is not None:
            changes["low"] = float(low)
        if high is not None:
            changes["high"] = float(high)
        if changes:
            self.flash.update({"climate": {**saved, **changes}})

    # -- observable state ------------------------------------------------------------------
    def _state(self, now: float) -> dict[str, Any]:
        d = self.device
        mqtt = None
        if self.mqtt is not None:
            mqtt = {**self.mqtt.info(self.journal.counters), "prefix": self.esp.prefix,
                    "status_topic": self.esp.status_topic}
        return {
            **super()._state(now),
            "fw_version": "esphome",
            "ws_url": None,
            "work_on": d.mode == "heat",
            "work_mode": None,  # ESPHome has no work_mode; see "esphome"
            "mode": d.mode,
            "set_temp": int(round(d.low)),
            "heating_target": d.low if d.mode == "heat" else None,
            "esphome": {
                "mode": d.mode, "action": d.action, "low": d.low, "high": d.high,
                "current": None if d.current != d.current else round(d.current, 2),
                "ptc": None if d.ptc_sample != d.ptc_sample else round(d.ptc_sample, 2),
                "relay": d.relay_on, "fan": d.fan_on, "fan_speed": d.fan_speed,
                "safety_trips": d.safety_trips, "watchdog_trips": self.esp.watchdog_trips,
                "prefix": self.esp.prefix,
            },
            "drying": None,
            "mqtt": mqtt,
        }
