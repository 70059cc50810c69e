"""The state the component pushes to the Klipper extra: decided once, in the component.

The extra only stores, checks and shows it (tests/test_klipper_extra*.py run
it in a real klippy; the e2e tests run both ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from unittest.mock import Mock

from panda_breath.controller import DeviceController
from panda_breath.klipper_state import klipper_state
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
            "filament_timer": None,
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
    # Whole minutes: the extra counts down between pushes
    assert state["drying"] is True and state["drying_remaining"] == 3600.0
    helix = state["helix"]
    assert helix["connected"] is True and helix["filament_drying_active"] is True
    assert helix["filament_temp"] == 50.0 and type(helix["filament_timer"]) is int
    assert helix["work_on"] is True and helix["work_mode"] == 3  # a drying cycle
    assert klipper_state(controller, 20.0)["drying_remaining"] == 3600.0  # 3609 s left
    assert klipper_state(controller, 60.0)["drying_remaining"] == 3540.0  # 3569 s left
    controller.link = StubLink(LINK_DISCONNECTED, None)  # type: ignore[assignment]
    assert klipper_state(controller, 0.0)["helix"]["connected"] is False
