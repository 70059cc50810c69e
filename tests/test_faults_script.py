"""``scripts/faults --quick``: the CI subset of the fault suite passes and reports every row.

The suite starts the real parts itself (simulator, klippy, Moonraker,
Mosquitto); this test only runs the script as a user would and reads its
table and its JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import faults
import pytest
from panda_breath.config import DeviceConfig
from pbsim.secrets import SECRET_AP_PASSWORD, SECRET_WIFI_PASSWORD
from testbed import ROOT
from testbed.faultsuite import (
    DB_STREAM_SILENCE,
    DB_TOKEN,
    FAULTS_BY_NAME,
    MQTT_HANG_S,
    MQTT_SILENCE_SEEN,
    REASSERT_INTERVAL,
    RECONNECT_MAX_DELAY,
    SILENCE_TIMEOUT,
    LogWatch,
)


def quick_rows() -> set[tuple[str, str]]:
    rows = set()
    for firmware, names in faults.QUICK_FAULTS.items():
        for name in faults.select_faults(list(names)):
            for row in FAULTS_BY_NAME[name].rows:
                rows.add((row, firmware))
    return rows


def test_quick_subset_covers_every_fault_kind() -> None:
    covered = {row for row, _ in quick_rows()}
    # Only the slow rows are left to the full run.
    assert set(faults.ROW_NAMES) - covered == {"silent-socket"}
    assert set(faults.QUICK_FAULTS) == set(faults.QUICK_FIRMWARES)
    # DragonBreath's own risks run in CI: the lease watchdog and other controllers.
    assert {"host-killed", "host-killed-restart", "takeover-web", "takeover-button",
            "connection-reset"} <= {row for row, fw in quick_rows() if fw == "dragonbreath"}


def test_the_suites_bounds_assume_the_components_default_timings() -> None:
    """The suite runs the component at its defaults; its bounds are computed from these."""
    defaults = DeviceConfig("panda_breath", "panda_breath")
    assert (SILENCE_TIMEOUT, RECONNECT_MAX_DELAY, REASSERT_INTERVAL) == (
        defaults.silence_timeout, defaults.reconnect_max_delay, defaults.reassert_interval)
    # The hung MQTT device stays stopped past the moment its silence must be seen.
    assert MQTT_SILENCE_SEEN < MQTT_HANG_S
    # DragonBreath's stream-silence limit, as dragonbreath_stream computes it.
    assert DB_STREAM_SILENCE == min(6.0, SILENCE_TIMEOUT / 2)


def test_log_scan_finds_secrets_raw_frames_and_shutdowns(tmp_path: Path) -> None:
    paths = {name: tmp_path / name for name in ("m.log", "m.out", "k.log", "k.out")}
    for path in paths.values():
        path.write_text("start\n")
    stack = SimpleNamespace(
        moonraker=SimpleNamespace(log_path=paths["m.log"], stdout_path=paths["m.out"]),
        klippy=SimpleNamespace(log_path=paths["k.log"], output_path=paths["k.out"]),
    )
    watch = LogWatch(stack)  # type: ignore[arg-type]
    mark = watch.mark()
    with open(paths["m.log"], "a") as f:
        # Moonraker's own dump of its configuration (the DragonBreath token in it) is not ours.
        f.write(f"\n{'#' * 20} Moonraker Configuration {'#' * 20}\n\n[panda_breath]\n"
                f"token: {DB_TOKEN}\n{'#' * 65}\nAll Configuration Files:\n")
        f.write(f'got {{"settings":{{"wifi":{{"password":"{SECRET_WIFI_PASSWORD}"}}}}}}\n')
    with open(paths["k.log"], "a") as f:
        f.write("Transition to shutdown state: Panda Breath stale\n")
        f.write(f"{SECRET_AP_PASSWORD}\n")
    shutdowns, found = watch.scan(mark)
    assert shutdowns == ["Panda Breath stale"]
    assert found["wifi password in m.log"] == 1
    assert found["ap password in k.log"] == 1
    assert found['raw frame {"settings": in m.log'] == 1
    assert not any("token" in name for name in found)
    # What was there before the mark does not count again.
    assert watch.scan(watch.mark()) == ([], {})


@pytest.mark.timeout(300)
def test_quick_fault_suite_passes_and_lists_every_row(tmp_path: Path) -> None:
    report = tmp_path / "faults.json"
    done = subprocess.run(
        [str(ROOT / "scripts" / "faults"), "--quick", "--json", str(report),
         "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=330,
    )
    detail = f"stdout:\n{done.stdout}\nstderr (tail):\n{done.stderr[-4000:]}"
    assert done.returncode == 0, detail
    table = [line.split() for line in done.stdout.splitlines()]
    listed = {(cells[0], cells[1]) for cells in table if len(cells) > 2}
    missing = quick_rows() - listed
    assert not missing, f"rows missing from the table: {sorted(missing)}\n{detail}"
    assert any(cells[:2] == ["soak", "1"] for cells in table), detail

    data = json.loads(report.read_text())
    assert data["ok"] is True
    # The short Wi-Fi soak: awful, with its 20 s stall, one bridge session at most.
    wifi = [r for r in data["rows"] if r["fault"].startswith("wifi-soak")]
    assert [r["status"] for r in wifi] == ["ok"], wifi
    (run,) = data["wifi"]
    assert run["profile"] == "awful" and run["ok"] and run["several_s"] <= 0.5, run
    assert 20.0 in [s["seconds"] for s in run["stalls"]], run["stalls"]
    rows = {(r["fault"], r["firmware"]): r for r in data["rows"] if r not in wifi}
    assert set(rows) == quick_rows()
    for key, row in rows.items():
        if key[0] == "name-resolution" and os.geteuid() != 0:
            # A private /etc/hosts needs a mount namespace, i.e. root.
            assert row["status"] == "not run" and "root" in row["reason"], (key, row)
            continue
        assert row["status"] in ("ok", "documented"), (key, row)
        assert row["shutdowns"] == 0 and row["secrets"] == 0, (key, row)
    # Stock firmware has no watchdog: recorded as what it is, not as a pass.
    assert rows[("moonraker-kill", "v1.0.3")]["ended"] == "heats on"
    assert rows[("moonraker-kill", "esphome")]["status"] == "ok"
    # DragonBreath: its own watchdog switched it off, latched, and only the user cleared it.
    assert rows[("host-killed", "dragonbreath")]["ended"] == "OFF, lease expired"
    assert rows[("host-killed-restart", "dragonbreath")]["status"] == "ok"
    assert rows[("takeover-web", "dragonbreath")]["status"] == "ok"
    assert rows[("takeover-button", "dragonbreath")]["status"] == "ok"
    soak = data["soak"]
    assert soak["ok"] is True and soak["hours"] == 1.0, soak
