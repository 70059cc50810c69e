"""Reads one ``[panda_breath]`` / ``[panda_breath NAME]`` section into a ``DeviceConfig``.

Every option is read even after an error, so that a typo elsewhere does not
also produce Moonraker's "unparsed option" noise, and every error names the
section and the option.  A section with errors is not started: guessing at
the settings of a mains heater is worse than leaving it off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import dragonbreath
from .link import SILENCE_TIMEOUT_S
from .model import (
    DEVICE_MAX_TARGET,
    DRYING_HOURS_RANGE,
    DRYING_TEMP_RANGE,
    PATCHED_MAX_TARGET,
)
from .mqtt_common import is_topic_level, is_topic_prefix

FIRMWARES = ("stock", "stock_mqtt", "esphome", "dragonbreath")
#: Firmwares reached over the network at ``host`` (WebSocket or HTTP).
HOST_FIRMWARES = ("stock", "dragonbreath")
#: Klipper objects that report a chamber temperature ``chamber_sensor`` may name.
CHAMBER_SENSOR_KINDS = ("temperature_sensor", "temperature_fan", "heater_generic")
#: Firmwares reached through Moonraker's [mqtt] broker connection.
MQTT_FIRMWARES = ("stock_mqtt", "esphome")
#: ``topic_prefix`` defaults to what each firmware uses out of the box: the
#: ESPHome node name of the example YAML, the stock firmware's own prefix.
DEFAULT_TOPIC_PREFIXES = {"esphome": "panda-breath", "stock_mqtt": "panda_breath"}


@dataclass
class DeviceConfig:
    section: str
    name: str
    firmware: str = "stock"
    host: str | None = None
    port: int = 80
    heater: str = "chamber"
    device_max_temp: float = DEVICE_MAX_TARGET
    connect_timeout: float = 5.0
    silence_timeout: float = SILENCE_TIMEOUT_S
    reconnect_max_delay: float = 5.0
    reassert_interval: float = 20.0
    # DragonBreath.
    token: str = "web"
    lease_timeout: float | None = None
    offline_warning_delay: float = 30.0
    drying_temperature: int = 55
    temperature_offset: float = 0.0
    chamber_sensor: str | None = None
    regulation_interval: float = 60.0
    drying_hours: int = 6
    # MQTT firmwares (stock_mqtt, esphome).
    topic_prefix: str | None = None
    device_id: str | None = None
    climate_id: str = "chamber"
    chamber_sensor_id: str = "chamber_temperature"
    ptc_sensor_id: str = "ptc_element_temperature"
    band: float = 1.0
    heartbeat_interval: float = 10.0
    errors: list[str] = field(default_factory=list)


class _SectionReader:
    """Wraps a Moonraker ConfigHelper so that each bad option becomes one message.

    Ranges are checked here rather than by Moonraker's getters: theirs leave
    the option "unparsed" (a second, confusing warning) and their maximum
    message prints the minimum.
    """

    def __init__(self, config: Any, errors: list[str]) -> None:
        self.config = config
        self.errors = errors
        self.section = config.get_name()

    def read(
        self, getter: Callable[..., Any], option: str, default: Any,
        minval: float | None = None, maxval: float | None = None,
    ) -> Any:
        try:
            value = getter(option, default)
        except Exception as exc:  # noqa: BLE001 - ConfigError and parse errors alike
            self.errors.append(f"option '{option}': {_clean(exc)}")
            return default
        if value is None:
            return value
        if minval is not None and value < minval:
            self.errors.append(f"option '{option}': {value} is below the minimum {minval:g}")
            return default
        if maxval is not None and value > maxval:
            self.errors.append(f"option '{option}': {value} is above the maximum {maxval:g}")
            return default
        return value


def _clean(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def drying_ranges(
    firmware: str, device_max_temp: float
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The whole °C and hours a firmware's drying cycle takes (°C within ``device_max_temp``)."""
    if firmware == "dragonbreath":
        temps, hours = dragonbreath.DRYING_TEMP_RANGE, dragonbreath.DRYING_HOURS_RANGE
    else:
        temps, hours = DRYING_TEMP_RANGE, DRYING_HOURS_RANGE
    return (temps[0], min(temps[1], int(device_max_temp))), hours


