"""read_device_config: every option read, each bad one named with its section's option.

The e2e tests show the warnings in Moonraker; these pin down the option table
with a stand-in for Moonraker's ConfigHelper (its getters raise on bad types).
"""

from __future__ import annotations

from typing import Any

import pytest
from panda_breath.config import DeviceConfig, read_device_config


class PlainTemplate:
    def __init__(self, text: str) -> None:
        self.text = text

    def render(self) -> str:
        return self.text


class Section:
    """Just the ConfigHelper calls the reader makes."""

    def __init__(self, name: str, **options: str) -> None:
        self.name = name
        self.options = options

    def get_name(self) -> str:
        return self.name

    def get(self, option: str, default: Any) -> Any:
        return self.options.get(option, default)

    def gettemplate(self, option: str, default: Any) -> Any:
        """Moonraker's template of a plain value renders to the value itself."""
        if option not in self.options:
            return default
        return PlainTemplate(self.options[option])

    def getint(self, option: str, default: Any) -> Any:
        return self._number(option, default, int)

    def getfloat(self, option: str, default: Any) -> Any:
        return self._number(option, default, float)

    def _number(self, option: str, default: Any, kind: type) -> Any:
        if option not in self.options:
            return default
        try:
            return kind(self.options[option])
        except ValueError:
            raise ValueError(f"Option '{option}' is not a {kind.__name__}") from None


def test_an_empty_section_gets_the_documented_defaults() -> None:
    cfg = read_device_config(Section("panda_breath", host="pb.local"))
    assert cfg == DeviceConfig(section="panda_breath", name="panda_breath", host="pb.local",
                               topic_prefix=None)
    named = read_device_config(Section("panda_breath left", host="pb.local"))
    assert (named.name, named.heater) == ("left", "left")


def test_the_silence_rule_outlasts_an_8s_wifi_stall_and_a_frame_period() -> None:
    """An 8 s stall plus one 2 s frame period plus jitter reaches 10 s of silence: the
    default must be above that (12 s: docs/Developing.md, the bad Wi-Fi soak)."""
    cfg = read_device_config(Section("panda_breath", host="pb.local"))
    assert cfg.silence_timeout == 12.0
    db = read_device_config(Section("panda_breath", firmware="dragonbreath", host="pb.local"))
    assert db.silence_timeout == 12.0


@pytest.mark.parametrize(("option", "value", "message"), [
    ("port", "0", "option 'port': 0 is below the minimum 1"),
    ("device_max_temp", "71", "option 'device_max_temp': 71.0 is above the maximum 70"),
    ("reassert_interval", "4", "option 'reassert_interval': 4.0 is below the minimum 5"),
    ("lease_timeout", "301", "option 'lease_timeout': 301.0 is above the maximum 300"),
    ("drying_temperature", "61", "option 'drying_temperature': 61 is above the maximum 60"),
    ("connect_timeout", "soon", "option 'connect_timeout': Option 'connect_timeout' is not a "
                                "float"),
    ("token", "a b", "option 'token': must be printable text without spaces"),
    ("heater", "two words", "option 'heater': 'two words' must be one word"),
])
def test_a_bad_option_is_named_and_its_default_kept(option: str, value: str,
                                                    message: str) -> None:
    cfg = read_device_config(Section("panda_breath", host="pb.local", **{option: value}))
    assert len(cfg.errors) == 1 and cfg.errors[0].startswith(message), cfg.errors
    assert getattr(cfg, option) == getattr(DeviceConfig("s", "n"), option)


def test_errors_come_in_the_order_of_the_options() -> None:
    cfg = read_device_config(Section("panda_breath", firmware="bogus", port="x",
                                     chamber_sensor="temperature_sensor c",
                                     temperature_offset="-3"))
    assert [error.split("'")[1] for error in cfg.errors] == [
        "firmware", "host", "port", "temperature_offset"]


def test_the_drying_range_follows_the_firmware_and_the_device_ceiling() -> None:
    cfg = read_device_config(Section("panda_breath", host="pb.local", device_max_temp="50",
                                     drying_temperature="55"))
    assert cfg.errors == ["option 'drying_temperature': 55 is above the maximum 50"]
