"""The quick tier (scripts/test --quick) holds the tests that need no real part, and
only those: its selection is collected here, and it runs with parts forbidden
(test_processes checks that spawn refuses then)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from testbed import ROOT


def _quick_tier() -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "quick",
         "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_quick_tier_is_the_in_process_tests() -> None:
    tier = _quick_tier()
    files = {line.split("::")[0].removeprefix("tests/") for line in tier}
    for expected in ("test_stock_protocol.py", "test_mqtt_protocols.py", "test_controller.py",
                     "test_regulation.py", "test_decoder_properties.py",
                     "test_sim_stock_ws.py", "test_dragonbreath_link.py"):
        assert expected in files
    assert not [f for f in files if f.startswith("test_e2e_") or f == "test_demo.py"]
    # A test that takes a broker, or is marked parts, stays out of a quick file's share.
    assert not [t for t in tier if "stock_mqtt_hostile" in t or "test_cli_serves" in t]
    assert len(tier) > 300


def test_the_readme_command_needs_no_python_3_7() -> None:
    """A stock Debian or Ubuntu has no Python 3.7: that check is the compatibility
    command's (scripts/test-klippys runs tests_compat/), not scripts/test's."""
    assert not [p.name for p in (ROOT / "tests").glob("test_*.py")
                if "moonraker-py37" in p.read_text() and p.name != Path(__file__).name]
    assert "moonraker-py37" in (ROOT / "tests_compat" / "test_oldest_python.py").read_text()
    assert "pytest tests_compat" in (ROOT / "scripts" / "test-klippys").read_text()
    assert "moonraker-py37" not in (ROOT / "scripts" / "bootstrap").read_text()
