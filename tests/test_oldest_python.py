"""The component on the oldest Python Moonraker supports: 3.7 (older Raspberry Pi images).

A real Moonraker (0.10.0, the newest release that installs on 3.7) on
Python 3.7, built by scripts/bootstrap when it finds a python3.7 (PATH,
pyenv or PYTHON37=...).  Without it this test fails; it never skips.
"""

from __future__ import annotations

from testbed import ROOT
from testbed.stack import Stack

PY37_MOONRAKER = ROOT / ".venvs" / "moonraker-py37" / "bin" / "python"


def test_the_component_runs_in_moonraker_on_python_3_7(make_stack) -> None:
    assert PY37_MOONRAKER.exists(), (
        f"{PY37_MOONRAKER} missing: scripts/bootstrap builds it when a python3.7 exists "
        "(e.g. pyenv install 3.7.16, or PYTHON37=/path/to/python3.7)"
    )
    stack: Stack = make_stack(moonraker_python=PY37_MOONRAKER)
    system = stack.moonraker.get("/machine/system_info")["system_info"]
    assert system["python"]["version"][:2] == [3, 7]
    stack.set_target(45)
    stack.wait_sim(lambda s: s["work_on"] is True and s["set_temp"] == 45, timeout=2.0,
                   what="device heating at 45, commanded from Python 3.7")
    assert stack.heater_status()["link"] == "connected"
    stack.moonraker.gcode("TURN_OFF_HEATERS")
    stack.wait_sim(lambda s: s["work_on"] is False, timeout=2.0, what="device off")
    assert stack.device()["link_failures"] == 0
