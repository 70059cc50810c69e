"""The ESPHome build of the earlier project's YAML (§1.1) as it really behaves over MQTT (§1.3).

Device side (:class:`EsphomeDevice`): a ``bang_bang`` climate ``chamber`` on the
chamber NTC drives the relay switch ``ptc_heater_relay``; it heats while the
reading is below the low set point, goes idle above the high set point and
keeps its action in between; a NaN reading gives action ``off``. Mode and set
points are saved to flash and restored at boot (ESPHome's default); with
nothing saved it boots in HEAT with the YAML's default set points. The relay
and the fan boot OFF (``on_boot``); the fan is its own entity and, as in that
YAML, is not tied to the climate (``--esphome-fan-with-heat`` ties it). An
interval every 3 s turns the relay and the climate OFF when the element is
above 90 °C with the relay on.

Topic side (:class:`EsphomeMqtt`): ESPHome's default topics under
``<prefix>/<component>/<object_id>/...``, states retained, qos 0, birth and
will on ``<prefix>/status``. Messages on topics ESPHome does not subscribe to
(e.g. the earlier project's ``.../target_temperature/set``) are ignored and counted.

A local change (``button`` action: its web UI or Home Assistant) is one climate
call: work_on 0/1 is mode OFF/HEAT, set_temp T the set points T and T + 2.

Optional host watchdog (``--esphome-host-topic``, ``--esphome-command-timeout``),
meant for a later feature: it models firmware that turns the climate OFF when
the host's availability topic says ``offline`` (or carries Moonraker's
``{"server": "offline"}``) or when no command and no heartbeat on
``<prefix>/host/heartbeat`` arrived for N wall-clock seconds, as the project's
``examples/esphome/panda_breath.yaml`` does. It is not in the earlier project's YAML.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from pbsim.device import DeviceCore, Flash
from pbsim.hostile import BINARY, NONFINITE, STRANGE_VALUES
from pbsim.journal import Outcome
from pbsim.thermal import ThermalModel

SENSOR_PERIOD = 5.0  # model seconds between NTC samples (the YAML's update interval)
SAFETY_PERIOD = 3.0  # model seconds between runs of the over-temperature interval
PTC_SAFETY_LIMIT = 90.0
CLIMATE_MODES = ("off", "heat")
#: Where a host publishes its heartbeat (``<prefix>/host/heartbeat``).
HEARTBEAT_SUFFIX = "host/heartbeat"  # what this bang_bang supports
ESPHOME_MODE_WORDS = ("off", "auto", "cool", "heat", "fan_only", "dry", "heat_cool")


@dataclass
class EsphomeOptions:
    default_low: float = 40.0
    default_high: float = 42.0
    fan_with_heat: bool = False
    host_topic: str | None = None
    command_timeout: float | None = None


def target_band(target: float) -> tuple[float, float]:
    """How a single target becomes this build's two set points: low = T, high = T + 2."""
    return float(target), float(target) + 2.0


def fmt(value: float, decimals: int = 1) -> str:
    """ESPHome's ``value_accuracy_to_string``; NaN prints as ``nan``."""
    if math.isnan(value):
        return "nan"
    return f"{value:.{decimals}f}"


