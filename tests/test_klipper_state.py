"""The state the component pushes to the Klipper extra: decided once, in the component.

The extra only stores, checks and shows it (tests/test_klipper_extra*.py run
it in a real klippy; the e2e tests run both ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from unittest.mock import Mock

from panda_breath.controller import DeviceController
from panda_breath.klipper_state import klipper_state
from panda_breath.klippy_relay import console_error
from panda_breath.link import LINK_CONNECTED, LINK_DISCONNECTED


@dataclass
class StubLink:
    state: str
    min_target: float | None


@dataclass
class StubDrying:
    temperature: int | None
    hours: int | None
    left: float | None

    def remaining(self, now: float) -> float | None:
        return None if self.left is None else self.left - now


def test_before_the_device_is_heard_nothing_heats() -> None:
    controller = DeviceController("dev", "chamber", 60.0, Mock(), lambda: None)
    assert klipper_state(controller, 0.0) == {
        "power": 0.0, "heater_on": None, "device_target": None, "link": None, "fault": None,
        "external_control": None, "drying": False, "drying_remaining": None,
        "min_target": None, "max_target": 60.0,
        "helix": {
            "connected": True, "work_mode": 0, "work_on": False, "device_target": None,
            "fault": None, "filament_drying_active": False, "filament_temp": None,
            "filament_timer": None, "remaining_seconds": 0,
        },
    }  # fmt: skip


def test_drying_the_range_and_helixscreens_shape() -> None:
    controller = DeviceController("dev", "chamber", 70.0, Mock(), lambda: None)
    controller.link = StubLink(LINK_CONNECTED, 30.0)  # type: ignore[assignment]
    controller.device_target = 45
    controller.heater_on = True
    controller.drying = StubDrying(50, 3, 3629.0)  # type: ignore[assignment]
    state = klipper_state(controller, 0.0)
    assert state["power"] == 1.0 and state["heater_on"] is True  # the relay, as reported
    assert state["device_target"] == 45.0 and type(state["device_target"]) is float
    assert (state["min_target"], state["max_target"]) == (30.0, 70.0)
    # Whole seconds: the relay pushes the countdown each second while drying
    assert state["drying"] is True and state["drying_remaining"] == 3629.0
    helix = state["helix"]
    assert helix["connected"] is True and helix["filament_drying_active"] is True
    assert helix["filament_temp"] == 50.0 and type(helix["filament_timer"]) is int
    assert helix["work_on"] is True and helix["work_mode"] == 3  # a drying cycle
    assert type(helix["remaining_seconds"]) is int and helix["remaining_seconds"] == 3629
    assert klipper_state(controller, 20.4)["drying_remaining"] == 3609.0
    assert klipper_state(controller, 60.6)["helix"]["remaining_seconds"] == 3568
    controller.link = StubLink(LINK_DISCONNECTED, None)  # type: ignore[assignment]
    assert klipper_state(controller, 0.0)["helix"]["connected"] is False


def test_a_refusal_is_one_console_line_of_a_readable_length() -> None:
    assert console_error("heater_panda_breath chamber", "drying not started: x") == (
        "!! heater_panda_breath chamber: drying not started: x")
    line = console_error("heater_generic chamber", "two\nlines " + "x" * 400)
    assert "\n" not in line and len(line) <= 303
    assert line.startswith("!! heater_generic chamber: two lines xx")
