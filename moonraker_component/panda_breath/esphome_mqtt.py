"""The MQTT topics of a Panda Breath running ESPHome, without I/O.

Facts this encodes (device-protocol reference, section 1.3):

* Every entity has default topics ``<prefix>/<component>/<object_id>/...``;
  states are retained, and ``<prefix>/status`` carries the birth ``online``
  and the will ``offline`` (retained too).
* A ``bang_bang`` climate is always two-point: it listens on
  ``.../target_temperature_low/command`` and ``.../target_temperature_high/command``
  and ``.../mode/command`` (``HEAT``/``OFF``), never on ``.../target_temperature/set``
  or ``.../mode/set``.  It heats below the low set point and stops above the
  high one, so the Klipper target becomes a band around it.
* After every change the climate publishes mode, current temperature, low,
  high and action, in that order; a sensor publishes ``nan`` when it has no
  valid reading (``None`` with ``publish_nan_as_none``).
"""

from __future__ import annotations

from .model import (
    MODE_AUTO,
    MODE_OFF,
    MODE_ON,
    MODE_STANDBY,
    DeviceReport,
    FrameError,
    plausible_temperature,
)
from .mqtt_common import MqttProtocol, Publish, parse_availability, parse_decimal

DEFAULT_PREFIX = "panda-breath"
DEFAULT_CLIMATE_ID = "chamber"
DEFAULT_CHAMBER_SENSOR_ID = "chamber_temperature"
DEFAULT_PTC_SENSOR_ID = "ptc_element_temperature"
DEFAULT_BAND = 1.0
#: Where the bridge publishes its target while it wants heat (the example
#: firmware's host watchdog listens here).
HEARTBEAT_SUFFIX = "host/heartbeat"

# ESPHome's climate mode words -> (may heat, neutral mode).
_MODES: dict[str, tuple[bool, str]] = {
    "off": (False, MODE_OFF),
    "heat": (True, MODE_ON),
    "auto": (True, MODE_AUTO),
    "heat_cool": (True, MODE_AUTO),
    "cool": (False, MODE_STANDBY),
    "fan_only": (False, MODE_STANDBY),
    "dry": (False, MODE_STANDBY),
}
_ACTIONS = {
    "heating": True,
    "off": False,
    "idle": False,
    "cooling": False,
    "drying": False,
    "fan": False,
}

NO_READING = "no reading (nan)"
#: ESPHome publishes set points rounded to its 0.1 °C step.
SET_POINT_TOLERANCE = 0.06


