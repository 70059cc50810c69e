"""The stock firmware's JSON-over-WebSocket protocol (v1.0.0 to v1.0.4), without I/O.

Facts this encodes (device-protocol reference, section 2):

* Every message is a JSON object whose top-level keys are "roots"; the first
  frame after connecting is a snapshot with several roots, later frames are
  small ``settings`` updates carrying the chamber temperature.
* The snapshot carries Wi-Fi and AP passwords in clear text, so nothing here
  ever keeps or returns raw frames: only the decoded facts leave this module.
* Writes are one key per frame, in the web UI's order ``work_mode``, target,
  ``work_on``; ``work_on`` must be a JSON boolean (v1.0.3 ignores 0/1); the
  target key is ``temp`` on V1.0.0 and ``set_temp`` from v1.0.1.
* V1.0.0 numbers its modes differently (3 = Auto, 1 = Drying).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .model import (
    MODE_AUTO,
    MODE_DRYING,
    MODE_ON,
    MODE_STANDBY,
    DeviceReport,
    FrameError,
    as_number,
    device_degrees,
    parse_json_object,
    read_temperature,
)

#: Larger frames are not something this device sends; they are dropped unread.
MAX_FRAME_CHARS = 32 * 1024

#: Used until a snapshot tells the real version: every firmware since v1.0.1.
DEFAULT_VERSION = (1, 0, 3)

# Chamber temperature keys, most trusted first: ADC-calibrated, the v1.0.4
# HA alias, then the raw value the web UI shows.
_TEMPERATURE_KEYS = ("cal_warehouse_temp", "chamber_temp", "warehouse_temper")
_PTC_KEYS = ("cal_ptc_temp", "ptc_temp")
_TARGET_KEYS_BY_PREFERENCE = ("set_temp", "target_temp", "temp")

# v1.0.3 web UI: 1 = "may have a short circuit", 2 = "may have an open circuit".
_SENSOR_CODES = {1: "short circuit", 2: "open circuit"}
_SENSOR_FIELDS = {
    "warehouse_sensor_status": "chamber_sensor",
    "ptc_sensor_status": "ptc_sensor",
}

# Bounded parts: int() refuses thousands of digits, and no version has them.
_VERSION_RE = re.compile(r"(?<!\d)[vV]?(\d{1,6})\.(\d{1,6})\.(\d{1,6})(?!\d)")


def parse_version(text: Any) -> tuple[int, int, int] | None:
    """``"V1.0.3"`` -> ``(1, 0, 3)``; None for anything else."""
    if not isinstance(text, str):
        return None
    match = _VERSION_RE.search(text)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return (major, minor, patch)


def mode_numbers(version: tuple[int, int, int]) -> dict[int, str]:
    """The firmware's ``work_mode`` numbering (V1.0.0 swapped Auto and Drying)."""
    if version < (1, 0, 1):
        return {0: MODE_STANDBY, 1: MODE_DRYING, 2: MODE_ON, 3: MODE_AUTO}
    return {0: MODE_STANDBY, 1: MODE_AUTO, 2: MODE_ON, 3: MODE_DRYING}


def target_key(version: tuple[int, int, int]) -> str:
    """The settings key this firmware accepts as the chamber target."""
    return "temp" if version < (1, 0, 1) else "set_temp"


def decode_frame(text: str | bytes, version: tuple[int, int, int]) -> DeviceReport:
    """Decode one device frame; raise FrameError when nothing in it can be used.

    ``version`` is the firmware version known so far; a snapshot that states
    its own version is decoded with that one instead.  FrameError is the only
    exception: a decoder bug drops the frame instead of ending the session,
    and its message names the bug's type, never the frame's text.
    """
    try:
        return _decode_frame(text, version)
    except FrameError:
        raise
    except Exception as exc:
        raise FrameError("undecodable frame (%s)" % type(exc).__name__) from None


def _decode_frame(text: str | bytes, version: tuple[int, int, int]) -> DeviceReport:
    if isinstance(text, bytes):
        raise FrameError("binary frame")
    if len(text) > MAX_FRAME_CHARS:
        raise FrameError(f"oversized frame ({len(text)} characters)")
    message = parse_json_object(text, "frame")
    report = DeviceReport()
    settings = message.get("settings")
    if settings is None:
        return report
    if not isinstance(settings, Mapping):
        report.rejected_fields.append("settings")
        return report
    stated = settings.get("fw_version")
    if stated is not None:
        parsed = parse_version(stated)
        if parsed is None:
            report.rejected_fields.append("fw_version")
        else:
            version = parsed
            report.firmware_version = "V%d.%d.%d" % parsed
    # The connect snapshot is the only frame with the version and the
    # network roots; its on/off state is the device's real one.
    report.snapshot = stated is not None or any(root in message for root in ("sta", "wifi"))
    _decode_settings(settings, version, report)
    return report