class EsphomeDevice(DeviceCore):
    """Climate, relay switch, fan and the two NTC sensors."""

    def __init__(self, thermal: ThermalModel, flash: Flash, options: EsphomeOptions) -> None:
        super().__init__(thermal, flash)
        self.options = options
        self.mode = "heat"
        self.low = options.default_low
        self.high = options.default_high
        self.action = "off"
        self.fan_speed = 100
        self.current = math.nan  # last chamber sample the climate saw
        self.ptc_sample = math.nan
        self._since_sample = 0.0
        self._since_safety = 0.0
        self.safety_trips = 0
        self.boot()

    # -- boot / flash -------------------------------------------------------------------
    def boot(self) -> None:
        self.set_relay(False)  # on_boot: switch.turn_off heater_relay
        self.fan_on = False  # on_boot: fan.turn_off
        self.action = "off"
        saved = self.flash.get("climate")
        if isinstance(saved, dict) and saved.get("mode") in CLIMATE_MODES:
            self.mode = saved["mode"]
            self.low = float(saved.get("low", self.options.default_low))
            self.high = float(saved.get("high", self.options.default_high))
        else:
            self.mode = "heat"  # nothing restored, heat_action only -> HEAT
            self.low = self.options.default_low
            self.high = self.options.default_high
        self._sample()
        self.compute_state()

    def save(self) -> None:
        self.flash.update({"climate": {"mode": self.mode, "low": self.low, "high": self.high}})

    # -- control calls (MQTT commands) -------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.save()
        self.compute_state()
        self.on_event("climate")

    def set_low(self, value: float) -> None:
        self.low = value
        self.save()
        self.compute_state()
        self.on_event("climate")

    def set_high(self, value: float) -> None:
        self.high = value
        self.save()
        self.compute_state()
        self.on_event("climate")

    def local_change(
        self, work_on: bool | None, work_mode: object, set_temp: float | None, outcome: Outcome
    ) -> None:
        """A change made at the device (web UI, Home Assistant): one climate call, one publish.

        ``work_on`` maps to mode HEAT/OFF and ``set_temp`` to :func:`target_band`;
        ESPHome has no work mode, so ``work_mode`` is ignored.
        """
        if work_mode is not None:
            outcome.ignore("work_mode", "ESPHome has no work_mode")
        if set_temp is not None:
            self.low, self.high = target_band(set_temp)
            outcome.apply("set_temp")
        if work_on is not None:
            self.mode = "heat" if work_on else "off"
            outcome.apply("work_on")
        if outcome.applied:
            self.save()
            self.compute_state()
            self.on_event("climate")

    def switch_relay(self, on: bool) -> None:
        """The relay's own switch entity: acts directly, the climate only acts on action changes."""
        self.set_relay(on)
        self._fan_follow()

    def switch_fan(self, on: bool, speed: int | None = None) -> None:
        self.fan_on = on
        if speed is not None:
            self.fan_speed = speed

    # -- bang_bang -----------------------------------------------------------------------------
    def compute_state(self) -> None:
        if self.mode == "off":
            target = "off"
        elif math.isnan(self.current) or math.isnan(self.low) or math.isnan(self.high):
            target = "off"
        elif self.current < self.low:
            target = "heating"
        elif self.current > self.high:
            target = "idle"
        else:
            target = self.action  # in range: keep (hysteresis)
        self._switch_to(target)

    def _switch_to(self, action: str) -> None:
        if action == self.action:
            return
        quiet = {action, self.action} == {"off", "idle"}  # only a visual difference
        self.action = action
        if not quiet:
            self.set_relay(action == "heating")  # heat_action / idle_action
            self._fan_follow()
        self.on_event("climate")

    def _fan_follow(self) -> None:
        if self.options.fan_with_heat:
            self.fan_on = self.relay_on

    # -- time ------------------------------------------------------------------------------------
    def control(self, dt: float) -> None:
        if not self.up:
            self.set_relay(False)
            self.fan_on = False
            return
        self._since_sample += dt
        self._since_safety += dt
        if self._since_sample >= SENSOR_PERIOD:
            self._since_sample = 0.0
            self._sample()
            self.compute_state()
        if self._since_safety >= SAFETY_PERIOD:
            self._since_safety = 0.0
            ptc = self.ptc_sample
            if self.relay_on and not math.isnan(ptc) and ptc > PTC_SAFETY_LIMIT:
                self.safety_trips += 1
                self.set_relay(False)
                self._fan_follow()
                self.set_mode("off")

    def _sample(self) -> None:
        self.current = self.thermal.chamber if self.chamber_valid() else math.nan
        self.ptc_sample = self.thermal.ptc if self.ptc_valid() else math.nan

    def set_fault(self, field: str, code: int, reading: float | None = None) -> None:
        super().set_fault(field, code, reading)
        self._sample()  # an ESPHome NTC reads NaN at once when it fails
        self.compute_state()


