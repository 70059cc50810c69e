"""scripts/demo opens in Mainsail, Fluidd and KlipperScreen with no warnings.

The demo is started as a newcomer starts it (``scripts/demo.py``, which
``scripts/demo`` runs after bootstrap) and asked what the three UIs ask on
connect: Moonraker's ``/server/info`` (warnings, failed components, missing
Klipper requirements: Mainsail's bell, Fluidd's "Moonraker warnings",
KlipperScreen's popup), Klipper's configfile (its warnings, and the sections
Mainsail's "Missing configuration" and Fluidd's checks look for), and CORS
for a UI served on this machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from testbed import ROOT, free_port, python_executable, wait_until
from testbed.moonraker import Moonraker

DEMO = ROOT / "scripts" / "demo.py"
#: Mainsail 2.18 (printer/checkNecessaryConfig, compared lower-case) plus
#: display_status, which it accepts in place of [display].
MAINSAIL_NEEDS = (
    "virtual_sdcard", "pause_resume", "gcode_macro pause", "gcode_macro resume",
    "gcode_macro cancel_print", "display_status",
)
#: Fluidd 1.37 (getPrinterWarnings), compared as written.
FLUIDD_NEEDS = ("virtual_sdcard", "pause_resume", "display_status", "gcode_macro CANCEL_PRINT")


class Demo:
    def __init__(self, workdir: Path, firmware: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.output = workdir.parent / f"demo-{firmware}.out"
        self.out = open(self.output, "w")
        self.proc = subprocess.Popen(
            [python_executable(), str(DEMO), "--moonraker-port", str(self.port),
             "--firmware", firmware, "--workdir", str(workdir)],
            stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # As a background job of a script starts it: Ctrl-C must still stop it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )  # fmt: skip
        # The client only: the demo's own Moonraker answers on this port.
        self.moonraker = Moonraker(workdir / "client", "", port=self.port)

    def text(self) -> str:
        return self.output.read_text()

    def wait_running(self, timeout: float = 60.0) -> None:
        def running() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited {self.proc.returncode}:\n{self.text()}")
            return "Ctrl-C stops everything" in self.text()

        wait_until(running, timeout, 0.1, "the demo to print its banner")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.out.close()


@pytest.fixture(scope="module", params=["v1.0.3", "esphome"])
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    """One demo per firmware (a WebSocket one and an MQTT one), shared by the tests."""
    running = Demo(tmp_path_factory.mktemp(f"demo-{request.param}") / "demo", request.param)
    try:
        running.wait_running()
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.text()


def origin_allowed(url: str, origin: str) -> str | None:
    request = urllib.request.Request(url + "/server/info", headers={"Origin": origin})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("Access-Control-Allow-Origin")


def test_the_demo_opens_with_no_warnings_in_any_ui(demo: Demo) -> None:
    moonraker = demo.moonraker
    assert f"Moonraker:  http://127.0.0.1:{demo.port}" in demo.text()
    info = moonraker.get("/server/info?raw=true")
    assert info["klippy_state"] == "ready"
    assert info["warnings"] == [], json.dumps(info["warnings"], indent=1)
    assert info["failed_components"] == []
    assert info["missing_klippy_requirements"] == []
    configfile = moonraker.query({"configfile": ["config", "warnings"]})["configfile"]
    assert configfile["warnings"] == []
    sections = set(configfile["config"])
    assert not [s for s in MAINSAIL_NEEDS if s not in {n.lower() for n in sections}]
    assert not [s for s in FLUIDD_NEEDS if s not in sections]
    # The macros run, and cancelling a print turns the chamber off as well.
    moonraker.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=40")
    moonraker.gcode("PAUSE")
    moonraker.gcode("RESUME")
    moonraker.gcode("CANCEL_PRINT")
    # The demo's default is the KlipperScreen setup: [heater_generic chamber].
    heater = moonraker.query({"heater_generic chamber": ["target"]})
    assert heater["heater_generic chamber"]["target"] == 0
    # Still none a few seconds on (the component has had its first exchanges).
    time.sleep(2)
    assert moonraker.get("/server/info?raw=true")["warnings"] == []


def test_the_demo_lays_out_printer_data_as_a_printer_has_it(demo: Demo) -> None:
    data = demo.workdir / "printer_data"
    for folder in ("config", "logs", "gcodes", "database"):
        assert (data / folder).is_dir(), folder
    klippy = demo.moonraker.get("/printer/info")
    assert Path(klippy["config_file"]) == data / "config" / "printer.cfg"
    assert Path(klippy["log_file"]) == data / "logs" / "klippy.log"
    config = {f["path"] for f in demo.moonraker.get("/server/files/list?root=config")}
    assert {"printer.cfg", "moonraker.conf", "macros.cfg", "panda_breath_macros.cfg"} <= config
    printer_cfg = (data / "config" / "printer.cfg").read_text()
    assert re.search(rf"^path: {re.escape(str(data / 'gcodes'))}$", printer_cfg, re.M)
    assert "[include panda_breath_macros.cfg]" in printer_cfg
    logs = {f["path"] for f in demo.moonraker.get("/server/files/list?root=logs")}
    assert {"klippy.log", "moonraker.log"} <= logs
    roots = {r["name"] for r in demo.moonraker.get("/server/files/roots")}
    assert {"config", "gcodes", "logs", "config_examples", "docs"} <= roots


def test_a_ui_served_on_localhost_may_talk_to_the_demo(demo: Demo) -> None:
    url = demo.moonraker.url
    for origin in ("http://localhost:8080", "http://localhost", "http://127.0.0.1:8080",
                   "https://my.mainsail.xyz", "http://app.fluidd.xyz"):
        assert origin_allowed(url, origin) == origin, origin
    assert origin_allowed(url, "http://example.com") is None
