"""Moonraker component for the BIQU Panda Breath chamber heater.

Moonraker imports this package as ``moonraker.components.panda_breath`` when
moonraker.conf has a ``[panda_breath]`` or ``[panda_breath NAME]`` section.
The protocol modules import nothing from Moonraker, so they can be tested
and reused on their own; only ``load_component`` pulls in the component.
"""

from __future__ import annotations

from typing import Any


def load_component(config: Any) -> Any:
    from .component import PandaBreath

    return PandaBreath(config)