class EsphomeMqttProtocol(MqttProtocol):
    """Topic layout and decode state for one ESPHome device."""

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        climate_id: str = DEFAULT_CLIMATE_ID,
        chamber_sensor_id: str = DEFAULT_CHAMBER_SENSOR_ID,
        ptc_sensor_id: str = DEFAULT_PTC_SENSOR_ID,
        band: float = DEFAULT_BAND,
        max_target: float = 60.0,
    ) -> None:
        if band <= 0:
            raise ValueError("band must be positive")
        self.prefix = prefix
        self.base = prefix
        self.band = band
        self.max_target = max_target
        climate = f"{prefix}/climate/{climate_id}"
        self.availability_topic = f"{prefix}/status"
        self.heartbeat_topic: str = f"{prefix}/{HEARTBEAT_SUFFIX}"
        self.mode_state_topic = f"{climate}/mode/state"
        self.action_state_topic = f"{climate}/action/state"
        self.low_state_topic = f"{climate}/target_temperature_low/state"
        self.high_state_topic = f"{climate}/target_temperature_high/state"
        self.mode_command_topic = f"{climate}/mode/command"
        self.low_command_topic = f"{climate}/target_temperature_low/command"
        self.high_command_topic = f"{climate}/target_temperature_high/command"
        #: Empty chamber_sensor_id: read the climate's own current temperature.
        self.chamber_topic = (
            f"{prefix}/sensor/{chamber_sensor_id}/state"
            if chamber_sensor_id
            else f"{climate}/current_temperature/state"
        )
        self.ptc_topic = f"{prefix}/sensor/{ptc_sensor_id}/state" if ptc_sensor_id else None
        # The last heating command, to read the device's set points back as
        # that target even where the band was shifted below the ceiling.
        self._sent: tuple[float, float, float] | None = None
        self.reset()

    def reset(self) -> None:
        self._low: float | None = None
        self._faults: dict[str, str] = {}

    def topics(self) -> list[str]:
        topics = [
            self.availability_topic,
            self.mode_state_topic,
            self.action_state_topic,
            self.low_state_topic,
            self.high_state_topic,
            self.chamber_topic,
        ]
        if self.ptc_topic is not None:
            topics.append(self.ptc_topic)
        return topics

    # Device -> bridge --------------------------------------------------------

    def _decode(self, topic: str, text: str) -> DeviceReport:
        report = DeviceReport()
        if topic == self.availability_topic:
            report.online = parse_availability(text)
        elif topic == self.chamber_topic:
            self._decode_sensor(text, "chamber_sensor", report, chamber=True)
        elif topic == self.ptc_topic:
            self._decode_sensor(text, "ptc_sensor", report, chamber=False)
        elif topic == self.mode_state_topic:
            mode = _MODES.get(text.lower())
            if mode is None:
                raise FrameError("unknown climate mode")
            report.work_on, report.mode = mode
        elif topic == self.action_state_topic:
            action = _ACTIONS.get(text.lower())
            if action is None:
                raise FrameError("unknown climate action")
            report.heater_on = action
        elif topic == self.low_state_topic:
            # Published just before the high set point; reported with it.
            self._low = self._set_point(text)
        elif topic == self.high_state_topic:
            high = self._set_point(text)
            if high is not None and self._low is not None:
                report.device_target = self._target_of(self._low, high)
        else:
            raise FrameError("message on a topic this device does not use")
        return report

    def _decode_sensor(
        self, text: str, fault_key: str, report: DeviceReport, chamber: bool
    ) -> None:
        value = parse_decimal(text)
        if value is None:
            self._faults[fault_key] = NO_READING
        elif plausible_temperature(value) is None:
            self._faults[fault_key] = "implausible reading (%.0f °C)" % value
        else:
            self._faults.pop(fault_key, None)
            if chamber:
                report.chamber_temp = value
            else:
                report.ptc_temp = value
        # Always the whole picture: one sensor's good reading must not clear
        # the other one's fault.
        report.faults = dict(self._faults)

    def _target_of(self, low: float, high: float) -> float:
        """The target these set points stand for: ours if they are the band we
        sent (ESPHome prints them to 0.1 °C), else the band's midpoint."""
        if self._sent is not None:
            target, sent_low, sent_high = self._sent
            if abs(low - sent_low) <= SET_POINT_TOLERANCE and (
                abs(high - sent_high) <= SET_POINT_TOLERANCE
            ):
                return target
        return round((low + high) / 2.0, 2)

    @staticmethod
    def _set_point(text: str) -> float | None:
        value = parse_decimal(text)
        if value is None or plausible_temperature(value) is None:
            return None
        return value

    # Bridge -> device --------------------------------------------------------

    def band_for(self, target: float) -> tuple[float, float]:
        """The (low, high) set points around ``target``.

        The band is shifted down rather than cut when it would pass the
        device's ceiling, so the chamber never goes above ``max_target`` and
        the band keeps its width (a narrower band means more relay cycles).
        """
        half = self.band / 2.0
        high = min(target + half, self.max_target)
        low = max(high - self.band, 0.0)
        return round(low, 2), round(high, 2)

    def encode(self, target: float) -> list[Publish]:
        """What puts the climate at ``target`` (0 = off), in order; nothing retained."""
        if target <= 0.0:
            return [Publish(self.mode_command_topic, "OFF")]
        low, high = self.band_for(target)
        self._sent = (target, low, high)
        return [
            # The heartbeat goes first so that a host watchdog on the device
            # never sees a HEAT command without a fresh heartbeat.
            self.heartbeat(target),
            Publish(self.low_command_topic, _number(low)),
            Publish(self.high_command_topic, _number(high)),
            Publish(self.mode_command_topic, "HEAT"),
        ]

    def heartbeat(self, target: float) -> Publish:
        return Publish(self.heartbeat_topic, _number(round(target, 2)))


def _number(value: float) -> str:
    """Shortest decimal text: 44.75, 45, 59.5."""
    text = "%.2f" % value
    return text.rstrip("0").rstrip(".") if "." in text else text
