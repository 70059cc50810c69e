"""The stock firmware's device logic: persisted settings, heating control, drying timer.

Protocol layers (``stock_ws``, ``stock_mqtt``, the front-panel buttons) validate
what a client sent and then call the methods here; every change is written to
flash at once, like the device's NVS, which is why a power cycle with
``work_on`` saved resumes heating with no command at all (§0.3).

Modelling choices where the reference is silent (documented, not verified):
- ``isrunning: 1`` starts a drying cycle: mode becomes Drying, ``work_on``
  becomes true and the countdown starts from ``custom_timer`` hours.
- A drying cycle that ends (timer at 0, ``isrunning: 0``, ``work_on: false`` or a
  change to another mode) clears ``isrunning``; ending by timer or by
  ``isrunning: 0`` also clears ``work_on`` (cf. BTT #29 "work mode switched off").
- Auto mode heats to ``set_temp`` only while a printer link is up (printer state
  3 or 5) and the bed target is above ``hotbedtemp``; with no bound printer it idles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pbsim.device import DeviceCore, Flash
from pbsim.firmware import (
    CHAMBER_CEILING,
    DRYING_PRESETS,
    PTC_CUTOFF,
    RANGES,
    Mode,
    StockFirmware,
)
from pbsim.thermal import ThermalModel

#: printer.state codes meaning "linked" (Bambu 3 connected; Klipper 3 connected, 5 ready).
PRINTER_LINKED = (3, 5)


@dataclass
class StockSettings:
    """Everything the stock firmware keeps in NVS."""

    work_on: bool = False
    mode: Mode = Mode.AUTO
    set_temp: int = 40
    filtertemp: int = 30
    hotbedtemp: int = 80
    custom_temp: int = 55
    custom_timer: int = 12
    filament_drying_mode: int = 1
    printer_type: int = 1
    language: str = "en"
    hostname: str = "PandaBreath"

    def to_flash(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = self.mode.value
        return data

    @classmethod
    def from_flash(cls, data: dict[str, Any], defaults: StockSettings) -> StockSettings:
        values = asdict(defaults)
        names = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key in names:
                values[key] = value
        try:
            values["mode"] = Mode(values["mode"])
        except ValueError:
            values["mode"] = defaults.mode
        values["work_on"] = bool(values["work_on"])
        return cls(**values)


@dataclass
class PrinterLink:
    """The printer binding the device reports under the ``printer`` root."""

    name: str = ""
    host: str = ""
    port: int = 80
    state: int = 0  # 0 disconnected / not bound
    bed_target: float = 0.0
    list: list[Any] = field(default_factory=list)


def clamp(key: str, value: float) -> int:
    low, high = RANGES[key]
    return int(min(max(round(value), low), high))


class StockDevice(DeviceCore):
    """Stock firmware v1.0.0 .. v1.0.4 behaviour, independent of the transport."""

    def __init__(
        self,
        firmware: StockFirmware,
        thermal: ThermalModel,
        flash: Flash,
        hysteresis: float = 1.0,
    ) -> None:
        super().__init__(thermal, flash)
        self.firmware = firmware
        self.hysteresis = hysteresis
        self.defaults = StockSettings(hotbedtemp=firmware.default_hotbedtemp)
        self.settings = StockSettings(**asdict(self.defaults))
        self.printer = PrinterLink()
        self.drying_running = False
        self.remaining_seconds = 0.0
        self.pending_drying: dict[str, int] = {}
        self.boot()

    # -- power cycle ---------------------------------------------------------------------
    def boot(self) -> None:
        """Start as after power-on: settings come back from flash, volatile state is lost."""
        self.settings = StockSettings.from_flash(self.flash.data, self.defaults)
        self.drying_running = False
        self.remaining_seconds = 0.0
        self.pending_drying = {}
        self.set_relay(False)
        self.fan_on = False

    def save(self) -> None:
        self.flash.update(self.settings.to_flash())

    def factory_reset(self) -> None:
        self.flash.clear()

    # -- commands (already validated by the protocol layer) ---------------------------------
    def set_work_on(self, on: bool) -> None:
        self.settings.work_on = bool(on)
        if not on and self.drying_running:
            self._end_drying(clear_work_on=False)
        self.save()

    def set_mode(self, mode: Mode) -> None:
        if mode is not Mode.DRYING and self.drying_running:
            self._end_drying(clear_work_on=False)
        self.settings.mode = mode
        self.save()

    def set_number(self, key: str, value: float) -> int:
        """Set one of the clamped integer settings (``set_temp``, ``custom_temp``, ...)."""
        clamped = clamp(key, value)
        setattr(self.settings, key, clamped)
        self.save()
        return clamped

    def set_value(self, key: str, value: Any) -> None:
        """Set an unclamped setting (``language``, ``printer_type``, ``hostname``)."""
        setattr(self.settings, key, value)
        self.save()

    def stage_drying(self, key: str, value: float) -> int:
        """v1.0.3+: remember filament_temp/_timer until the ``filament_drying_mode: 3`` commit."""
        target = "custom_temp" if key == "filament_temp" else "custom_timer"
        clamped = clamp(target, value)
        self.pending_drying[target] = clamped
        return clamped

    def select_drying_mode(self, preset: int) -> None:
        """1 PLA / 2 PETG load a preset; 3 commits the staged custom values."""
        self.settings.filament_drying_mode = preset
        if preset in DRYING_PRESETS:
            self.settings.custom_temp, self.settings.custom_timer = DRYING_PRESETS[preset]
        else:
            for key, value in self.pending_drying.items():
                setattr(self.settings, key, value)
        self.pending_drying = {}
        self.save()

    def start_drying(self) -> None:
        self.settings.mode = Mode.DRYING
        self.settings.work_on = True
        self.drying_running = True
        self.remaining_seconds = float(self.settings.custom_timer) * 3600.0
        self.save()

    def stop_drying(self) -> None:
        if self.drying_running:
            self._end_drying(clear_work_on=True)
        self.save()

    def _end_drying(self, clear_work_on: bool) -> None:
        self.drying_running = False
        self.remaining_seconds = 0.0
        if clear_work_on:
            self.settings.work_on = False

    # -- control loop ----------------------------------------------------------------------
    def heating_target(self) -> float | None:
        """The chamber temperature the device is heating toward now, or None when idle."""
        s = self.settings
        if not self.up or not s.work_on:
            return None
        if s.mode is Mode.ON:
            target: float = s.set_temp
        elif s.mode is Mode.AUTO:
            linked = self.printer.state in PRINTER_LINKED
            if not (linked and self.printer.bed_target > s.hotbedtemp):
                return None
            target = s.set_temp
        else:
            if not self.drying_running:
                return None
            target = s.custom_temp
        return min(float(target), CHAMBER_CEILING)

    def control(self, dt: float) -> None:
        if self.drying_running:
            self.remaining_seconds -= dt
            if self.remaining_seconds <= 0:
                self._end_drying(clear_work_on=True)
                self.save()
                self.on_event("drying_done")
        target = self.heating_target()
        chamber = self.chamber_reading()
        if target is None or self.any_fault() or target <= 0:
            self.set_relay(False)
        elif chamber >= CHAMBER_CEILING or self.thermal.ptc >= PTC_CUTOFF:
            self.set_relay(False)
        elif chamber < target - self.hysteresis / 2:
            self.set_relay(True)
        elif chamber >= target + self.hysteresis / 2:
            self.set_relay(False)
        # The blower runs for a heating session and after it while the element is hot.
        self.fan_on = self.up and (
            target is not None or self.thermal.ptc > self.thermal.chamber + 8.0
        )

    # -- reporting helpers -------------------------------------------------------------------
    def mode_number(self) -> int:
        return self.firmware.mode_numbers[self.settings.mode]

    def remaining_whole_seconds(self) -> int:
        return max(0, int(self.remaining_seconds))