def read_device_config(config: Any) -> DeviceConfig:
    section = config.get_name()
    parts = section.split(maxsplit=1)
    cfg = DeviceConfig(section=section, name=parts[1] if len(parts) > 1 else "panda_breath")
    reader = _SectionReader(config, cfg.errors)
    for read in _OPTIONS:
        read(config, reader, cfg)
    return cfg


_Read = Callable[[Any, _SectionReader, DeviceConfig], None]


def _number(option: str, getter: str, minval: float, maxval: float) -> _Read:
    """A number option of ``DeviceConfig`` (its default there), within [minval, maxval]."""
    def read(config: Any, reader: _SectionReader, cfg: DeviceConfig) -> None:
        default = getattr(cfg, option)
        setattr(cfg, option, reader.read(getattr(config, getter), option, default,
                                         minval=minval, maxval=maxval))
    return read


def _read_firmware(config: Any, reader: _SectionReader, cfg: DeviceConfig) -> None:
    firmware = reader.read(config.get, "firmware", "stock")
    if firmware is None:
        return
    firmware = str(firmware).strip().lower()
    if firmware in FIRMWARES:
        cfg.firmware = firmware
    else:
        cfg.errors.append(f"option 'firmware': '{firmware}' is not one of {', '.join(FIRMWARES)}")


def _read_host(config: Any, reader: _SectionReader, cfg: DeviceConfig) -> None:
    cfg.host = reader.read(config.get, "host", None)
    if cfg.firmware in HOST_FIRMWARES and not cfg.host:
        cfg.errors.append(
            f"option 'host' is required for firmware '{cfg.firmware}' (e.g. PandaBreath.local)"
        )


def _read_heater(config: Any, reader: _SectionReader, cfg: DeviceConfig) -> None:
    default = "chamber" if len(cfg.section.split()) == 1 else cfg.name
    heater = reader.read(config.get, "heater", default)
    if heater is not None and (not str(heater).strip() or len(str(heater).split()) != 1):
        cfg.errors.append(f"option 'heater': '{heater}' must be one word (the NAME in "
                          "[heater_panda_breath NAME])")
    else:
        cfg.heater = str(heater).strip()


def _read_chamber_sensor(config: Any, reader: _SectionReader, cfg: DeviceConfig) -> None:
    """The chamber reading: the device's own, shifted by temperature_offset,
    or a Klipper sensor the set point is regulated to."""
    sensor = reader.read(config.get, "chamber_sensor", None)
    if sensor is None or not str(sensor).strip():
        return
    sensor = " ".join(str(sensor).split())
    if sensor.split()[0] not in CHAMBER_SENSOR_KINDS or len(sensor.split()) != 2:
        cfg.errors.append(
            f"option 'chamber_sensor': '{sensor}' is not a Klipper temperature object; use "
            "its full name, e.g. 'temperature_sensor chamber'"
        )
    elif cfg.temperature_offset:
        cfg.errors.append(
            "option 'temperature_offset': not used together with 'chamber_sensor' (the "
            "printer's sensor is the reading then); remove one of them"
        )
    else:
        cfg.chamber_sensor = sensor


def _read_drying(config: Any, reader: _SectionReader, cfg: DeviceConfig) -> None:
    """The power device "Panda Breath drying": the device's own drying cycle."""
    (low_c, high_c), (low_h, high_h) = drying_ranges(cfg.firmware, cfg.device_max_temp)
    cfg.drying_temperature = reader.read(
        config.getint, "drying_temperature", 55, minval=low_c, maxval=high_c)
    cfg.drying_hours = reader.read(config.getint, "drying_hours", 6, minval=low_h, maxval=high_h)


def _read_token(config: Any, reader: _SectionReader, cfg: DeviceConfig) -> None:
    """DragonBreath's API token (sent as X-DragonBreath-Auth, never logged).

    Read as a Moonraker template, like ``[mqtt] password``: ``{secrets.S.K}``
    takes it from Moonraker's secrets file, so it stays out of moonraker.log
    (Moonraker writes its configuration, plain values and all, into it at start).
    """
    template = reader.read(config.gettemplate, "token", None)
    if template is None:
        return
    try:
        token = str(template.render()).strip()
    except Exception as exc:  # noqa: BLE001 - e.g. no such secret; the text names no value
        cfg.errors.append("option 'token': %s (is it in Moonraker's secrets file?)" % (
            _clean(exc),))
        return
    if not token or any(ch.isspace() or not ch.isprintable() for ch in token):
        cfg.errors.append("option 'token': must be printable text without spaces")
    else:
        cfg.token = token


