"""The stock firmware (v1.0.0 .. v1.0.4) as a simulator personality.

The device (``stock``) speaks its WebSocket protocol (``stock_ws``, each
build's quirks) on ``/ws``: a snapshot on connect, temperature frames every
``frame_interval``, client writes applied as the build applies them. v1.0.4
with ``--mqtt`` also runs its native Home Assistant interface (``stock_mqtt``).
Auto mode follows a modelled bound printer (``set_printer``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

from pbsim import hostile
from pbsim.core import Action
from pbsim.faults import optional_float
from pbsim.firmware import FIRMWARES, Mode, StockFirmware
from pbsim.journal import Outcome
from pbsim.listener_sim import ListenerSimulator
from pbsim.mqtt_link import Broker
from pbsim.options import SimOptions
from pbsim.server import Client
from pbsim.stock import StockDevice, clamp
from pbsim.stock_mqtt import StockMqttClient, StockMqttProtocol
from pbsim.stock_ws import StockWsProtocol, whole_degrees


class StockSimulator(ListenerSimulator):
    """A stock Panda Breath: WebSocket on ``/ws``, v1.0.4's MQTT with ``--mqtt``."""

    ws_enabled = True
    device: StockDevice

    def __init__(self, options: SimOptions) -> None:
        firmware = FIRMWARES[options.firmware]
        assert firmware is not None
        self.firmware: StockFirmware = firmware
        if options.mqtt and not firmware.v104:
            raise ValueError(
                "--mqtt needs --firmware v1.0.4 or esphome (no MQTT before v1.0.4)"
            )
        super().__init__(options)
        self.mqtt: StockMqttClient | None = None
        self.smqtt: StockMqttProtocol | None = None
        if firmware.v104:
            self.smqtt = StockMqttProtocol(
                self.device, options.device_id, options.mqtt_prefix or "panda_breath")
            if options.mqtt:
                self.mqtt = StockMqttClient(
                    self.smqtt, Broker.parse(options.mqtt), self.journal,
                    options.mqtt_state_interval, lambda: self.device.up, self._push_changes,
                )
        self._tick = 0
        options.ws.device_id = options.device_id
        self.ws = StockWsProtocol(
            self.device, options.ws, self.mqtt.ha_status if self.mqtt else None)

    def _make_device(self) -> StockDevice:
        return StockDevice(self.firmware, self.thermal, self.flash, self.options.hysteresis)

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    # -- transports ------------------------------------------------------------------------
    def _loops(self) -> list[Coroutine[Any, Any, None]]:
        loops = [self._paced(self._periodic_frames)]
        if self.mqtt is not None:
            loops.append(self.mqtt.state_loop())
        return loops

    def _connect_transports(self) -> None:
        if self.mqtt is not None and self._loop is not None:
            self.mqtt.session.start(self._loop)

    async def _close_transports(self, power_cut: bool) -> None:
        if self.mqtt is not None:
            await self.mqtt.session.stop(power_cut)

    def _periodic_frames(self) -> None:
        """The temperature frame (and every Nth the printer frame) to every client."""
        if self.silent:
            return
        for frame in self.ws.periodic(self._tick):
            sent = self.server.broadcast(json.dumps(frame))
            self.journal.count("periodic_frames_sent", sent)
        self._tick += 1

    def _report_now(self) -> None:
        if self.device.up:
            for frame in self.ws.periodic(0)[:1]:
                self.server.broadcast(json.dumps(frame))
        if self.mqtt is not None:
            self.mqtt.publish_state()

    # -- WebSocket -------------------------------------------------------------------------
    async def _ws_connect(self, client: Client) -> None:
        if self.silent and self.silence_snapshots:
            return
        await self.server.send(client, json.dumps(self.ws.snapshot()))
        self.journal.count("snapshots_sent")

    def _ws_message(self, client: Client, message: str | bytes) -> None:
        result = self.ws.handle(message)
        self.journal.record(
            "ws", result.payload, result.outcome, source=client.id, changed=result.changed,
            raw_size=len(message),
        )
        self._push_changes(result.changed, exclude=client)
        if result.replies or result.actions:
            self._spawn(self._reply_then_act(client, result.replies, result.actions))

    def _push_changes(self, changed: list[str], exclude: Client | None = None) -> None:
        """Only with ``push_changes``: tell (other) WS clients about a change."""
        if not self.ws.options.push_changes or not changed:
            return
        if self.silent or not self.device.up:
            return
        frame = self.ws.change_frame(changed)
        if frame is not None:
            self.server.broadcast(json.dumps(frame), exclude=exclude)

    async def _reply_then_act(
        self, client: Client, replies: list[dict[str, Any]], actions: list[str]
    ) -> None:
        """Answer ``response`` frames first; a reset/factory reset restarts afterwards."""
        for reply in replies:
            await self.server.send(client, json.dumps(reply))
        if actions:
            await asyncio.sleep(0.05)
        for action in actions:
            self.reboot(wipe=action == "factory_reset")

    def _device_event(self, event: str) -> None:
        if event == "fault" and not self.silent and self.device.up:
            frame = self.ws.fault_frame()
            if frame is not None:
                self.server.broadcast(json.dumps(frame))

    def _send_hostile(self, kind: str, size: int | None, depth: int) -> int:
        oversize = size or hostile.OVERSIZE_BYTES
        ws_size = size or (hostile.GIANT_WS_BYTES if kind == "giant" else oversize)
        mqtt_size = size or (hostile.GIANT_MQTT_BYTES if kind == "giant" else oversize)
        ws = sum(self.server.broadcast(frame) for frame in self.ws.hostile(kind, ws_size, depth))
        mqtt = self.mqtt.send_hostile(kind, mqtt_size, depth) if self.mqtt else 0
        self.journal.count("malformed_frames_sent", ws)
        self.journal.count("malformed_mqtt_sent", mqtt)
        return ws + mqtt

    # -- the world around the device ----------------------------------------------------------
    def _local_change(
        self, work_on: bool | None, work_mode: str | int | None, set_temp: float | None,
        drying: bool | None, outcome: Outcome,
    ) -> None:
        """The front panel (the v1.0.4 state topic shows it at its next publish)."""
        if work_mode is not None:
            self.device.set_mode(self._mode_from(work_mode))
            outcome.apply("work_mode")
        if set_temp is not None:
            self.device.set_number("set_temp", float(set_temp))
            outcome.apply("set_temp")
        if work_on is not None:
            self.device.set_work_on(bool(work_on))
            outcome.apply("work_on")
        if drying is not None:
            (self.device.start_drying if drying else self.device.stop_drying)()
            outcome.apply("isrunning")

    def set_printer(
        self, state: int | None = None, bed_target: float | None = None,
        name: str | None = None, host: str | None = None, port: int | None = None,
    ) -> None:
        """Model the bound printer (Auto mode heats while linked and bed target > hotbedtemp)."""
        p = self.device.printer
        if state is not None:
            p.state = int(state)
        if bed_target is not None:
            p.bed_target = float(bed_target)
        if name is not None:
            p.name = name
        if host is not None:
            p.host = host
        if port is not None:
            p.port = int(port)

    def _actions(self) -> dict[str, Action]:
        return {**super()._actions(), "printer": self._control_printer}

    def _control_printer(self, p: dict[str, Any]) -> None:
        port = p.get("port")
        self.set_printer(
            int(p["state"]) if p.get("state") not in (None, "") else None,
            optional_float(p, "bed_target"), p.get("name"), p.get("host"),
            int(port) if port not in (None, "") else None,
        )

    # -- flash ------------------------------------------------------------------------------
    def _mode_from(self, value: str | int) -> Mode:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            numbers = self.firmware.mode_by_number
            if int(value) not in numbers:
                raise ValueError(f"work_mode {value} is not a mode on this build")
            return numbers[int(value)]
        return Mode(str(value).lower())

    def _write_flash(
        self, work_on: Any = None, set_temp: Any = None, work_mode: Any = None, **_: Any
    ) -> None:
        values: dict[str, Any] = {}
        if work_on is not None:
            values["work_on"] = bool(work_on)
        if set_temp is not None:
            values["set_temp"] = clamp("set_temp", float(set_temp))
        if work_mode is not None:
            values["mode"] = self._mode_from(work_mode).value
        if values:
            self.flash.update(values)

    # -- observable state ------------------------------------------------------------------
    def _state(self, now: float) -> dict[str, Any]:
        d = self.device
        s = d.settings
        return {
            **super()._state(now),
            "fw_version": self.firmware.fw_version,
            "ws_url": self.ws_url,
            "work_on": s.work_on,
            "work_mode": d.mode_number(),
            "mode": s.mode.value,
            "set_temp": s.set_temp,
            "filtertemp": s.filtertemp,
            "hotbedtemp": s.hotbedtemp,
            "custom_temp": s.custom_temp,
            "custom_timer": s.custom_timer,
            "filament_drying_mode": s.filament_drying_mode,
            "printer_type": s.printer_type,
            "language": s.language,
            "hostname": s.hostname,
            "heating_target": d.heating_target(),
            "reported_chamber_temp": whole_degrees(d.chamber_reading()),
            "drying": {
                "running": d.drying_running,
                "remaining_seconds": d.remaining_whole_seconds(),
                "target": s.custom_temp,
                "pending": dict(d.pending_drying),
            },
            "printer": {
                "name": d.printer.name, "host": d.printer.host, "port": d.printer.port,
                "state": d.printer.state, "bed_target": d.printer.bed_target,
            },
            "mqtt": self.mqtt.info() if self.mqtt else None,
        }
