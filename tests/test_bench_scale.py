"""``scripts/bench --scale N``: the scale mode runs the real parts and reports what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_scale_mode_reports_costs_traffic_and_convergence() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--scale", "3",
         "--scale-seconds", "12"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {line[:52].strip(): line[52:].split() for line in out.stdout.splitlines()}
    for name in ("moonraker", "klippy"):
        assert len(rows[f"{name} CPU, % of one core"]) == 4
        assert len(rows[f"{name} RSS, MB"]) == 4
    # Steady chamber: keep-alives only (every 10 s at stale_timeout 30), no UI traffic
    pushes = float(rows["pushes into Klipper per device per minute"][0])
    frames = float(rows["device frames per device per minute"][0])
    assert pushes <= 12 and frames >= 25, (pushes, frames)
    assert rows["UI notify_status_update per heater per minute"] == ["0.00"]
    assert rows["notify_panda_breath_status_changed per minute"] == ["0.00", "0.00"]
    for what in ("target 40", "off"):
        done = rows[f"devices converged to {what}"][0]
        assert done == "3/3", out.stdout
    assert re.search(r"per device", out.stdout)
