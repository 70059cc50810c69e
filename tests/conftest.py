"""Fixtures that assemble the real stack: simulator, klippy + extra, Moonraker + component.

Every part is a real process on loopback; nothing is mocked.  A part that is
missing (no venv, no mosquitto) makes the test fail, never skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from testbed import wait_until
from testbed.configs import panda_section, printer_cfg
from testbed.klippy import Klippy
from testbed.moonraker import Moonraker
from testbed.sim import SimProcess


@dataclass
class Stack:
    """The three processes of one end-to-end test, and shortcuts to drive them."""

    workdir: Path
    sim: SimProcess
    klippy: Klippy
    moonraker: Moonraker
    stopped: list[Any] = field(default_factory=list)

    def sim_state(self) -> dict[str, Any]:
        return self.sim.state()

    def wait_sim(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
                 what: str = "simulator state") -> dict[str, Any]:
        return wait_until(lambda: (s := self.sim.state()) and predicate(s) and s, timeout, 0.05,
                          what)

    def heater_status(self) -> dict[str, Any]:
        return self.moonraker.query({"heater_panda_breath chamber": None})[
            "heater_panda_breath chamber"
        ]

    def device(self) -> dict[str, Any]:
        return self.moonraker.panda_status("panda_breath")

    def logs(self) -> str:
        return self.moonraker.log_text() + "\n" + self.klippy.log_text()


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Build a stack; options choose the simulator firmware, time scale and timings."""
    started: list[Any] = []

    def build(
        firmware: str = "v1.0.3",
        time_scale: float = 30.0,
        sim_args: tuple[str, ...] = (),
        stale_timeout: float = 30.0,
        panda_options: dict[str, Any] | None = None,
        extra_moonraker_config: str = "",
        start_moonraker: bool = True,
    ) -> Stack:
        sim = SimProcess(tmp_path / "sim", firmware=firmware, time_scale=time_scale,
                         extra_args=sim_args)
        sim.start()
        started.append(sim)
        klippy = Klippy(
            tmp_path / "klippy", printer_cfg(tmp_path / "gcodes", stale_timeout=stale_timeout)
        )
        klippy.start()
        started.append(klippy)
        moonraker = Moonraker(
            tmp_path / "moonraker",
            klippy.socket_path,
            extra_config=panda_section(sim.port, **(panda_options or {})) + extra_moonraker_config,
        )
        stack = Stack(tmp_path, sim, klippy, moonraker)
        if start_moonraker:
            moonraker.start()
            started.append(moonraker)
            moonraker.wait_component_ready()
        else:
            started.append(moonraker)
        return stack

    yield build
    for part in reversed(started):
        try:
            part.stop()
        except Exception:  # noqa: BLE001 - keep tearing down the rest
            pass
