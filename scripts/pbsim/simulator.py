"""``create_simulator``: the personality a firmware name stands for, built from options.

Each personality is a ``SimCore`` of its own module; this table is the one
place that knows them all.
"""

from __future__ import annotations

from typing import Any

from pbsim.core import SimCore
from pbsim.dragonbreath import FIRMWARE_NAME as DRAGONBREATH
from pbsim.dragonbreath_sim import DragonBreathSimulator
from pbsim.esphome_sim import EsphomeSimulator
from pbsim.firmware import FIRMWARES
from pbsim.options import SimOptions
from pbsim.stock_sim import StockSimulator

PERSONALITIES: dict[str, type[SimCore]] = {
    **{name: StockSimulator for name, build in FIRMWARES.items() if build is not None},
    "esphome": EsphomeSimulator,
    DRAGONBREATH: DragonBreathSimulator,
}


def create_simulator(options: SimOptions | None = None, **overrides: Any) -> SimCore:
    """A simulator for ``options.firmware`` (flat ``overrides`` as in ``SimOptions.apply``)."""
    options = (options or SimOptions()).apply(**overrides)
    personality = PERSONALITIES.get(options.firmware)
    if personality is None:
        raise ValueError(
            f"unknown firmware {options.firmware!r}; use one of {list(PERSONALITIES)}")
    return personality(options)
