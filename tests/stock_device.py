"""What the simulated stock device's ``/sim/state`` shows when it heats for Klipper or is off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

State = dict[str, Any]


def heating_at(target: int) -> Callable[[State], bool]:
    """Heating in Klipper's mode (work_mode 2) at ``target``."""
    return lambda s: s["work_on"] is True and s["work_mode"] == 2 and s["set_temp"] == target


def is_off(state: State) -> bool:
    return state["work_on"] is False
