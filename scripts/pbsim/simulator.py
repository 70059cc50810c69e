"""``Simulator``: one simulated Panda Breath on loopback, usable in-process or from the CLI.

It owns the device model, the listener, the periodic-frame and MQTT loops and
the fault actions. All state lives on one asyncio loop; paho's thread only
hops messages onto it. Wall-clock cadences (frames, MQTT state) stay wall
clock; the thermal model and the drying timer run ``time_scale`` times faster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any

from pbsim import hostile
from pbsim.device import FAULT_FIELDS, FAULT_READINGS, Flash
from pbsim.esphome import EsphomeDevice, EsphomeMqtt, EsphomeOptions, target_band
from pbsim.faults import (
    FAULT_KINDS,
    ScheduledFault,
    optional_bool,
    optional_float,
)
from pbsim.firmware import DEFAULT_FIRMWARE, FIRMWARES, MODE_NUMBERS, Mode
from pbsim.journal import Journal, Outcome
from pbsim.mqtt_link import Broker, MqttLink
from pbsim.server import Client, SimServer
from pbsim.stock import StockDevice, clamp
from pbsim.stock_mqtt import StockMqttProtocol
from pbsim.stock_ws import StockWsProtocol, WsOptions, whole_degrees
from pbsim.thermal import ThermalModel, ThermalParams

log = logging.getLogger("pbsim")

SENSOR_FIELDS = {
    "ptc": "ptc_sensor_status",
    "warehouse": "warehouse_sensor_status",
    "chamber": "warehouse_sensor_status",
    "heater": "ptc_heater_status",
}

ESPHOME_ALIASES = {
    "esphome_low": "default_low",
    "esphome_high": "default_high",
    "esphome_fan_with_heat": "fan_with_heat",
    "esphome_host_topic": "host_topic",
    "esphome_command_timeout": "command_timeout",
}


@dataclass
class SimOptions:
    """Everything the CLI can set; ``Simulator(**kwargs)`` accepts the same names."""

    host: str = "127.0.0.1"
    port: int = 0
    firmware: str = DEFAULT_FIRMWARE
    time_scale: float = 1.0
    mqtt: str | None = None  # "HOST:PORT" of the broker (v1.0.4 and esphome only)
    frame_interval: float | None = None  # wall s; default 2.0 (stock) / 5.0 (esphome sensors)
    mqtt_state_interval: float = 0.5  # v1.0.4 state topic, ~2 Hz
    ambient: float = 22.0
    hysteresis: float = 1.0  # °C band of the stock relay control
    device_id: str = "ACEBE68FE51C"
    mqtt_prefix: str | None = None  # default "panda_breath" (v1.0.4) / "panda-breath" (esphome)
    state_file: str | None = None
    boot_work_on: bool | None = None
    boot_set_temp: float | None = None
    boot_work_mode: str | None = None  # auto | on | drying (or the build's wire number)
    max_clients: int = 7
    refuse_style: str = "close"
    reboot_down_time: float = 2.0
    ws_ping_interval: float | None = None
    #: Sensor codes as the earlier project's docs have them (1 open, 2 short) instead of
    #: the v1.0.3 UI (1 short, 2 open), §2.14 #3; changes what a faulted sensor reads.
    swap_sensor_codes: bool = False
    tick_interval: float = 0.05
    faults: list[str] = field(default_factory=list)
    ws: WsOptions = field(default_factory=WsOptions)
    esphome: EsphomeOptions = field(default_factory=EsphomeOptions)

    def apply(self, **overrides: Any) -> SimOptions:
        """Set top-level, ``ws`` or ``esphome`` fields by name (flat keyword arguments).

        ESPHome fields also take their CLI spelling: ``esphome_fan_with_heat``,
        ``esphome_host_topic``, ``esphome_command_timeout``, ``esphome_low``/``_high``.
        """
        groups = (self, self.ws, self.esphome)
        for name, value in overrides.items():
            name = ESPHOME_ALIASES.get(name, name)
            for group in groups:
                if name in {f.name for f in fields(group)} and name not in ("ws", "esphome"):
                    setattr(group, name, value)
                    break
            else:
                raise TypeError(f"unknown simulator option {name!r}")
        return self


class Simulator:
    """A simulated Panda Breath. ``await start()``, talk to ``ws_url``, ``await stop()``."""

    def __new__(cls, options: SimOptions | None = None, **overrides: Any) -> Simulator:
        # ``firmware="dragonbreath"`` is an HTTP/SSE device of its own (pbsim.dragonbreath).
        firmware = overrides.get("firmware", options.firmware if options else None)
        if cls is Simulator and firmware == "dragonbreath":
            from pbsim.dragonbreath import DragonBreathSimulator

            return super().__new__(DragonBreathSimulator)
        return super().__new__(cls)

    def __init__(self, options: SimOptions | None = None, **overrides: Any) -> None:
        self.options = (options or SimOptions()).apply(**overrides)
        o = self.options
        if o.firmware not in FIRMWARES:
            raise ValueError(f"unknown firmware {o.firmware!r}; use one of {list(FIRMWARES)}")
        self.firmware = FIRMWARES[o.firmware]
        self.esphome = self.firmware is None
        if o.mqtt and not (self.esphome or self.firmware and self.firmware.v104):
            raise ValueError(
                "--mqtt needs --firmware v1.0.4 or esphome (no MQTT before v1.0.4)"
            )
        self.broker = Broker.parse(o.mqtt) if o.mqtt else None
        self.time_scale = float(o.time_scale)
        self.frame_interval = o.frame_interval or (5.0 if self.esphome else 2.0)
        o.ws.device_id = o.device_id
        self.journal = Journal()
        self.flash = Flash(o.state_file)
        self.thermal = ThermalModel(ThermalParams(ambient=o.ambient))
        self._apply_flash_overrides(
            work_on=o.boot_work_on, set_temp=o.boot_set_temp, work_mode=o.boot_work_mode
        )
        self.device: StockDevice | EsphomeDevice
        if self.firmware is None:
            self.device = EsphomeDevice(self.thermal, self.flash, o.esphome)
            self.esp: EsphomeMqtt | None = EsphomeMqtt(self.device, o.mqtt_prefix or "panda-breath")
            self.ws: StockWsProtocol | None = None
            self.smqtt: StockMqttProtocol | None = None
        else:
            self.device = StockDevice(self.firmware, self.thermal, self.flash, o.hysteresis)
            self.esp = None
            self.ws = StockWsProtocol(self.device, o.ws, self._ha_status)
            self.smqtt = (
                StockMqttProtocol(self.device, o.device_id, o.mqtt_prefix or "panda_breath")
                if self.firmware.v104
                else None
            )
        self.device.on_event = self._device_event
        if o.swap_sensor_codes:
            self.device.readings_by_code = {1: FAULT_READINGS[2], 2: FAULT_READINGS[1]}
        self.server = SimServer(
            o.host,
            o.port,
            self.journal,
            ws_enabled=not self.esphome,
            max_clients=o.max_clients,
            refuse_style=o.refuse_style,
            admission=self._admission,
            on_connect=self._ws_connect,
            on_message=self._ws_message,
            routes={
                "/sim/state": lambda q: (200, self.state()),
                "/sim/control": self._http_control,
                "/": lambda q: (200, self._index()),
            },
            ping_interval=o.ws_ping_interval,
        )
        self.mqtt_link: MqttLink | None = None
        self._init_runtime()

    def _init_runtime(self) -> None:
        """Tasks, boot and fault-injection state every personality starts with."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started_at = self.booted_at = time.monotonic()
        self.boot_count = 1
        self.silent_until = 0.0
        self.silence_snapshots = False
        self.refuse_until = 0.0
        self.down_until = 0.0
        self._rebooting = False
        self._fault_clears: dict[str, asyncio.TimerHandle] = {}
        self.running = False

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> Simulator:
        self._loop = asyncio.get_running_loop()
        await self.server.start()
        self.started_at = self.booted_at = time.monotonic()
        self.running = True
        self._spawn(self._tick_loop())
        self._spawn(self._frame_loop())
        if self.smqtt is not None and self.broker is not None:
            self._spawn(self._mqtt_state_loop())
        for spec in self.options.faults:
            self._spawn(self._scheduled(ScheduledFault.parse(spec)))
        self._start_mqtt()
        log.info(
            "Panda Breath simulator (%s) on %s:%d, time scale %g",
            self.options.firmware, self.options.host, self.port, self.time_scale,
        )
        return self

    async def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        for handle in self._fault_clears.values():
            handle.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        link, self.mqtt_link = self.mqtt_link, None
        if link is not None:
            await link.stop()
        await self.server.stop()
        self.flash.save()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host(self) -> str:
        return self.options.host

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task failed", exc_info=task.exception())

    # -- loops -------------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.options.tick_interval)
            now = time.monotonic()
            self.device.advance((now - last) * self.time_scale)
            last = now
            if self.esp is not None and self.device.up:
                self.esp.check_watchdog()
                self._esphome_publish()

    async def _frame_loop(self) -> None:
        """Periodic temperature frames (stock) or sensor publishes (ESPHome), wall clock."""
        tick = 0
        next_at = time.monotonic() + self.frame_interval
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += self.frame_interval
            if next_at < time.monotonic():
                next_at = time.monotonic() + self.frame_interval
            if not self.device.up:
                continue
            if self.esp is not None:
                self._esphome_publish(force=True, sensors=True)
                continue
            if self.silent or self.ws is None:
                continue
            for frame in self.ws.periodic(tick):
                sent = self.server.broadcast(json.dumps(frame))
                self.journal.count("periodic_frames_sent", sent)
            tick += 1

    async def _mqtt_state_loop(self) -> None:
        assert self.smqtt is not None
        while True:
            await asyncio.sleep(self.options.mqtt_state_interval)
            self._publish_stock_state()

    def _publish_stock_state(self) -> None:
        link = self.mqtt_link
        if link is None or not link.connected or not self.device.up or self.smqtt is None:
            return
        link.publish(self.smqtt.state_topic, json.dumps(self.smqtt.state()))
        self.journal.count("mqtt_states_published")

    async def _scheduled(self, fault: ScheduledFault) -> None:
        await asyncio.sleep(fault.at)
        action, params = fault.action()
        log.info("scheduled fault %s at +%gs", fault.kind, fault.at)
        self.control(action, params)

    # -- WebSocket ------------------------------------------------------------------------------
    def _admission(self) -> str | None:
        if not self.device.up:
            return "device rebooting"
        if time.monotonic() < self.refuse_until:
            return "refusing connections (fault)"
        return None

    async def _ws_connect(self, client: Client) -> None:
        if self.ws is None or (self.silent and self.silence_snapshots):
            return
        await self.server.send(client, json.dumps(self.ws.snapshot()))
        self.journal.count("snapshots_sent")

    def _ws_message(self, client: Client, message: str | bytes) -> None:
        assert self.ws is not None
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
        if self.ws is None or not self.ws.options.push_changes or not changed:
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

    # -- MQTT ----------------------------------------------------------------------------------
    def _start_mqtt(self) -> None:
        if self.broker is None or self._loop is None:
            return
        if self.esp is not None:
            client_id = f"{self.esp.prefix}-{self.options.device_id.lower()}"
            will, subscriptions = self.esp.status_topic, self.esp.subscriptions
        else:
            assert self.smqtt is not None
            client_id = f"panda_breath_{self.options.device_id}"
            will, subscriptions = self.smqtt.availability_topic, [self.smqtt.command_topic]
        self.mqtt_link = MqttLink(
            self._loop, self.broker, client_id, will, subscriptions,
            on_connected=self._mqtt_connected, on_message=self._mqtt_message,
        )
        self.mqtt_link.start()

    def _mqtt_connected(self) -> None:
        if self.esp is not None:
            self.esp.forget_published()
            self._esphome_publish(force=True, sensors=True)
        else:
            self._publish_stock_state()

    def _mqtt_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if not self.device.up:
            return
        if self.esp is not None:
            handled = self.esp.handle(topic, payload)
            if handled is None:
                return
            outcome, shown = handled
            self.journal.record(
                "mqtt", shown, outcome, source=topic, changed=outcome.applied
            )
            self._esphome_publish()
            return
        assert self.smqtt is not None
        if topic != self.smqtt.command_topic:
            return
        outcome, data, changed = self.smqtt.handle(payload)
        self.journal.record("mqtt", data, outcome, source=topic, changed=changed)
        self._push_changes(changed)

    def _esphome_publish(self, force: bool = False, sensors: bool = False) -> None:
        link = self.mqtt_link
        if self.esp is None or link is None or not link.connected or not self.device.up:
            return
        states = self.esp.changed(force)
        for topic, payload in states.items():
            link.publish(topic, payload, retain=True)
        self.esp.mark_published(states)
        if sensors:
            for topic, payload in self.esp.sensor_states().items():
                link.publish(topic, payload, retain=True)

    def _ha_status(self) -> dict[str, Any]:
        link = self.mqtt_link
        return {
            "ip": self.broker.host if self.broker else "",
            "port": self.broker.port if self.broker else 1883,
            "user": "",
            "state": 1 if link is not None and link.connected else 0,
        }

    # -- device events ------------------------------------------------------------------------
    def _device_event(self, event: str) -> None:
        if event == "fault":
            if self.ws is not None and not self.silent and self.device.up:
                frame = self.ws.fault_frame()
                if frame is not None:
                    self.server.broadcast(json.dumps(frame))
            if self.esp is not None:
                self._esphome_publish(force=True, sensors=True)
        elif event == "climate" and self.esp is not None:
            self._esphome_publish()

    # -- faults and controls (Python API) ---------------------------------------------------
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

    def refuse(self, seconds: float) -> None:
        """Refuse new WebSocket connections for ``seconds`` (open ones stay)."""
        self.refuse_until = time.monotonic() + float(seconds)

    def reboot(
        self, down: float | None = None, wipe: bool = False, **flash_overrides: Any
    ) -> bool:
        """Power-cycle: drop everything, stay down ``down`` s, boot from flash (+ overrides).

        Returns False when a reboot is already in progress. With ``work_on`` saved
        true the device resumes heating after the boot with no command at all.
        ``wipe`` erases the flash first (lost settings): the build boots with its
        factory defaults, which for stock means off and for ESPHome means HEAT.
        """
        if self._rebooting or not self.running:
            return False
        if wipe:
            self.flash.clear()
            self.journal.count("flash_wipes")
        self._rebooting = True
        wait = self.options.reboot_down_time if down is None else float(down)
        self.down_until = time.monotonic() + wait
        self.device.up = False
        self.device.set_relay(False)
        self.device.fan_on = False
        self.server.drop_all("abort")
        self._spawn(self._reboot(wait, flash_overrides))
        log.info("rebooting (down %gs)", wait)
        return True

    async def _reboot(self, down: float, overrides: dict[str, Any]) -> None:
        link, self.mqtt_link = self.mqtt_link, None
        if link is not None:
            await link.abort()
        await asyncio.sleep(max(0.0, self.down_until - time.monotonic()))
        self._apply_flash_overrides(**overrides)
        self.device.boot()
        self.device.up = True
        self.boot_count += 1
        self.booted_at = time.monotonic()
        self._rebooting = False
        self._start_mqtt()
        log.info("booted (boot #%d)", self.boot_count)

    async def wait_up(self, timeout: float = 10.0) -> None:
        """Wait until a reboot in progress has finished."""
        deadline = time.monotonic() + timeout
        while self._rebooting or not self.device.up:
            if time.monotonic() > deadline:
                raise TimeoutError("simulator did not come back up")
            await asyncio.sleep(0.02)

    def send_malformed(
        self, kind: str = "json", count: int = 1, size: int | None = None,
        depth: int = hostile.DEFAULT_DEPTH,
    ) -> int:
        """Send hostile payloads (``pbsim.hostile`` kinds, or ``all``); returns how many.

        Every WS client gets the frames; with MQTT they are also published, never
        retained, on the device's own state topics. The device's state is untouched,
        so its next regular frame or state is normal again.
        """
        sent = 0
        for _ in range(int(count)):
            for one in hostile.kinds(kind):
                n = self._send_hostile(one, size, int(depth))
                self.journal.count(f"hostile_{one}", n)
                sent += n
        self.journal.count("hostile_count", sent)
        log.info("sent %d hostile payload(s) of kind %s", sent, kind)
        return sent

    def _send_hostile(self, kind: str, size: int | None, depth: int) -> int:
        oversize = size or hostile.OVERSIZE_BYTES
        ws_size = size or (hostile.GIANT_WS_BYTES if kind == "giant" else oversize)
        mqtt_size = size or (hostile.GIANT_MQTT_BYTES if kind == "giant" else oversize)
        ws = mqtt = 0
        if self.ws is not None:
            for frame in self.ws.hostile(kind, ws_size, depth):
                ws += self.server.broadcast(frame)
        link = self.mqtt_link
        if link is not None and link.connected and self.device.up:
            if self.smqtt is not None:
                topic = self.smqtt.state_topic
                for payload in self.smqtt.hostile(kind, mqtt_size, depth):
                    mqtt += link.publish(topic, payload)
            if self.esp is not None:
                for topic, payload in self.esp.hostile(kind, mqtt_size, depth):
                    mqtt += link.publish(topic, payload)
        self.journal.count("malformed_frames_sent", ws)
        self.journal.count("malformed_mqtt_sent", mqtt)
        return ws + mqtt

    def occupy(self, clients: int | None = None, seconds: float = 10.0) -> int:
        """Phantom clients hold ``clients`` WebSocket slots (default: all) for ``seconds``.

        New connections are refused as when the device is full; open ones stay.
        """
        if self.ws is None:
            raise ValueError("ESPHome has no WebSocket server to fill")
        count = self.options.max_clients if clients is None else int(clients)
        self.server.occupy(count, float(seconds))
        self.journal.count("occupied")
        log.info("%d phantom client(s) for %gs", count, seconds)
        return count

    def sensor_fault(
        self, sensor: str, code: int = 1, reading: float | None = None,
        seconds: float | None = None,
    ) -> str:
        """Set ``ptc``/``warehouse`` sensor status (1 short, 2 open) or ``heater``; 0 clears."""
        name = SENSOR_FIELDS.get(sensor, sensor)
        if name not in FAULT_FIELDS:
            raise ValueError(f"unknown sensor {sensor!r}; use ptc, warehouse or heater")
        pending = self._fault_clears.pop(name, None)
        if pending is not None:
            pending.cancel()
        self.device.set_fault(name, int(code), reading)
        if seconds and code and self._loop is not None:
            self._fault_clears[name] = self._loop.call_later(
                float(seconds), self.device.set_fault, name, 0
            )
        return name

    def clear_faults(self) -> None:
        for name in FAULT_FIELDS:
            if self.device.faults[name]:
                self.sensor_fault(name, 0)

    def press_button(
        self,
        work_on: bool | None = None,
        work_mode: str | int | None = None,
        set_temp: float | None = None,
        drying: bool | None = None,
    ) -> list[str]:
        """A change made at the device: saved to flash, never pushed to WS clients.

        ``drying`` is the front panel's Filament Drying button (stock only):
        true starts the saved custom cycle, false stops it.

        Stock: the front panel (the v1.0.4 state topic shows it at its next
        publish). ESPHome: its web UI or Home Assistant, published at once.
        """
        outcome = Outcome()
        if isinstance(self.device, EsphomeDevice):
            self.device.local_change(work_on, work_mode, set_temp, outcome)
        else:
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
        payload = {"work_on": work_on, "work_mode": work_mode, "set_temp": set_temp,
                   "drying": drying}
        self.journal.record(
            "button", {k: v for k, v in payload.items() if v is not None}, outcome,
            changed=list(outcome.applied),
        )
        self._push_changes(list(outcome.applied))
        return outcome.applied

    def set_temperatures(
        self, chamber: float | None = None, ptc: float | None = None, ambient: float | None = None
    ) -> None:
        """Force model temperatures (e.g. start with a hot chamber)."""
        self.thermal.set_temperatures(chamber, ptc, ambient)

    def emit_temperature(self, value: float) -> float:
        """Set the chamber to ``value`` and report it at once; returns the wall time sent.

        For latency benchmarks: the temperature frame (stock WS), the state
        message (v1.0.4 MQTT) or the sensor states (ESPHome) go out immediately
        instead of at the next periodic tick.
        """
        self.thermal.set_temperatures(chamber=float(value))
        if self.esp is not None:
            self.esp.device.current = float(value)
        sent_at = time.time()
        if self.ws is not None and self.device.up:
            for frame in self.ws.periodic(0)[:1]:
                self.server.broadcast(json.dumps(frame))
        self._publish_stock_state()
        self._esphome_publish(force=True, sensors=True)
        return sent_at

    def set_time_scale(self, value: float) -> None:
        if value <= 0:
            raise ValueError("time scale must be positive")
        self.time_scale = float(value)

    def set_printer(
        self, state: int | None = None, bed_target: float | None = None,
        name: str | None = None, host: str | None = None, port: int | None = None,
    ) -> None:
        """Model the bound printer (Auto mode heats while linked and bed target > hotbedtemp)."""
        if not isinstance(self.device, StockDevice):
            raise ValueError("the printer link exists on the stock firmware only")
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

    # -- control dispatch (HTTP and CLI schedules) -------------------------------------------------
    def control(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a named control action; raises ValueError/KeyError on bad input."""
        p = dict(params or {})
        if action in FAULT_KINDS and FAULT_KINDS[action][0] != action:
            action, fixed = FAULT_KINDS[action]
            p = {**fixed, **p}
        result: dict[str, Any] = {"ok": True, "action": action}
        if action == "drop":
            result["dropped"] = self.drop_connections(p.get("how", "abort"))
        elif action == "silence":
            self.silence(float(p.get("seconds", 20)), bool(optional_bool(p, "snapshots")))
        elif action == "refuse":
            self.refuse(float(p.get("seconds", 10)))
        elif action == "reboot":
            overrides = {
                key: p[key] for key in ("work_on", "set_temp", "work_mode", "mode", "low", "high")
                if key in p
            }
            if "work_on" in overrides:
                overrides["work_on"] = optional_bool(p, "work_on")
            result["started"] = self.reboot(
                optional_float(p, "down"), bool(optional_bool(p, "wipe")), **overrides
            )
        elif action == "malformed":
            result.update(self._control_malformed(p))
        elif action == "occupy":
            clients = optional_float(p, "clients")
            result["clients"] = self.occupy(
                None if clients is None else int(clients), float(p.get("seconds", 10))
            )
        elif action == "sensor_fault":
            result["field"] = self.sensor_fault(
                p.get("sensor", "ptc"), int(p.get("code", 1)), optional_float(p, "reading"),
                optional_float(p, "seconds"),
            )
        elif action == "clear_faults":
            self.clear_faults()
        elif action == "button":
            mode = p.get("work_mode")
            result["applied"] = self.press_button(
                optional_bool(p, "work_on"),
                int(mode) if isinstance(mode, str) and mode.isdigit() else mode,
                optional_float(p, "set_temp"),
                optional_bool(p, "drying"),
            )
        elif action in ("set_temps", "thermal"):
            self.set_temperatures(
                optional_float(p, "chamber"), optional_float(p, "ptc"), optional_float(p, "ambient")
            )
        elif action == "emit_temperature":
            result["sent_at"] = self.emit_temperature(float(p["value"]))
        elif action == "time_scale":
            self.set_time_scale(float(p["value"]))
        elif action == "printer":
            port = p.get("port")
            self.set_printer(
                int(p["state"]) if p.get("state") not in (None, "") else None,
                optional_float(p, "bed_target"), p.get("name"), p.get("host"),
                int(port) if port not in (None, "") else None,
            )
        elif action == "state":
            result["state"] = self.state()
        else:
            raise KeyError(f"unknown action {action!r}")
        return result

    def _control_malformed(self, p: dict[str, Any]) -> dict[str, Any]:
        """The ``malformed`` action's parameters, for every personality's send_malformed."""
        size = optional_float(p, "size")
        sent = self.send_malformed(
            p.get("kind", "json"), int(p.get("count", 1)),
            None if size is None else int(size),
            int(p.get("depth", hostile.DEFAULT_DEPTH)),
        )
        return {"sent": sent, "hostile_count": self.journal.counters["hostile_count"]}

    def _http_control(self, query: dict[str, str]) -> tuple[int, Any]:
        action = query.pop("action", "")
        try:
            return 200, self.control(action, query)
        except (KeyError, ValueError, TypeError) as exc:
            return 400, {"ok": False, "action": action, "error": str(exc).strip("'\"")}

    # -- flash ------------------------------------------------------------------------------------
    def _mode_from(self, value: str | int) -> Mode:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            numbers = self.firmware.mode_by_number if self.firmware else {
                n: m for m, n in MODE_NUMBERS.items()
            }
            if int(value) not in numbers:
                raise ValueError(f"work_mode {value} is not a mode on this build")
            return numbers[int(value)]
        return Mode(str(value).lower())

    def _apply_flash_overrides(
        self,
        work_on: Any = None,
        set_temp: Any = None,
        work_mode: Any = None,
        mode: Any = None,
        low: Any = None,
        high: Any = None,
    ) -> None:
        """Write saved settings as if they had been in NVS before the (re)boot."""
        values: dict[str, Any] = {}
        if self.firmware is None:
            saved = dict(self.flash.get("climate") or {})
            defaults = self.options.esphome
            saved.setdefault("mode", "heat")
            saved.setdefault("low", defaults.default_low)
            saved.setdefault("high", defaults.default_high)
            touched = False
            if work_on is not None:
                saved["mode"] = "heat" if work_on else "off"
                touched = True
            if mode is not None:
                saved["mode"] = str(mode).lower()
                touched = True
            if set_temp is not None:
                saved["low"], saved["high"] = target_band(float(set_temp))
                touched = True
            if low is not None:
                saved["low"] = float(low)
                touched = True
            if high is not None:
                saved["high"] = float(high)
                touched = True
            if touched:
                values["climate"] = saved
        else:
            if work_on is not None:
                values["work_on"] = bool(work_on)
            if set_temp is not None:
                values["set_temp"] = clamp("set_temp", float(set_temp))
            if work_mode is not None:
                values["mode"] = self._mode_from(work_mode).value
        if values:
            self.flash.update(values)

    # -- observable state -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The true device state plus counters and recent frames (``GET /sim/state``)."""
        now = time.monotonic()
        d = self.device
        c = self.journal.counters
        base: dict[str, Any] = {
            "firmware": self.options.firmware,
            "fw_version": self.firmware.fw_version if self.firmware else "esphome",
            "port": self.port,
            "ws_url": None if self.esphome else self.ws_url,
            "time": time.time(),
            "time_scale": self.time_scale,
            "frame_interval": self.frame_interval,
            "up": d.up,
            "rebooting": self._rebooting,
            "boot_count": self.boot_count,
            "uptime": round(now - self.booted_at, 3) if d.up else 0.0,
            "sim_uptime": round(now - self.started_at, 3),
            "model_time": round(d.model_time, 3),
            "chamber_temp": round(self.thermal.chamber, 3),
            "ptc_temp": round(self.thermal.ptc, 3),
            "ambient_temp": round(self.thermal.params.ambient, 3),
            "heater_on": d.relay_on,
            "fan_on": d.fan_on,
            "relay_switches": d.relay_switches,
            "sensor_faults": dict(d.faults),
            "fault_active": d.any_fault(),
            "clients": len(self.server.clients),
            "connections_total": c["connections_total"],
            "connections_refused": c["connections_refused"],
            "frames_received": c["frames_received"],
            "frames_applied": c["frames_applied"],
            "frames_ignored": c["frames_ignored"],
            "keys_applied": c["keys_applied"],
            "keys_ignored": c["keys_ignored"],
            "frames_sent": c["frames_sent"],
            "snapshots_sent": c["snapshots_sent"],
            "periodic_frames_sent": c["periodic_frames_sent"],
            "hostile_count": c["hostile_count"],
            "silent": self.silent,
            "silent_remaining": round(max(0.0, self.silent_until - now), 3),
            "refusing": now < self.refuse_until or not d.up,
            "refuse_remaining": round(max(0.0, self.refuse_until - now), 3),
            "occupied": self.server.phantoms,
            "occupied_remaining": round(self.server.phantoms_remaining, 3),
            "counters": dict(c),
            "last_applied_at": dict(self.journal.last_applied_at),
            "recent_frames": list(self.journal.recent),
            "flash": dict(self.flash.data),
            "mqtt": self._mqtt_state(),
        }
        if isinstance(d, StockDevice):
            s = d.settings
            target = d.heating_target()
            base.update(
                {
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
                    "heating_target": target,
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
                }
            )
        else:
            esp = self.esp
            assert esp is not None
            base.update(
                {
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
                        "safety_trips": d.safety_trips, "watchdog_trips": esp.watchdog_trips,
                        "prefix": esp.prefix,
                    },
                    "drying": None,
                }
            )
        return base

    def _mqtt_state(self) -> dict[str, Any] | None:
        if self.broker is None:
            return None
        link = self.mqtt_link
        c = self.journal.counters
        info: dict[str, Any] = {
            "broker": str(self.broker),
            "connected": bool(link and link.connected),
            "connects": link.connects if link else 0,
            "published": link.published if link else 0,
            "commands_received": c["mqtt_commands_received"],
            "commands_applied": c["mqtt_commands_applied"],
            "commands_ignored": c["mqtt_commands_ignored"],
            "states_published": c["mqtt_states_published"],
        }
        if self.smqtt is not None:
            info.update(
                state_topic=self.smqtt.state_topic,
                command_topic=self.smqtt.command_topic,
                availability_topic=self.smqtt.availability_topic,
            )
        if self.esp is not None:
            info.update(prefix=self.esp.prefix, status_topic=self.esp.status_topic)
        return info

    def _index(self) -> dict[str, Any]:
        return {
            "device": "Panda Breath (simulated)",
            "firmware": self.options.firmware,
            "endpoints": ["/ws", "/sim/state", "/sim/control?action=NAME&param=value"],
        }

