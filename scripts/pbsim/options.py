"""``SimOptions``: everything the CLI can set, one group per personality.

``create_simulator(**kwargs)`` takes the same names flat; :meth:`SimOptions.apply`
finds the group a name belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from pbsim.dragonbreath import DragonBreathOptions
from pbsim.esphome import EsphomeOptions
from pbsim.firmware import DEFAULT_FIRMWARE
from pbsim.stock_ws import WsOptions

ESPHOME_ALIASES = {
    "esphome_low": "default_low",
    "esphome_high": "default_high",
    "esphome_fan_with_heat": "fan_with_heat",
    "esphome_host_topic": "host_topic",
    "esphome_command_timeout": "command_timeout",
}
GROUPS = ("ws", "esphome", "dragonbreath")


@dataclass
class SimOptions:
    """The CLI's options; ``ws``, ``esphome`` and ``dragonbreath`` hold one personality's own."""

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
    dragonbreath: DragonBreathOptions = field(default_factory=DragonBreathOptions)

    def apply(self, **overrides: Any) -> SimOptions:
        """Set top-level or group fields by name (flat keyword arguments).

        ESPHome fields also take their CLI spelling: ``esphome_fan_with_heat``,
        ``esphome_host_topic``, ``esphome_command_timeout``, ``esphome_low``/``_high``.
        A name two groups share (``device_id``) sets the first: top level, then
        ``ws``, ``esphome``, ``dragonbreath``.
        """
        groups = (self, self.ws, self.esphome, self.dragonbreath)
        for name, value in overrides.items():
            name = ESPHOME_ALIASES.get(name, name)
            for group in groups:
                if name in {f.name for f in fields(group)} and name not in GROUPS:
                    setattr(group, name, value)
                    break
            else:
                raise TypeError(f"unknown simulator option {name!r}")
        return self
