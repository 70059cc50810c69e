"""HelixScreen's chamber panel against the real stack (issue 13, reference Part C.5).

HelixScreen finds its chamber heater among ``heater_generic``/``temperature_fan``
objects, so the stack runs the KlipperScreen setup with the heater named
``panda_breath``; the extra adds the ``panda_breath`` status object. The reader
(tests/helixscreen.py) lists Moonraker's objects, scores them as HelixScreen
does, subscribes, and turns every status frame into what the panel shows.
"""

from __future__ import annotations

import time

import pytest
from helixscreen import ChamberPanel, HelixReader, discover
from testbed import ROOT, wait_until
from testbed.stack import Stack

HEATER = "heater_generic panda_breath"
EXAMPLE = ROOT / "examples" / "panda_breath_klipperscreen.cfg"


def start(make_stack, firmware: str, **options) -> tuple[Stack, HelixReader]:
    # The stand-in MCU: Klipper's own heater takes readings in on print time.
    stack: Stack = make_stack(firmware, heater_setup="heater_generic", heater="panda_breath",
                              klippy_mcu="sim", **options)
    reader = HelixReader(stack.moonraker.url)
    return stack, reader


def klipper_work_mode(stack: Stack) -> int:
    return stack.moonraker.query({"panda_breath": ["work_mode"]})["panda_breath"]["work_mode"]


def test_discovery_scores_as_helixscreen_does() -> None:
    # Any heater_generic named with "chamber" wins over the panda_breath name;
    # a name containing both is claimed by the generic backend (99 > 95).
    assert discover([HEATER, "panda_breath"]).backend == "panda_breath"
    assert discover([HEATER, "heater_generic chamber"]).heater == "heater_generic chamber"
    assert discover(["heater_generic panda_breath_chamber"]).backend == "generic"
    assert discover(["heater_panda_breath chamber"]).heater is None


@pytest.mark.parametrize("firmware", ["v1.0.3", "stock_mqtt", "esphome", "dragonbreath"])
def test_the_panda_breath_panel_shows_the_chamber_on_every_firmware(
    make_stack, firmware: str
) -> None:
    stack, reader = start(make_stack, firmware)
    try:
        panel = reader.start()
        assert reader.discovery.heater == HEATER
        assert reader.discovery.backend == "panda_breath"
        assert panel.ceiling == 80.0  # max_temp from the heater's section
        reader.wait(lambda p: p.temperature is not None and p.temperature > 0, 5.0,
                    "the chamber temperature")
        assert panel.connected_reports[-1] is True and not panel.offline
        # What HelixScreen sends without an M141 macro: SET_HEATER_TEMPERATURE.
        stack.moonraker.gcode("SET_HEATER_TEMPERATURE HEATER=panda_breath TARGET=43")
        reader.wait(lambda p: p.target == 43.0, 3.0, "the target")
        stack.wait_device(
            lambda d: d["target"] == 43 and d["device_target"] == 43 and d["work_on"]
            and d["work_mode"] == 2, 5.0, what="the device heating to 43 for Klipper")
        assert not panel.external  # Klipper's own heat carries no badge
        stack.moonraker.gcode("TURN_OFF_HEATERS")
        reader.wait(lambda p: p.target == 0.0, 3.0, "target 0")
    finally:
        reader.close()


def test_offline_is_reported_and_helixscreens_four_report_rule(make_stack) -> None:
    stack, reader = start(make_stack, "v1.0.3")
    try:
        panel = reader.start()
        reader.wait(lambda p: p.connected_reports[-1:] == [True], 5.0, "connected")
        stack.sim.control("refuse", seconds=30)
        stack.sim.control("drop")
        reader.wait(lambda p: p.connected_reports[-1:] == [False], 5.0,
                    "connected: false in HelixScreen's frames")
        # Klipper sends a field only when it changes: one report per outage,
        # however long it lasts, so HelixScreen's banner (4 consecutive
        # reports) does not rise; docs/Frontends.md says so.
        time.sleep(3.0)
        assert panel.connected_reports[-1] is False
        assert panel.offline_run == 1 and not panel.offline
        assert stack.heater_status()  # the heater itself is still shown
    finally:
        reader.close()


