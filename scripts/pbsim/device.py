"""What every simulated firmware shares: the model clock, relay, fan, sensor faults, flash.

A firmware subclass supplies :meth:`DeviceCore.control`, called before every
physics step, which decides the relay and fan from the settings and the sensor
readings, exactly as the device's own control task would.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pbsim.thermal import MAX_STEP, ThermalModel

#: Sensor/heater fault fields as the stock v1.0.3 UI names them.
#: Codes for the two sensors: 1 = short circuit, 2 = open circuit (v1.0.3 UI
#: dialogs; the earlier project's docs say the reverse, §2.14 #3).
FAULT_FIELDS = ("ptc_sensor_status", "warehouse_sensor_status", "ptc_heater_status")
SHORT, OPEN = 1, 2
#: What a faulted NTC reads: a shorted thermistor reads very hot, an open one very cold.
#: (Modelled values; the device's real readings in these states are unknown.)
FAULT_READINGS = {SHORT: 127.0, OPEN: -40.0}
_SENSOR_OF_FIELD = {"ptc_sensor_status": "ptc", "warehouse_sensor_status": "warehouse"}


class Flash:
    """The device's NVS: a JSON object, optionally mirrored to a file (``--state-file``)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path else None
        self.data: dict[str, Any] = {}
        if self.path and self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
            except (OSError, ValueError):
                loaded = {}
            if isinstance(loaded, dict):
                self.data = loaded

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def update(self, values: dict[str, Any]) -> None:
        self.data.update(values)
        self.save()

    def clear(self) -> None:
        self.data = {}
        self.save()

    def save(self) -> None:
        if not self.path:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(self.data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


class DeviceCore:
    """Shared device hardware: relay, fan, sensors and the model clock."""

    def __init__(self, thermal: ThermalModel, flash: Flash) -> None:
        self.thermal = thermal
        self.flash = flash
        self.relay_on = False
        self.fan_on = False
        self.model_time = 0.0
        self.relay_switches = 0
        self.up = True
        self.faults: dict[str, int] = {name: 0 for name in FAULT_FIELDS}
        #: What a faulted sensor reads per code; swapped by ``--swap-sensor-codes``.
        self.readings_by_code = dict(FAULT_READINGS)
        self.fault_readings: dict[str, float] = {}
        #: Called with an event name ("fault", "drying_done", ...) when the device
        #: itself changes something a protocol layer may announce.
        self.on_event: Callable[[str], None] = lambda event: None

    # -- physics -----------------------------------------------------------------------------
    def advance(self, model_dt: float) -> None:
        """Run the control loop and the physics for ``model_dt`` model seconds."""
        remaining = model_dt
        while remaining > 1e-9:
            step = min(MAX_STEP, remaining)
            self.control(step)
            self.thermal.step(step, self.relay_on, self.fan_on)
            self.model_time += step
            remaining -= step

    def control(self, dt: float) -> None:  # pragma: no cover - firmware supplies it
        raise NotImplementedError

    def boot(self) -> None:  # pragma: no cover - firmware supplies it
        """Start from the flash as after a power-up."""
        raise NotImplementedError

    def set_relay(self, on: bool) -> None:
        if on != self.relay_on:
            self.relay_on = on
            self.relay_switches += 1

    # -- sensors -------------------------------------------------------------------------
    def chamber_reading(self) -> float:
        """What the chamber NTC reads (a faulted sensor reads its fault value, never NaN)."""
        code = self.faults["warehouse_sensor_status"]
        if code:
            return self.fault_readings.get("warehouse", self.readings_by_code.get(code, -40.0))
        return self.thermal.chamber

    def ptc_reading(self) -> float:
        code = self.faults["ptc_sensor_status"]
        if code:
            return self.fault_readings.get("ptc", self.readings_by_code.get(code, -40.0))
        return self.thermal.ptc

    def chamber_valid(self) -> bool:
        return not self.faults["warehouse_sensor_status"] and math.isfinite(self.thermal.chamber)

    def ptc_valid(self) -> bool:
        return not self.faults["ptc_sensor_status"]

    def any_fault(self) -> bool:
        return any(self.faults.values())

    def set_fault(self, field: str, code: int, reading: float | None = None) -> None:
        """Raise (code != 0) or clear (code 0) one of :data:`FAULT_FIELDS`."""
        if field not in self.faults:
            raise ValueError(f"unknown fault field {field!r}; use one of {FAULT_FIELDS}")
        self.faults[field] = int(code)
        sensor = _SENSOR_OF_FIELD.get(field)
        if sensor and reading is not None:
            self.fault_readings[sensor] = float(reading)
        elif sensor and not code:
            self.fault_readings.pop(sensor, None)
        self.on_event("fault")
