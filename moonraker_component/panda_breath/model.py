"""Firmware-neutral facts about a Panda Breath, shared by every protocol.

Each protocol decodes what the device says into a ``DeviceReport`` and turns
the one thing Klipper wants (a chamber target, 0 for off) into device
commands.  Nothing here does I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The stock firmware clamps its target to 0..60 °C (web UI and HA entities).
DEVICE_MAX_TARGET = 60.0
#: The community patch raises the clamps to 70 °C; nothing goes above that.
PATCHED_MAX_TARGET = 70.0

# Operating modes, independent of each firmware's numbering.
MODE_AUTO = "auto"
MODE_ON = "on"
MODE_DRYING = "drying"
MODE_STANDBY = "standby"
MODE_OFF = "off"

# Chamber readings outside this window are sensor faults, not weather.
PLAUSIBLE_TEMP_RANGE = (-40.0, 150.0)


class FrameError(ValueError):
    """A device message that cannot be used at all; it is dropped and counted."""


@dataclass
class DeviceReport:
    """What one device message said; ``None`` means "not in this message"."""

    chamber_temp: float | None = None
    ptc_temp: float | None = None
    work_on: bool | None = None
    mode: str | None = None
    device_target: float | None = None
    heater_on: bool | None = None
    firmware_version: str | None = None
    online: bool | None = None
    drying_remaining_s: float | None = None
    #: A drying cycle is running (``isrunning`` / ``drying_running``).
    drying: bool | None = None
    #: Sensor or heater faults the device reports, e.g. {"chamber_sensor": "open circuit"}.
    #: An empty dict means "the device says all clear"; None means "not reported".
    faults: dict[str, str] | None = None
    #: True for a full snapshot, whose on/off state is authoritative.
    snapshot: bool = False
    #: Not heard from the device: what a link whose device never answers a
    #: write (stock WebSocket) takes it to have done.  Mirrored, never contradicted.
    assumed: bool = False
    #: Fields that were present but unusable (wrong type, out of range).
    rejected_fields: list[str] = field(default_factory=list)
    #: DragonBreath (``firmware: dragonbreath``) only; None everywhere else.
    #: ``state_revision``: bumped by the device on every control, mode, lease,
    #: fault or safety change (never by temperatures or heartbeats); restarts at 1
    #: on every boot.
    revision: int | None = None
    #: Random per boot; a new one means the device rebooted (lease gone, mode off).
    boot_id: str | None = None
    #: Who made the last revision change: boot, web, klipper, button, safety,
    #: watchdog (and, assumed, ha); not necessarily who holds the lease.
    source: str | None = None
    #: The device's own fault text (``safety.reason``), e.g. "controller lease
    #: expired"; None when there is none.
    fault_reason: str | None = None
    #: A latched (or permanently inhibited) safety fault: heat commands are
    #: refused until it is cleared explicitly.
    fault_latched: bool | None = None
    #: Why the blower runs: off, heater, thermal_purge, auto_filter, requested, fault.
    fan_reason: str | None = None
    #: Filtration (the blower alone) is requested (``fan.requested_percent`` > 0).
    filter_requested: bool | None = None
    #: Whether the control lease is held by this bridge (our actor id); False
    #: when no lease is active or another controller holds it.
    lease_owned: bool | None = None
    #: Seconds left on the active lease (whoever holds it); 0 when none.
    lease_expires_s: float | None = None
    #: The device's comms watchdog / lease time-to-live, in milliseconds.
    comms_ms: int | None = None
    #: The device's runtime ceiling (``target.maximum_c``): it clamps targets to it.
    device_max_target: float | None = None

    def is_heating_enabled(self) -> bool | None:
        """Whether the device is set to heat on its own, as far as this message tells."""
        if self.work_on is None:
            return None
        if not self.work_on:
            return False
        # Auto mode idles without a bound printer, but on stock v1.0.3 it can
        # follow a Klipper bed by itself; any enabled mode can heat.
        return self.mode != MODE_STANDBY


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """A JSON object from device text; FrameError for anything else, including
    nesting too deep for the parser (RecursionError), so no frame escapes as a bug."""
    try:
        message = json.loads(text)
    except Exception:
        raise FrameError("%s is not valid JSON" % what) from None
    if not isinstance(message, dict):
        raise FrameError("%s is not a JSON object" % what)
    return message


def as_number(value: Any) -> float | None:
    """A finite JSON number as float, or None (bools and strings are not numbers;
    an int beyond float range, which JSON allows, is not a usable number either)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    if not math.isfinite(number):
        return None
    return number


def plausible_temperature(value: Any) -> float | None:
    """A chamber or element reading that a working sensor could produce, else None."""
    number = as_number(value)
    if number is None:
        return None
    low, high = PLAUSIBLE_TEMP_RANGE
    if not low <= number <= high:
        return None
    return number


def read_temperature(fields: Mapping[str, Any], key: str, report: DeviceReport) -> float | None:
    """The plausible reading under ``key``, if any; a present but unusable one is noted."""
    if key not in fields:
        return None
    value = plausible_temperature(fields[key])
    if value is None:
        report.rejected_fields.append(key)
    return value


def clamp_target(target: float, limit: float) -> float:
    """Clamp a Klipper target to what this device may be asked for (0 = off)."""
    if not math.isfinite(target) or target <= 0.0:
        return 0.0
    return min(target, limit)


#: What the stock firmware accepts for a drying cycle (web UI and HA ranges);
#: DragonBreath has its own (``dragonbreath.DRYING_*_RANGE``).
DRYING_TEMP_RANGE = (40, 60)
DRYING_HOURS_RANGE = (1, 99)


def device_degrees(target: float) -> int:
    """The whole-degree set point the firmware takes; a positive target never rounds to 0."""
    if target <= 0.0:
        return 0
    return max(1, int(math.floor(target + 0.5)))
