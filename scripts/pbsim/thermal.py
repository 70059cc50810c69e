"""Lumped two-node thermal model: the PTC heater element and the chamber air.

Why two nodes: the device's relay switches the PTC element, not the air, so the
chamber keeps warming for a while after the relay opens and the element
temperature is a reading of its own (``ptc_temp``). Constants describe a
~300 W PTC blower in a closed printer enclosure: from 22 °C the chamber reaches
45 °C in about 20 minutes with the heater on all the time, and tops out in the
mid sixties, so the firmware's 60 °C ceiling is reachable but slow.

The model integrates on the simulator's *model* clock; callers scale wall time
by the time-scale factor before calling :meth:`ThermalModel.advance`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Longest integration step in model seconds; keeps explicit Euler stable and
#: accurate (the element's time constant is ~12 s with the fan running).
MAX_STEP = 1.0


@dataclass
class ThermalParams:
    """Physical constants of the element, the enclosure and the room."""

    ambient: float = 22.0
    heater_power: float = 300.0  # W while the element is below its switch temperature
    ptc_self_limit_start: float = 100.0  # °C: PTC resistance starts rising here
    ptc_self_limit_zero: float = 150.0  # °C: the element passes no power any more
    ptc_capacity: float = 150.0  # J/K: element with its aluminium fins
    chamber_capacity: float = 11500.0  # J/K: air, panels and printer mass in the enclosure
    coupling_fan: float = 12.0  # W/K element -> air with the blower running
    coupling_still: float = 1.5  # W/K element -> air by natural convection
    chamber_loss: float = 6.25  # W/K enclosure -> room


class ThermalModel:
    """Temperatures of the element and the chamber, advanced in model time."""

    def __init__(self, params: ThermalParams | None = None) -> None:
        self.params = params or ThermalParams()
        self.chamber = self.params.ambient
        self.ptc = self.params.ambient
        self.energy_in = 0.0  # J delivered by the element since start (diagnostics)

    def heater_power(self, relay_on: bool) -> float:
        """Electrical power the element draws now: PTCs limit themselves when hot."""
        if not relay_on:
            return 0.0
        p = self.params
        if self.ptc <= p.ptc_self_limit_start:
            return p.heater_power
        span = p.ptc_self_limit_zero - p.ptc_self_limit_start
        fraction = max(0.0, 1.0 - (self.ptc - p.ptc_self_limit_start) / span)
        return p.heater_power * fraction

    def step(self, dt: float, relay_on: bool, fan_on: bool) -> None:
        """Advance by ``dt`` model seconds (``dt`` <= :data:`MAX_STEP`)."""
        p = self.params
        power = self.heater_power(relay_on)
        coupling = p.coupling_fan if fan_on else p.coupling_still
        to_air = coupling * (self.ptc - self.chamber)
        to_room = p.chamber_loss * (self.chamber - p.ambient)
        self.ptc += dt * (power - to_air) / p.ptc_capacity
        self.chamber += dt * (to_air - to_room) / p.chamber_capacity
        self.energy_in += power * dt

    def set_temperatures(
        self, chamber: float | None = None, ptc: float | None = None, ambient: float | None = None
    ) -> None:
        """Force temperatures (test set-up: "the chamber is already hot")."""
        if ambient is not None:
            self.params.ambient = float(ambient)
        if chamber is not None:
            self.chamber = float(chamber)
        if ptc is not None:
            self.ptc = float(ptc)
