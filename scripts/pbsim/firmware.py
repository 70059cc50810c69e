"""What differs between the firmware builds the simulator can play.

Each stock build is one :class:`StockFirmware` row; the quirks are flags so the
protocol code reads as "if the build does X" rather than version comparisons.
Sources are the reference notes (device-protocol-and-peers.md §2.7, §2.13).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Mode(str, enum.Enum):
    """The three operating modes, independent of how a build numbers them."""

    AUTO = "auto"
    ON = "on"
    DRYING = "drying"


#: v1.0.1 .. v1.0.4 wire numbers for ``work_mode``.
MODE_NUMBERS = {Mode.AUTO: 1, Mode.ON: 2, Mode.DRYING: 3}
#: The V1.0.0 build's mirrored numbering (its "Auto" button sent 3, "Drying" sent 1).
MODE_NUMBERS_V100 = {Mode.AUTO: 3, Mode.ON: 2, Mode.DRYING: 1}


@dataclass(frozen=True)
class StockFirmware:
    """One stock build and its protocol quirks."""

    name: str  # CLI spelling, e.g. "v1.0.3"
    fw_version: str  # as reported in the snapshot, e.g. "V1.0.3"
    target_key: str  # the settings key that sets the target ("temp" on V1.0.0)
    mode_numbers: dict[Mode, int]
    work_on_bool_only: bool  # v1.0.3+: integer work_on writes are ignored
    drying_commit: bool  # v1.0.3+: filament_temp/_timer need {"filament_drying_mode": 3}
    single_key_frames: bool  # v1.0.3+: only the first key of a settings frame is applied
    v103_features: bool  # v1.0.3+: printer_type, filtertemp, sensor-status fields
    v104: bool  # HA naming: chamber_temp, ws aliases, native MQTT, "ha" root
    default_hotbedtemp: int

    @property
    def mode_by_number(self) -> dict[int, Mode]:
        return {number: mode for mode, number in self.mode_numbers.items()}


FIRMWARES: dict[str, StockFirmware | None] = {
    "v1.0.0": StockFirmware(
        "v1.0.0", "V1.0.0", "temp", MODE_NUMBERS_V100, False, False, False, False, False, 100
    ),
    "v1.0.1": StockFirmware(
        "v1.0.1", "V1.0.1", "set_temp", MODE_NUMBERS, False, False, False, False, False, 80
    ),
    "v1.0.2": StockFirmware(
        "v1.0.2", "V1.0.2", "set_temp", MODE_NUMBERS, False, False, False, False, False, 80
    ),
    "v1.0.3": StockFirmware(
        "v1.0.3", "V1.0.3", "set_temp", MODE_NUMBERS, True, True, True, True, False, 80
    ),
    "v1.0.4": StockFirmware(
        "v1.0.4", "V1.0.4", "set_temp", MODE_NUMBERS, True, True, True, True, True, 80
    ),
    # ESPHome has no stock protocol at all; see pbsim.esphome.
    "esphome": None,
}

FIRMWARE_NAMES = tuple(FIRMWARES)
DEFAULT_FIRMWARE = "v1.0.3"

#: Clamp ranges the device applies to writes (UI/HA ranges, §2.5 and §2.9).
RANGES: dict[str, tuple[int, int]] = {
    "set_temp": (0, 60),  # the device's 60 °C cap
    "filtertemp": (0, 120),
    "hotbedtemp": (40, 120),
    "custom_temp": (40, 60),
    "custom_timer": (1, 99),
}

#: Drying presets selected by filament_drying_mode (v1.0.3 web-UI code: PLA 55 °C,
#: PETG 60 °C, both 12 h; BTT's docs say the reverse for the temperatures).
DRYING_PRESETS: dict[int, tuple[int, int]] = {1: (55, 12), 2: (60, 12)}

#: Hard ceilings of the stock firmware's control loop.
CHAMBER_CEILING = 60.0
PTC_CUTOFF = 105.0