def _read_mqtt_options(config: Any, reader: _SectionReader, cfg: DeviceConfig) -> None:
    """The MQTT options, read (and so accepted) whatever the firmware."""
    prefix = reader.read(config.get, "topic_prefix", None)
    if prefix is not None:
        prefix = str(prefix).strip().strip("/")
        if is_topic_prefix(prefix):
            cfg.topic_prefix = prefix
        else:
            cfg.errors.append(
                f"option 'topic_prefix': '{prefix}' is not a usable MQTT topic prefix "
                "(no wildcards + or #, no spaces, no empty levels)"
            )
    if cfg.topic_prefix is None:
        cfg.topic_prefix = DEFAULT_TOPIC_PREFIXES.get(cfg.firmware)
    device_id = reader.read(config.get, "device_id", None)
    if device_id is not None and str(device_id).strip():
        normalized = str(device_id).strip().replace(":", "").replace("-", "").upper()
        if len(normalized) == 12 and all(ch in "0123456789ABCDEF" for ch in normalized):
            cfg.device_id = normalized
        else:
            cfg.errors.append(
                f"option 'device_id': '{device_id}' is not a MAC address; use the 12 hex "
                "digits of the device's MAC without colons, e.g. ACEBE68FE51C"
            )
    elif cfg.firmware == "stock_mqtt":
        cfg.errors.append(
            "option 'device_id' is required for firmware 'stock_mqtt': the device's MAC "
            "address without colons (e.g. ACEBE68FE51C), as in its topics "
            "panda_breath/<device_id>/state"
        )
    cfg.climate_id = _topic_level(reader, config, cfg, "climate_id", "chamber", allow_empty=False)
    cfg.chamber_sensor_id = _topic_level(
        reader, config, cfg, "chamber_sensor_id", "chamber_temperature", allow_empty=True
    )
    cfg.ptc_sensor_id = _topic_level(
        reader, config, cfg, "ptc_sensor_id", "ptc_element_temperature", allow_empty=True
    )
    cfg.band = reader.read(config.getfloat, "band", 1.0, minval=0.2, maxval=10.0)
    interval = reader.read(config.getfloat, "heartbeat_interval", 10.0)
    if interval == 0.0 or 1.0 <= interval <= 300.0:
        cfg.heartbeat_interval = interval
    else:
        cfg.errors.append(
            f"option 'heartbeat_interval': {interval} s is outside 1 to 300 (0 turns it off)"
        )


def _topic_level(
    reader: _SectionReader, config: Any, cfg: DeviceConfig, option: str, default: str,
    allow_empty: bool,
) -> str:
    value = reader.read(config.get, option, default)
    text = "" if value is None else str(value).strip()
    if (allow_empty and not text) or is_topic_level(text):
        return text
    cfg.errors.append(
        f"option '{option}': '{value}' must be one MQTT topic level, an ESPHome object_id "
        "such as chamber_temperature (no /, +, # or spaces)"
        + (" or empty" if allow_empty else "")
    )
    return default


#: Every option, in the order read (later checks use earlier values).
_OPTIONS: tuple[_Read, ...] = (
    _read_firmware,
    _read_host,
    _number("port", "getint", 1, 65535),
    _read_heater,
    _number("device_max_temp", "getfloat", 1.0, PATCHED_MAX_TARGET),
    _number("connect_timeout", "getfloat", 0.5, 60.0),
    _number("silence_timeout", "getfloat", 2.0, 300.0),
    _number("reconnect_max_delay", "getfloat", 0.5, 300.0),
    # Stock WebSocket only: the device reports no settings changes, so the
    # desired state is written again this often (a change at the device
    # stands at most this long).
    _number("reassert_interval", "getfloat", 5.0, 60.0),
    _number("temperature_offset", "getfloat", -20.0, 20.0),
    _read_chamber_sensor,
    _number("regulation_interval", "getfloat", 5.0, 600.0),
    _read_drying,
    _read_token,
    # DragonBreath: the host lease the device's watchdog enforces.
    _number("lease_timeout", "getfloat", 10.0, 300.0),
    _number("offline_warning_delay", "getfloat", 5.0, 3600.0),
    _read_mqtt_options,
)
