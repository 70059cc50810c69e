"""The opt-in KlipperScreen setup's own tests: [heater_panda_breath] + [heater_generic NAME].

The bare ``[heater_panda_breath]`` section registers the ``panda_breath`` sensor
type and pin chip; Klipper's own heater_generic heater runs on them.  What both
setups share is tested once for both in test_klipper_extra.py; the setups and
klippys are in klipper_extra_setups.

In file-output mode klippy's ``estimated_print_time()`` is always 0, so
Klipper's heater never takes a reading in (its smoothing runs on print time):
readings through Klipper's heater are tested in the stand-in MCU mode.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from klipper_extra_setups import (
    GENERIC,
    POLL,
    SET_TARGET,
    UPDATE,
    VERIFY,
    Setup,
    assert_ready,
    generic_section,
    next_target,
    no_more_targets,
    push,
    wait_shutdown,
)
from testbed import wait_until
from testbed.configs import base_printer_cfg
from testbed.klippy import Klippy, KlippyAPIClient, KlippyError

pytest_plugins = ["klipper_extra_setups"]  # the fixtures
CHAMBER = "heater_generic chamber"
DRYER = "heater_generic dryer"
SIDE = "heater_panda_breath side"
DEVICE_STATE = "heater_panda_breath"  # the bare section's object


@pytest.fixture(scope="module")
def setup() -> Setup:
    return GENERIC




def device_state(client: KlippyAPIClient, name: str = "chamber") -> dict[str, Any]:
    return GENERIC.device_state(client, name)


# -- registration, pushes and targets ------------------------------------------------


def test_listed_as_heater_generic_where_klipperscreen_looks(moon: KlippyAPIClient) -> None:
    heaters = moon.query("heaters")
    assert heaters["available_heaters"] == [CHAMBER, DRYER, SIDE]
    assert heaters["available_sensors"] == [CHAMBER, DRYER, SIDE]
    objects = moon.request("objects/list")["objects"]
    assert {CHAMBER, DRYER, SIDE, DEVICE_STATE} <= set(objects)
    # KlipperScreen lists printer.cfg sections named "heater_generic NAME".
    config = moon.query("configfile")["config"]
    assert [name for name in config if name.startswith("heater_generic ")] == [CHAMBER, DRYER]
    status = moon.query(CHAMBER)  # Klipper's own heater (Kalico adds pid_profile)
    assert {key: status[key] for key in ("temperature", "target", "power")} == {
        "temperature": 0.0, "target": 0.0, "power": 0.0,
    }  # fmt: skip


def test_configfile_settings_carry_limits(moon: KlippyAPIClient) -> None:
    settings = moon.query("configfile")["settings"]
    chamber = settings[CHAMBER]
    assert chamber["sensor_type"] == "panda_breath"
    assert chamber["heater_pin"] == "panda_breath:chamber"
    assert chamber["control"] == "watermark"
    assert chamber["min_temp"] == 0.0
    assert chamber["max_temp"] == 80.0
    assert chamber["device_max_temp"] == 60.0  # read from the heater_generic section
    assert chamber["stale_timeout"] == 30.0
    assert settings[DRYER]["max_temp"] == 50.0
    assert settings[DRYER]["stale_timeout"] == 20.0
    assert settings["verify_heater chamber"]["check_gain_time"] == 480.0


def test_update_reply_and_device_state(moon: KlippyAPIClient) -> None:
    st = device_state(moon)
    assert st["heater"] == CHAMBER
    reply = push(
        moon, "chamber", 31.25, heater_on=True, device_target=40, link="connected", fault=None,
        power=1.0, drying=False,  # parameters the extra does not know are ignored
    )  # fmt: skip
    assert reply == {"target": 0.0, "heater": "chamber"}
    assert device_state(moon) == {
        "heater": CHAMBER,
        "temperature": 31.25,
        "power": 1.0,
        "connected": True,
        "heater_on": True,
        "device_target": 40.0,
        "link": "connected",
        "fault": None,
        "external_control": None,
        "forward_error": None,
        "drying": False,
        "drying_remaining": None,
    }
    reply = moon.request(UPDATE, {"heater": "chamber", "link": "disconnected", "fault": "x"})
    assert reply == {"target": 0.0, "heater": "chamber"}
    st = device_state(moon)
    assert st["temperature"] == 31.25 and st["link"] == "disconnected" and st["fault"] == "x"
    assert st["power"] == 0.0 and st["heater_on"] is None  # each push is the full state
    assert push(moon, "side", 22) == {"target": 0.0, "heater": "side"}  # the default setup too
    assert_ready(moon)


def test_out_of_range_target_refused_by_klipper(moon: KlippyAPIClient) -> None:
    push(moon, "chamber", 30)
    with pytest.raises(KlippyError, match=r"out of range \(0.0:80.0\)"):
        moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=81")
    with pytest.raises(KlippyError, match=r"out of range \(0.0:50.0\)"):
        moon.gcode("SET_HEATER_TEMPERATURE HEATER=dryer TARGET=55")
    no_more_targets(moon)
    assert_ready(moon)


def test_target_above_the_device_limit_is_lowered_to_it(moon: KlippyAPIClient) -> None:
    moon.request("gcode/subscribe_output", {"response_template": {"method": "gcode_out"}})
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=70")
    assert next_target(moon, "chamber", timeout=1) == 60.0
    assert moon.query(CHAMBER)["target"] == 60.0
    line = moon.wait_for_notification("gcode_out", lambda p: "device_max_temp" in p["response"])
    assert (
        f"{CHAMBER}: target 70.0 is above the device's limit (device_max_temp 60.0);"
        " target set to 60.0" in line["response"]
    )
    assert push(moon, "chamber", 31) == {"target": 60.0, "heater": "chamber"}
    no_more_targets(moon)


def test_target_below_the_devices_minimum_is_set_to_zero_with_an_error(
    moon: KlippyAPIClient,
) -> None:
    moon.request("gcode/subscribe_output", {"response_template": {"method": "gcode_out"}})
    push(moon, "chamber", 25, min_target=30.0)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=25")
    line = moon.wait_for_notification("gcode_out", lambda p: "refused" in p["response"])
    assert line["response"] == (
        f"!! {CHAMBER}: target 25.0 refused: the device heats only to 30 or more"
        " (0 switches it off); target set to 0")
    wait_until(lambda: moon.query(CHAMBER)["target"] == 0.0, 1.0, what="target 0")
    no_more_targets(moon)  # 25 never reached Moonraker
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=35")
    assert next_target(moon, "chamber", timeout=1) == 35.0
    helix = moon.query("panda_breath")
    assert helix["heater"] == CHAMBER  # the first heater: none is named panda_breath


def test_target_to_remote_method_latency(moon: KlippyAPIClient) -> None:
    """From sending SET_HEATER_TEMPERATURE to the remote method call: within one poll."""
    push(moon, "chamber", 30)
    rng = random.Random(10)
    samples = []
    for i in range(60):
        target = 30.0 + i % 20
        sent = time.monotonic()
        moon.send_request(
            "gcode/script", {"script": f"SET_HEATER_TEMPERATURE HEATER=chamber TARGET={target}"}
        )
        assert next_target(moon, "chamber", timeout=2) == target
        samples.append(time.monotonic() - sent)
        time.sleep(rng.uniform(0, POLL))  # land anywhere in the poll period
    samples.sort()
    median = samples[len(samples) // 2]
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    print(
        f"\ntarget -> {SET_TARGET}: n={len(samples)} median {median * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms, max {samples[-1] * 1000:.0f} ms"
    )
    assert p99 < 0.3, samples


def test_stale_at_target_zero_only_shown_then_stale_while_heating_shuts_down(
    fresh_klippy: Klippy,
) -> None:
    client = fresh_klippy.client()
    client.register_remote_method(SET_TARGET)
    push(client, "idle", 25)
    push(client, "hot", 25)
    client.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=40")
    assert next_target(client, "hot") == 40.0
    # Keep "hot" fed while "idle" (target 0) goes stale.
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:
        push(client, "hot", 26)
        time.sleep(0.25)
    assert_ready(client)
    idle = device_state(client, "idle")
    assert idle["connected"] is False
    # Now starve "hot" while it heats.
    stopped = time.monotonic()
    info = wait_shutdown(client, timeout=8, what="stale shutdown")
    took = time.monotonic() - stopped
    assert 1.5 <= took <= 4.0, took  # stale_timeout 2 s, checked every 0.25 s
    assert "heater_generic hot: no temperature from Moonraker for 2s while heating" in (
        info["state_message"]
    )
    assert next_target(client, "hot") == 0.0


def test_target_set_while_stale_shuts_down_without_forwarding_it(fresh_klippy: Klippy) -> None:
    # Klipper's heater accepts any target in range; the extra cannot refuse it
    # as the default setup does, so the stale rule stops the printer instead.
    client = fresh_klippy.client()
    client.register_remote_method(SET_TARGET)
    time.sleep(2.5)  # stale_timeout since ready, and not a single reading
    client.gcode("SET_HEATER_TEMPERATURE HEATER=idle TARGET=40")
    info = wait_shutdown(client, timeout=2, what="shutdown of a target set while stale")
    assert "heater_generic idle: no temperature received from Moonraker" in info["state_message"]
    assert next_target(client, "idle") == 0.0  # 40 never left Klipper


# -- configuration ---------------------------------------------------------------------

CHAMBER_SECTIONS = generic_section("chamber") + VERIFY.format(name="chamber")
BAD_CONFIGS = [
    (
        "heater_generic above the bare section",
        CHAMBER_SECTIONS + "\n[heater_panda_breath]\n",
        "Unknown temperature sensor 'panda_breath'",
    ),
    ("no bare section", CHAMBER_SECTIONS, "Unknown temperature sensor 'panda_breath'"),
    (
        "no verify_heater",
        "[heater_panda_breath]\n" + generic_section("chamber"),
        "[heater_generic chamber] with sensor_type: panda_breath needs a [verify_heater chamber]"
        " section",
    ),
    (
        "another pin",
        "[heater_panda_breath]\n"
        + generic_section("chamber", heater_pin="PA0")
        + VERIFY.format(name="chamber"),
        "[heater_generic chamber] with sensor_type: panda_breath needs heater_pin:"
        " panda_breath:chamber (not PA0)",
    ),
    (
        "panda_breath pin of another heater",
        "[heater_panda_breath]\n[output_pin x]\npin: panda_breath:chamber\n\n"
        + CHAMBER_SECTIONS,
        "Pin panda_breath:chamber is only the heater_pin of a [heater_generic chamber] section",
    ),
    (
        "sensor type outside heater_generic",
        "[heater_panda_breath]\n[temperature_sensor air]\nsensor_type: panda_breath\n",
        "sensor_type: panda_breath is only for [heater_generic NAME] sections,"
        " not [temperature_sensor air]",
    ),
    (
        "device limit above patched firmware",
        "[heater_panda_breath]\n"
        + generic_section("chamber", device_max_temp=75)
        + VERIFY.format(name="chamber"),
        "Option 'device_max_temp' in section 'heater_generic chamber' must have maximum of 70",
    ),
    (
        "device limit at min_temp",
        "[heater_panda_breath]\n"
        + generic_section("chamber", device_max_temp=10, min_temp=10)
        + VERIFY.format(name="chamber"),
        "[heater_generic chamber]: device_max_temp (10.0) must be above min_temp (10.0)",
    ),
    (
        "name taken by the default setup",
        "[heater_panda_breath chamber]\n\n[heater_panda_breath]\n" + CHAMBER_SECTIONS,
        "Heater chamber already registered",
    ),
]


@pytest.mark.parametrize(
    "section,expected", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_config_errors(tmp_path: Path, section: str, expected: str) -> None:
    klippy = Klippy(tmp_path, base_printer_cfg(tmp_path / "gcodes", section))
    try:
        with pytest.raises(Exception) as err:
            klippy.start(timeout=10)
        assert expected in str(err.value)
    finally:
        klippy.close()


# -- normal mode on the stand-in MCU: Klipper's heater takes the readings -------------------


def test_readings_reach_klippers_heater(sim_moon: KlippyAPIClient) -> None:
    assert push(sim_moon, "chamber", 30.5) == {"target": 0.0, "heater": "chamber"}
    wait_until(
        lambda: sim_moon.query(CHAMBER)["temperature"] == 30.5,
        timeout=3, what="the reading in heater_generic chamber's status",
    )  # fmt: skip
    push(sim_moon, "chamber", 31.0)
    wait_until(
        lambda: sim_moon.query(CHAMBER)["temperature"] == 31.0,
        timeout=3, what="the next reading",
    )  # fmt: skip


def test_fresh_readings_are_repeated_until_stale(sim_moon: KlippyAPIClient) -> None:
    # Klipper's heater reads 0 once a sensor has said nothing for 5 s (7 s in
    # newer Klipper and Kalico).  The extra repeats a reading for its
    # stale_timeout (chamber: 30 s; vh: 2 s), then stops.
    sim_moon.request("gcode/subscribe_output", {"response_template": {"method": "gcode_out"}})
    push(sim_moon, "chamber", 30.5)
    push(sim_moon, "vh", 28)
    pushed = time.monotonic()

    def m105() -> str:
        sim_moon.clear_notifications("gcode_out")
        sim_moon.gcode("M105")
        line = sim_moon.wait_for_notification("gcode_out", lambda p: "V:" in p["response"])
        return str(line["response"])

    time.sleep(4 - (time.monotonic() - pushed))
    assert "V:28.0" in m105()  # vh went stale at 2 s; its last repeat is still valid
    time.sleep(11 - (time.monotonic() - pushed))
    assert "V:0.0" in m105()  # no repeat since ~2 s: Klipper dropped it
    # The chamber (stale_timeout 30) was repeated all along: no wait here.
    started = time.monotonic()
    sim_moon.gcode('TEMPERATURE_WAIT SENSOR="heater_generic chamber" MINIMUM=30', timeout=3)
    assert time.monotonic() - started < 1.0
    assert_ready(sim_moon)