def _decode_settings(
    settings: Mapping[str, Any], version: tuple[int, int, int], report: DeviceReport
) -> None:
    for key in _TEMPERATURE_KEYS:
        value = read_temperature(settings, key, report)
        if report.chamber_temp is None:
            report.chamber_temp = value
    for key in _PTC_KEYS:
        value = read_temperature(settings, key, report)
        if report.ptc_temp is None:
            report.ptc_temp = value
    if "work_on" in settings:
        work_on = settings["work_on"]
        # Snapshots show 0/1 or a boolean; both mean the same when read.
        if isinstance(work_on, bool) or work_on in (0, 1):
            report.work_on = bool(work_on)
        else:
            report.rejected_fields.append("work_on")
    if "work_mode" in settings:
        number = as_number(settings["work_mode"])
        mode = None
        if number is not None and number == int(number):
            mode = mode_numbers(version).get(int(number))
        if mode is None:
            report.rejected_fields.append("work_mode")
        else:
            report.mode = mode
    for key in _TARGET_KEYS_BY_PREFERENCE:
        if key in settings:
            number = as_number(settings[key])
            if number is None or not 0 <= number <= 120:
                report.rejected_fields.append(key)
            elif report.device_target is None:
                report.device_target = number
    decode_drying(settings, report)
    decode_faults(settings, report)


def decode_drying(settings: Mapping[str, Any], report: DeviceReport) -> None:
    """Whether a drying cycle runs, and its countdown: seconds in snapshots,
    minutes in v1.0.4's HA names."""
    if "isrunning" in settings:
        running = settings["isrunning"]
        if isinstance(running, bool) or running in (0, 1):
            report.drying = bool(running)
            if running:
                # A running cycle heats whatever work_on last said.
                report.mode = MODE_DRYING
                report.work_on = True
        else:
            report.rejected_fields.append("isrunning")
    if "remaining_seconds" in settings:
        seconds = as_number(settings["remaining_seconds"])
        if seconds is None or seconds < 0:
            report.rejected_fields.append("remaining_seconds")
        else:
            report.drying_remaining_s = seconds
    elif "drying_remaining_min" in settings:
        minutes = as_number(settings["drying_remaining_min"])
        # A huge finite count of minutes would overflow to infinite seconds.
        if minutes is None or minutes < 0 or not math.isfinite(minutes * 60.0):
            report.rejected_fields.append("drying_remaining_min")
        else:
            report.drying_remaining_s = minutes * 60.0


def decode_faults(settings: Mapping[str, Any], report: DeviceReport) -> None:
    """Sensor and heater status codes, the same on WebSocket and v1.0.4 MQTT."""
    faults: dict[str, str] = {}
    seen = False
    for key, name in _SENSOR_FIELDS.items():
        if key not in settings:
            continue
        seen = True
        code = as_number(settings[key])
        if code is None:
            report.rejected_fields.append(key)
        elif code:
            faults[name] = _SENSOR_CODES.get(int(code), "fault code %d" % int(code))
    if "ptc_heater_status" in settings:
        seen = True
        code = as_number(settings["ptc_heater_status"])
        if code is None:
            report.rejected_fields.append("ptc_heater_status")
        elif code:
            faults["ptc_heater"] = "abnormal (code %d)" % int(code)
    if seen:
        report.faults = faults
    if "chamber_sensor" in faults:
        # A shorted or open thermistor still produces a number; it means nothing.
        report.chamber_temp = None
    if "ptc_sensor" in faults:
        report.ptc_temp = None


def encode_settings(key: str, value: Any) -> str:
    """One ``settings`` write, one key per frame as the web UI sends it."""
    return json.dumps({"settings": {key: value}}, separators=(",", ":"))


def drying_sequence(
    temperature: int, hours: int, version: tuple[int, int, int]
) -> list[tuple[str, Any]]:
    """The writes that start a custom drying cycle, in the web UI's order.

    From v1.0.3 the custom values are only kept when ``filament_drying_mode:
    3`` follows them (otherwise the device silently drops them); ``isrunning``
    then starts the cycle.  Stopping is ``work_on: false``, like off.
    """
    writes: list[tuple[str, Any]] = [("filament_temp", temperature), ("filament_timer", hours)]
    if version >= (1, 0, 3):
        writes.append(("filament_drying_mode", 3))
    writes.append(("isrunning", 1))
    return writes


def command_sequence(
    target: float, version: tuple[int, int, int]
) -> list[tuple[str, Any]]:
    """The (key, value) writes that put the device in the state for ``target``.

    Heating is Always-On mode at the target: ``work_mode`` first, then the
    target, then ``work_on`` (the web UI's order).  Off is ``work_on: false``
    alone, which also stops a drying cycle.
    """
    if target <= 0.0:
        return [("work_on", False)]
    on_mode = next(num for num, mode in mode_numbers(version).items() if mode == MODE_ON)
    return [
        ("work_mode", on_mode),
        (target_key(version), device_degrees(target)),
        ("work_on", True),
    ]
