"""scripts/demo opens in Mainsail, Fluidd and KlipperScreen with no warnings, and
stops everything it started, however it is stopped.

The demo is started as a newcomer starts it (``scripts/demo.py``, which
``scripts/demo`` runs after bootstrap) and asked what the three UIs ask on
connect: Moonraker's ``/server/info`` (warnings, failed components, missing
Klipper requirements: Mainsail's bell, Fluidd's "Moonraker warnings",
KlipperScreen's popup), Klipper's configfile (its warnings, and the sections
Mainsail's "Missing configuration" and Fluidd's checks look for), and CORS
for a UI served on this machine. It is stopped as a person stops it (Ctrl-C,
a hung-up terminal), as a service manager does (SIGTERM), and killed (SIGKILL):
each time no part of it may be left running.
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
from testbed.processes import RUN_TAG, kill_tagged, spawn, tagged_processes

#: How the demo is stopped: the signals it must answer with an orderly stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _ignore_stop_signals() -> None:
    """As a background job of a script, or nohup, starts it: it must stop all the same."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)

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
    def __init__(self, workdir: Path, firmware: str, *options: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.output = workdir.parent / f"demo-{firmware}.out"
        self.out = open(self.output, "w")
        # Its own tag under this run's: what it starts is found and counted apart.
        self.tag = f"{os.environ[RUN_TAG]}.{workdir.parent.name}"
        self.proc = spawn(
            [python_executable(), str(DEMO), "--moonraker-port", str(self.port),
             "--firmware", firmware, "--workdir", str(workdir), *options],
            stdout=self.out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", RUN_TAG: self.tag},
            preexec=_ignore_stop_signals,
        )  # fmt: skip
        # The client only: the demo's own Moonraker answers on this port.
        self.moonraker = Moonraker(workdir / "client", "", port=self.port)

    def text(self) -> str:
        return self.output.read_text()

    def parts(self) -> list[str]:
        """The command lines of the demo's processes still alive (itself included)."""
        return [cmdline for _, cmdline in tagged_processes(self.tag)]

    def wait_running(self, timeout: float = 60.0) -> None:
        def running() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited {self.proc.returncode}:\n{self.text()}")
            return "stops everything" in self.text()

        wait_until(running, timeout, 0.1, "the demo to print its banner")

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        """Stop it with ``sig``; return its exit code once no part of it is left."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(30)
            wait_until(lambda: self.parts() == [], 10.0, 0.1, "the demo's parts to exit")
            return code
        finally:
            left = self.parts()
            kill_tagged(self.tag)
            if self.proc.poll() is None:
                self.proc.kill()
            self.out.close()
            assert left == [], f"the demo left these running after {sig.name}: {left}"


@pytest.fixture(scope="module", params=[("v1.0.3", signal.SIGINT), ("esphome", signal.SIGTERM)],
                ids=["v1.0.3-ctrl-c", "esphome-sigterm"])
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    """One demo per firmware (a WebSocket one and an MQTT one), shared by the tests; one
    stopped as a person does (Ctrl-C), the other as a service manager does (SIGTERM)."""
    firmware, stop_with = request.param
    running = Demo(tmp_path_factory.mktemp(f"demo-{firmware}") / "demo", firmware)
    try:
        running.wait_running()
        yield running
    finally:
        code = running.stop(stop_with)
    assert code == 0, running.text()
    assert f"{stop_with.name}: stopping..." in running.text()


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
    # The demo's default is the recommended setup: [heater_panda_breath chamber].
    heater = moonraker.query({"heater_panda_breath chamber": ["target"]})
    assert heater["heater_panda_breath chamber"]["target"] == 0
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


def test_the_heater_generic_setup_and_a_hangup(tmp_path: Path) -> None:
    """--setup heater_generic (old name: klipperscreen) runs [heater_generic chamber];
    a hung-up terminal (SIGHUP) stops the demo in order."""
    running = Demo(tmp_path / "demo", "v1.0.3", "--setup", "klipperscreen")
    try:
        running.wait_running()
        heater = running.moonraker.query({"heater_generic chamber": ["target"]})
        assert heater["heater_generic chamber"]["target"] == 0
    finally:
        code = running.stop(signal.SIGHUP)
    assert code == 0, running.text()


def test_a_killed_demo_leaves_nothing_running(tmp_path: Path) -> None:
    running = Demo(tmp_path / "demo", "stock_mqtt")
    try:
        running.wait_running()
        names = " ".join(running.parts())
        for part in ("moonraker", "klippy", "mosquitto", "panda_breath_sim"):
            assert part in names, f"{part} not among the demo's processes: {names}"
    finally:
        running.stop(signal.SIGKILL)