class EsphomeMqtt:
    """Topic layout, state publishing and command handling for :class:`EsphomeDevice`."""

    def __init__(self, device: EsphomeDevice, prefix: str = "panda-breath") -> None:
        self.device = device
        self.prefix = prefix
        self.climate = f"{prefix}/climate/chamber"
        self.status_topic = f"{prefix}/status"
        self.last_command_at = time.monotonic()
        self.watchdog_trips = 0
        self._published: dict[str, str] = {}
        self.commands: dict[str, Callable[[str, Outcome], None]] = {
            f"{self.climate}/mode/command": self._mode,
            f"{self.climate}/target_temperature_low/command": partial(
                self._set_point, "target_temperature_low", device.set_low),
            f"{self.climate}/target_temperature_high/command": partial(
                self._set_point, "target_temperature_high", device.set_high),
            f"{prefix}/switch/ptc_heater_relay/command": partial(
                self._switch, "ptc_heater_relay", "status", lambda: device.relay_on,
                device.switch_relay),
            f"{prefix}/fan/fan/command": partial(
                self._switch, "fan", "state", lambda: device.fan_on, device.switch_fan),
            f"{prefix}/fan/fan/speed_level/command": self._fan_speed,
        }

    @property
    def subscriptions(self) -> list[str]:
        topics = [f"{self.prefix}/#"]
        if self.device.options.host_topic:
            topics.append(self.device.options.host_topic)
        return topics

    # -- device -> broker -----------------------------------------------------------------
    def climate_states(self) -> dict[str, str]:
        d = self.device
        states = {
            f"{self.climate}/mode/state": d.mode,
            f"{self.climate}/action/state": d.action,
            f"{self.climate}/target_temperature_low/state": fmt(d.low),
            f"{self.climate}/target_temperature_high/state": fmt(d.high),
        }
        if not math.isnan(d.current):  # not published while NaN
            states[f"{self.climate}/current_temperature/state"] = fmt(d.current)
        return states

    def entity_states(self) -> dict[str, str]:
        d = self.device
        return {
            f"{self.prefix}/switch/ptc_heater_relay/state": "ON" if d.relay_on else "OFF",
            f"{self.prefix}/fan/fan/state": "ON" if d.fan_on else "OFF",
            f"{self.prefix}/fan/fan/speed_level/state": str(d.fan_speed),
        }

    def sensor_states(self) -> dict[str, str]:
        d = self.device
        return {
            f"{self.prefix}/sensor/chamber_temperature/state": fmt(d.current),
            f"{self.prefix}/sensor/ptc_element_temperature/state": fmt(d.ptc_sample),
        }

    def hostile(self, kind: str, size: int, depth: int) -> list[tuple[str, str | bytes]]:
        """Hostile texts (``pbsim.hostile``) for the sensor and climate state topics.

        Topics that carry a number get every kind; mode and action only those
        that are not about numbers.
        """
        numbers = {**self.sensor_states(), **self.climate_states()}
        words = {t: numbers.pop(t) for t in (f"{self.climate}/mode/state",
                                              f"{self.climate}/action/state")}
        out: list[tuple[str, str | bytes]] = []

        def each(topics: dict[str, str], *payloads: str | bytes) -> None:
            out.extend((topic, payload) for payload in payloads for topic in topics)

        if kind == "json":
            each({**numbers, **words}, '{"state":')
        elif kind == "types":
            each(numbers, "hot", "true", "[45]")
            each(words, "42", "null")
        elif kind in ("oversize", "giant"):  # the real value, padded with spaces float() skips
            out.extend((t, p + " " * max(0, size - len(p))) for t, p in numbers.items())
        elif kind == "binary":
            each({**numbers, **words}, BINARY)
        elif kind == "deep":
            each({**numbers, **words}, "[" * depth + "]" * depth)
        elif kind == "huge_number":
            each(numbers, "9" * 400)
        elif kind == "nonfinite":
            each(numbers, *(fmt_nonfinite(v) for v in NONFINITE))
        elif kind == "unicode":  # Unicode digits, RTL, emoji, NUL; an encoded lone surrogate
            each(numbers, *STRANGE_VALUES[:4], "45\x00", b"\xed\xa0\x80")
            each(words, "h\u0435at", "\u202eheating", b"\xed\xa0\x80")
        elif kind == "wrong_root":
            each({**numbers, **words}, '{"state":22.0}', "[22.0]", "null", "")
        else:
            raise ValueError(f"unknown malformed kind {kind!r}")
        return out

    def changed(self, force: bool = False) -> dict[str, str]:
        """Climate/switch/fan topics whose payload changed since the last publish."""
        out = {}
        for topic, payload in {**self.climate_states(), **self.entity_states()}.items():
            if force or self._published.get(topic) != payload:
                out[topic] = payload
        return out

    def mark_published(self, states: dict[str, str]) -> None:
        self._published.update(states)

    def forget_published(self) -> None:
        self._published.clear()

    # -- broker -> device ---------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> tuple[Outcome, str] | None:
        """Apply one message; returns the outcome and the payload text, or None for the
        device's own state topics (not counted)."""
        text = payload.decode("utf-8", "replace")
        outcome = Outcome()
        if topic == self.device.options.host_topic:
            if _host_offline(text) and self.device.mode != "off":
                self.device.set_mode("off")
                self.watchdog_trips += 1
                outcome.apply("host_offline")
            else:
                outcome.ignore("host_status", "host topic not offline")
            return outcome, text
        if topic == f"{self.prefix}/{HEARTBEAT_SUFFIX}" and self.device.options.command_timeout:
            # A firmware with the command-timeout watchdog (the example YAML)
            # also takes the host's heartbeat as a sign of life.
            self.last_command_at = time.monotonic()
            outcome.apply("heartbeat")
            return outcome, text
        handler = self.commands.get(topic)
        if handler is None:
            if topic.endswith("/state") or topic in (self.status_topic, f"{self.prefix}/debug"):
                return None
            outcome.reject("ESPHome does not subscribe to this topic")
            return outcome, text
        self.last_command_at = time.monotonic()
        handler(text, outcome)
        return outcome, text

    def check_watchdog(self) -> bool:
        """Command-timeout watchdog; True when it just turned the climate OFF."""
        timeout = self.device.options.command_timeout
        if not timeout or self.device.mode == "off":
            return False
        if time.monotonic() - self.last_command_at > timeout:
            self.device.set_mode("off")
            self.watchdog_trips += 1
            self.last_command_at = time.monotonic()
            return True
        return False

    def _mode(self, text: str, outcome: Outcome) -> None:
        word = text.strip().lower()
        if word not in ESPHOME_MODE_WORDS:
            outcome.ignore("mode", f"unrecognized mode {text!r}")
        elif word not in CLIMATE_MODES:
            outcome.ignore("mode", f"mode {word} is not supported by this device")
        else:
            self.device.set_mode(word)
            outcome.apply("mode")

    def _number(self, text: str) -> float | None:
        try:
            value = float(text)
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def _set_point(
        self, name: str, setter: Callable[[float], None], text: str, outcome: Outcome
    ) -> None:
        value = self._number(text)
        if value is None:
            outcome.ignore(name, f"can't convert {text!r} to number")
        else:
            setter(value)
            outcome.apply(name)

    @staticmethod
    def _on_off(text: str, current: bool) -> bool | None:
        word = text.strip().upper()
        if word == "TOGGLE":
            return not current
        return {"ON": True, "OFF": False}.get(word)

    def _switch(
        self, name: str, what: str, current: Callable[[], bool],
        switch: Callable[[bool], None], text: str, outcome: Outcome,
    ) -> None:
        """An ON/OFF/TOGGLE command for the relay switch or the fan."""
        on = self._on_off(text, current())
        if on is None:
            outcome.ignore(name, f"unknown {what} payload {text!r}")
        else:
            switch(on)
            outcome.apply(name)

    def _fan_speed(self, text: str, outcome: Outcome) -> None:
        try:
            level = int(text.strip())
        except ValueError:
            outcome.ignore("fan_speed_level", f"can't convert {text!r} to number")
            return
        if not 0 <= level <= 100:
            outcome.ignore("fan_speed_level", "speed level out of range")
            return
        self.device.switch_fan(level > 0, level if level > 0 else None)
        outcome.apply("fan_speed_level")


def fmt_nonfinite(value: float) -> str:
    """ESPHome's texts for the non-finite floats: ``nan``, ``inf``, ``-inf``."""
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _host_offline(text: str) -> bool:
    """``offline``, or Moonraker's ``{"server": "offline"}`` (its will and shutdown message)."""
    text = text.strip()
    if text.lower() == "offline":
        return True
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("server") == "offline"
