"""Choosing the device's set point so that the printer's own chamber sensor reaches the target.

The device regulates its own thermistor, which sits in the heater's outflow
and over-reads (owners set 67 °C to get 60 °C).  With ``chamber_sensor`` the
printer's sensor is the truth: the device is given ``target + correction``.
The correction changes only at equilibrium (the device at its own set point
and the printer's sensor flat), and then by a fraction ``GAIN`` of the
remaining error, at most ``MAX_STEP_C``, in whole degrees: at equilibrium
the error equals the gradient between the two sensors minus the
correction, so the printer's sensor approaches the target in a few
shrinking steps and settles within about 0.7 °C of it (the device takes
whole degrees and regulates in a 1 °C band).  Bounds (tests/test_regulation.py,
the simulator's thermal model): a device that over-reads, as the stock one
does, is approached from below and the printer's sensor never passes the
target by more than 0.5 °C; one that under-reads by d °C passes it by at
most d + 0.5 °C on the first approach, before the first correction.  The
correction moves one way, reversing at most once by a degree.  Nothing here
does I/O.
"""

from __future__ import annotations

from typing import Any

from .model import as_number

#: Seconds over which readings are averaged before each look (the device's
#: relay band makes single readings swing by a degree).
PERIOD_S = 60.0
#: The device counts as settled when its mean reading is at most this far below its set point.
SETTLED_C = 1.0
#: The printer's sensor counts as flat when its mean moved less than this in a period.
FLAT_C = 0.3
#: Share of the remaining error corrected per step (below 1: approach from below).
GAIN = 0.7
#: The largest change of the set point per step, °C.
MAX_STEP_C = 3
#: How far the correction may go either way, °C.
MAX_CORRECTION_C = 20
#: A reading of the printer's chamber sensor older than this is not shown.
PRINTER_READING_MAX_AGE_S = 10.0


class SetPointRegulator:
    def __init__(self, period: float = PERIOD_S) -> None:
        self.period = period
        #: device set point minus Klipper's target, whole °C (the device takes whole degrees)
        self.correction = 0
        #: mean device reading minus mean printer reading at the last equilibrium
        self.gradient: float | None = None
        self._period_start: float | None = None
        self._printer_sum = self._device_sum = 0.0
        self._samples = 0
        self._last_printer_mean: float | None = None

    def update(
        self, now: float, target: float, printer_temp: float | None,
        device_temp: float | None, device_set_point: float | None,
    ) -> int:
        """The correction to use now (device set point = target + correction)."""
        if target <= 0 or printer_temp is None or device_temp is None:
            return self.correction
        if self._period_start is None:
            self._period_start = now
        self._printer_sum += printer_temp
        self._device_sum += device_temp
        self._samples += 1
        if now - self._period_start < self.period:
            return self.correction
        printer_mean = self._printer_sum / self._samples
        device_mean = self._device_sum / self._samples
        self._period_start = now
        self._printer_sum = self._device_sum = 0.0
        self._samples = 0
        flat = (self._last_printer_mean is not None
                and abs(printer_mean - self._last_printer_mean) < FLAT_C)
        self._last_printer_mean = printer_mean
        # Settled: the device has reached its set point (or sits above it, idle).
        settled = device_set_point is not None and device_mean >= device_set_point - SETTLED_C
        if not (flat and settled):
            return self.correction  # still on its way: nothing to learn yet
        self.gradient = round(device_mean - printer_mean, 2)
        # Whole degrees: an error the device cannot resolve is left alone.
        step = int(round(GAIN * (target - printer_mean)))
        step = max(-MAX_STEP_C, min(MAX_STEP_C, step))
        self.correction = max(-MAX_CORRECTION_C, min(MAX_CORRECTION_C, self.correction + step))
        return self.correction


class ChamberTemperature:
    """Which reading Klipper shows and which set point the device gets for a target.

    Either the device's own reading shifted by ``temperature_offset`` (its
    sensor over-reads: negative; the set point moves the other way), or,
    with ``chamber_sensor`` (a Klipper object such as "temperature_sensor
    chamber"), the printer's reading, with the set point regulated to suit it.
    """

    def __init__(self, temperature_offset: float, chamber_sensor: str | None,
                 period: float) -> None:
        self.temperature_offset = temperature_offset
        self.chamber_sensor = chamber_sensor
        self.regulator = SetPointRegulator(period) if chamber_sensor else None
        self.printer_temp: float | None = None
        self._printer_temp_at = 0.0

    def printer_reading(self, value: Any, now: float) -> bool:
        """Klipper's ``chamber_sensor`` said ``value``; False if it is no finite number."""
        reading = as_number(value)  # finite numbers only, whatever Klipper sends
        if reading is None:
            return False
        self.printer_temp = reading
        self._printer_temp_at = now
        return True

    def klipper_reading(self, device_temp: float | None, now: float) -> float | None:
        """The chamber temperature Klipper shows while the device reads ``device_temp``
        (None: this report has no reading, so Klipper gets none either)."""
        if device_temp is None:
            return None
        if self.chamber_sensor is not None:
            fresh = now - self._printer_temp_at < PRINTER_READING_MAX_AGE_S
            return self.printer_temp if fresh else None
        return device_temp + self.temperature_offset

    def set_point(self, wanted: float, device_max: float) -> float:
        """What the device is told for ``wanted``: moved by the offset or the regulator."""
        if wanted <= 0:
            return 0.0
        if self.regulator is not None:
            point = wanted + self.regulator.correction
        else:
            point = wanted - self.temperature_offset
        if point == wanted:
            return wanted
        return float(min(device_max, max(1.0, round(point))))

    def regulate(self, now: float, wanted: float, device_temp: float | None,
                 device_set_point: float | None) -> bool:
        """Feed the regulator; True when the set point moved."""
        regulator = self.regulator
        if regulator is None or wanted <= 0:
            return False
        before = regulator.correction
        regulator.update(now, wanted, self.printer_temp, device_temp, device_set_point)
        return regulator.correction != before

    def describe(self) -> dict[str, Any]:
        return {
            "temperature_offset": self.temperature_offset,
            "chamber_sensor": self.chamber_sensor,
            "printer_temp": self.printer_temp,
            "regulation": None if self.regulator is None else {
                "correction": self.regulator.correction,
                "gradient": self.regulator.gradient,
            },
        }
