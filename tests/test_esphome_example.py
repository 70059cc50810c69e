"""The example ESPHome firmware validates with the real ``esphome config``."""

from __future__ import annotations

import subprocess

from testbed import ROOT


def test_example_firmware_validates_with_esphome() -> None:
    # First run installs ESPHome into .venvs/esphome (about a minute); later runs take <1 s.
    result = subprocess.run(
        [str(ROOT / "scripts" / "check_esphome_example")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "is valid for ESPHome" in result.stdout