def test_the_external_control_badge_follows_the_device(make_stack) -> None:
    stack, reader = start(make_stack, "dragonbreath")
    try:
        panel = reader.start()
        reader.wait(lambda p: p.connected_reports[-1:] == [True], 5.0, "connected")
        assert not panel.external
        # The device's web page switches the heater on while Klipper's target is 0.
        stack.sim.control("take_over", source="web", mode="power_on", target=38)
        reader.wait(lambda p: p.external, 3.0, "the external-control badge")
        assert stack.device()["work_mode"] == 1
        # Klipper's next target takes the device back. The switch from 1 to 2
        # changes work_mode alone (work_on stays true); HelixScreen reads its
        # badge only from a frame carrying both fields and Klipper sends only
        # changed fields, so the badge stays until the next switch on or off
        # (docs/Frontends.md says so).
        stack.moonraker.gcode("SET_HEATER_TEMPERATURE HEATER=panda_breath TARGET=40")
        stack.wait_sim(lambda s: s["mode"] == "power_on" and s["requested_c"] == 40, 3.0,
                       what="Klipper's target again")
        stack.wait_device(lambda d: d["work_mode"] == 2, 3.0, what="work_mode 2")
        wait_until(lambda: klipper_work_mode(stack) == 2, 3.0, what="work_mode 2 in Klipper")
        stack.moonraker.gcode("TURN_OFF_HEATERS")
        stack.wait_sim(lambda s: s["mode"] == "off", 3.0, what="off")
        reader.wait(lambda p: not p.external, 3.0, "the badge gone")
    finally:
        reader.close()


def example_macros(heater: str) -> str:
    """The example file's macro sections, driving ``heater`` (its heater sections left out)."""
    text = EXAMPLE.read_text()
    sections = ["[" + part for part in text.split("\n[")[1:] if part.startswith("gcode_macro ")]
    return "\n".join(sections).replace('variable_heater: "chamber"', f'variable_heater: "{heater}"')


def console(stack: Stack) -> list[str]:
    return [line["message"] for line in
            stack.moonraker.get("/server/gcode_store?count=30")["gcode_store"]]


@pytest.mark.parametrize("firmware", ["v1.0.3", "dragonbreath"])
def test_helixscreens_dryer_commands_and_the_countdown(make_stack, firmware: str) -> None:
    stack, reader = start(make_stack, firmware, printer_extra=example_macros("panda_breath"))
    try:
        panel: ChamberPanel = reader.start()
        assert not panel.drying
        # Refused while Klipper heats: an error line in the console.
        stack.set_target(40)
        stack.wait_device(lambda d: d["target"] == 40, 2.0, what="Klipper's target")
        stack.moonraker.gcode("PANDA_BREATH_DRY_START TEMP=50 HOURS=3")
        wait_until(lambda: any("drying not started: Klipper heats the chamber" in line
                               for line in console(stack)), 3.0, what="the refusal")
        stack.moonraker.gcode("TURN_OFF_HEATERS")
        # HelixScreen reads its badge only from a frame carrying both work_mode
        # and work_on: a start before the device reported off would change
        # work_mode alone (2 -> 3 with work_on staying true), the lag the
        # docs/Frontends.md documents.  Wait for the off, as a user's second tap would.
        stack.wait_device(lambda d: d["work_mode"] == 0, 3.0, what="the device off")
        reader.wait(lambda p: p.work_on_reports[-1:] == [False], 3.0, "the panel told off")
        # What HelixScreen's dryer sends.
        stack.moonraker.gcode("PANDA_BREATH_DRY_START TEMP=50 HOURS=3")
        reader.wait(lambda p: p.drying and p.drying_remaining_s, 5.0, "drying shown")
        assert panel.drying_target_c == 50 and panel.drying_duration_min == 180
        first = panel.drying_remaining_s
        assert first is not None and 3 * 3600 - 120 <= first <= 3 * 3600
        reader.wait(lambda p: (p.drying_remaining_s or first) < first, 3.0,
                    "the countdown running")
        # HelixScreen badges any heat that is not Klipper's target (work_mode 3).
        assert panel.external
        stack.moonraker.gcode("PANDA_BREATH_DRY_STOP")
        reader.wait(lambda p: not p.drying, 5.0, "drying stopped")
    finally:
        reader.close()
