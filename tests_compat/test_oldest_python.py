"""The component on the oldest Python Moonraker supports: 3.7 (older Raspberry Pi images).

A real Moonraker (0.10.0, the newest release that installs on 3.7) on
Python 3.7, built by scripts/bootstrap-klippys when it finds a python3.7
(PATH, pyenv or PYTHON37=...).  Run by the compatibility command
(scripts/test-klippys), not by scripts/test: a stock Debian or Ubuntu has no
Python 3.7.  Without it this test fails and says how to get one; it never skips.
"""

from __future__ import annotations

from pathlib import Path

from testbed import ROOT
from testbed.stack import start_stack

PY37_MOONRAKER = ROOT / ".venvs" / "moonraker-py37" / "bin" / "python"


def test_the_component_runs_in_moonraker_on_python_3_7(tmp_path: Path) -> None:
    assert PY37_MOONRAKER.exists(), (
        f"{PY37_MOONRAKER} missing: scripts/bootstrap-klippys builds it when a python3.7 "
        "exists (e.g. pyenv install 3.7.17, or PYTHON37=/path/to/python3.7, then "
        "scripts/test-klippys)"
    )
    stack = start_stack(tmp_path, moonraker_python=PY37_MOONRAKER)
    try:
        system = stack.moonraker.get("/machine/system_info")["system_info"]
        assert system["python"]["version"][:2] == [3, 7]
        stack.set_target(45)
        stack.wait_sim(lambda s: s["work_on"] is True and s["set_temp"] == 45, timeout=2.0,
                       what="device heating at 45, commanded from Python 3.7")
        assert stack.heater_status()["link"] == "connected"
        stack.moonraker.gcode("TURN_OFF_HEATERS")
        stack.wait_sim(lambda s: s["work_on"] is False, timeout=2.0, what="device off")
        assert stack.device()["link_failures"] == 0
    finally:
        stack.stop()
