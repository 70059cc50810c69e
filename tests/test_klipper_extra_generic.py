"""The opt-in KlipperScreen setup in a real klippy: [heater_panda_breath] + [heater_generic NAME].

The bare ``[heater_panda_breath]`` section registers the ``panda_breath`` sensor
type and pin chip; Klipper's own heater_generic heater runs on them. The test
client plays Moonraker as in test_klipper_extra.py: it registers
``panda_breath_set_target`` and pushes readings to ``heater_panda_breath/update``.

The extra reads the heater's target through the public ``get_temp()`` every
0.25 s, so a target reaches the remote method within one poll, not at once.

In file-output mode klippy's ``estimated_print_time()`` is always 0, so
Klipper's heater never takes a reading in (its smoothing runs on print time):
readings through Klipper's heater are tested in the stand-in MCU mode.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed import ROOT, wait_until
from testbed.configs import base_printer_cfg, printer_cfg
from testbed.klippy import Klippy, KlippyAPIClient, KlippyError

SET_TARGET = "panda_breath_set_target"
UPDATE = "heater_panda_breath/update"
CHAMBER = "heater_generic chamber"
DRYER = "heater_generic dryer"
SIDE = "heater_panda_breath side"
DEVICE_STATE = "heater_panda_breath"  # the bare section's object
POLL = 0.25  # the extra's target poll interval

VERIFY = """
[verify_heater {name}]
check_gain_time: 480
heating_gain: 1
hysteresis: 10
max_error: 600
"""


def generic_section(name: str, **options: Any) -> str:
    values: dict[str, Any] = {
        "sensor_type": "panda_breath",
        "heater_pin": f"panda_breath:{name}",
        "control": "watermark",
        "min_temp": 0,
        "max_temp": 80,
    }
    values.update(options)
    body = "\n".join(f"{key}: {value}" for key, value in values.items() if value is not None)
    return f"[heater_generic {name}]\n{body}\n"


# The testbed's opt-in setup for "chamber", a second generic heater and a
# default-setup heater next to them (one update endpoint serves all).
MAIN_EXTRA = (
    generic_section("dryer", max_temp=50, stale_timeout=20)
    + VERIFY.format(name="dryer")
    + "\n[heater_panda_breath side]\n"
)

STALE_HEATERS = (
    "[heater_panda_breath]\n\n"
    + generic_section("hot", stale_timeout=2)
    + VERIFY.format(name="hot")
    + "\n"
    + generic_section("idle", stale_timeout=2)
    + VERIFY.format(name="idle")
)

EXAMPLE = ROOT / "examples" / "panda_breath_klipperscreen.cfg"
# The shipped example (chamber, its verify_heater, M141/M191) plus a heater
# with a quick-tripping verify_heater, an M105 id and a short stale_timeout.
SIM_HEATERS = (
    f"[include {EXAMPLE}]\n\n"
    + generic_section("vh", gcode_id="V", stale_timeout=2)
    + """
[verify_heater vh]
check_gain_time: 2
heating_gain: 1
hysteresis: 5
max_error: 30
"""
)


# -- fixtures -------------------------------------------------------------------


def reset_to_ready(klippy: Klippy, script: str) -> None:
    """Back to ready with all targets 0; waits out the poll so no late 0 reaches the next test."""
    info = klippy.wait_state(["ready", "shutdown", "error"], timeout=5)
    if info["state"] != "ready":
        klippy.restart("FIRMWARE_RESTART")
    with klippy.client() as client:
        client.register_remote_method(SET_TARGET)
        client.gcode(script)
        time.sleep(POLL + 0.15)


@pytest.fixture(scope="module")
def main_klippy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Klippy]:
    workdir = tmp_path_factory.mktemp("klippy-generic")
    cfg = printer_cfg(workdir / "gcodes", setup="klipperscreen", extra=MAIN_EXTRA)
    klippy = Klippy(workdir, cfg)
    klippy.start()
    yield klippy
    klippy.close()


@pytest.fixture
def klippy(main_klippy: Klippy) -> Iterator[Klippy]:
    yield main_klippy
    reset_to_ready(main_klippy, "TURN_OFF_HEATERS")


@pytest.fixture
def moon(klippy: Klippy) -> Iterator[KlippyAPIClient]:
    """A client in Moonraker's place: it receives panda_breath_set_target calls."""
    client = klippy.client()
    client.register_remote_method(SET_TARGET)
    yield client
    client.close()


@pytest.fixture
def fresh_klippy(tmp_path: Path) -> Iterator[Klippy]:
    """A klippy of its own (stale_timeout 2 s) for tests that shut down or need a pristine state."""
    klippy = Klippy(tmp_path, base_printer_cfg(tmp_path / "gcodes", STALE_HEATERS))
    klippy.start()
    yield klippy
    klippy.close()


@pytest.fixture(scope="module")
def sim_klippy_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Klippy]:
    workdir = tmp_path_factory.mktemp("klippy-generic-sim")
    klippy = Klippy(workdir, base_printer_cfg(workdir / "gcodes", SIM_HEATERS), mcu="sim")
    klippy.start()
    yield klippy
    klippy.close()


@pytest.fixture
def sim_klippy(sim_klippy_process: Klippy) -> Iterator[Klippy]:
    yield sim_klippy_process
    reset_to_ready(sim_klippy_process, "TURN_OFF_HEATERS\nSET_IDLE_TIMEOUT TIMEOUT=600")


@pytest.fixture
def sim_moon(sim_klippy: Klippy) -> Iterator[KlippyAPIClient]:
    client = sim_klippy.client()
    client.register_remote_method(SET_TARGET)
    yield client
    client.close()


# -- helpers ----------------------------------------------------------------------


def push(client: KlippyAPIClient, heater: str, temperature: Any, **extra: Any) -> Any:
    return client.request(UPDATE, {"heater": heater, "temperature": temperature, **extra})


def next_target(client: KlippyAPIClient, heater: str, timeout: float = 2.0) -> float:
    """The target of the next panda_breath_set_target call for ``heater``."""
    params = client.wait_for_notification(
        SET_TARGET, lambda p: p.get("heater") == heater, timeout=timeout
    )
    assert set(params) == {"heater", "target"}
    assert isinstance(params["target"], float)
    return float(params["target"])


def no_more_targets(client: KlippyAPIClient, heater: str | None = None) -> None:
    """Nothing (more) was forwarded, waiting out two polls."""
    time.sleep(2 * POLL + 0.1)
    calls = client.notifications(SET_TARGET)
    assert [p for p in calls if heater is None or p.get("heater") == heater] == []


def device_state(client: KlippyAPIClient, name: str = "chamber") -> dict[str, Any]:
    return dict(client.query(DEVICE_STATE)[name])


def assert_ready(client: KlippyAPIClient) -> None:
    info = client.info()
    assert info["state"] == "ready", info["state_message"]


def wait_shutdown(client: KlippyAPIClient, timeout: float, what: str) -> dict[str, Any]:
    return wait_until(
        lambda: (info := client.info())["state"] == "shutdown" and info, timeout=timeout, what=what
    )


# -- registration: what the front ends and Moonraker see ------------------------------


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
        "last_update_age": 0.0,
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


@pytest.mark.parametrize(
    "params",
    [
        {"heater": "chamber", "temperature": "30"},
        {"heater": "chamber", "temperature": 30, "power": 2},
        {"heater": "chamber", "temperature": 30, "heater_on": 1},
        {"heater": "garage", "temperature": 30},
        {"heater": ["chamber"], "temperature": 30},
    ],
    ids=["string temperature", "power above 1", "int heater_on", "unknown heater", "list heater"],
)
def test_bad_update_gets_error_reply_and_changes_nothing(
    moon: KlippyAPIClient, params: dict[str, Any]
) -> None:
    push(moon, "chamber", 22, link="connected")
    with pytest.raises(KlippyError):
        moon.request(UPDATE, params)
    assert_ready(moon)
    st = device_state(moon)
    assert st["temperature"] == 22.0 and st["link"] == "connected"


# -- targets out --------------------------------------------------------------------


def test_set_heater_temperature_in_both_spellings_is_forwarded(moon: KlippyAPIClient) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45")
    assert next_target(moon, "chamber", timeout=1) == 45.0
    # KlipperScreen's form, exactly as it sends it
    moon.gcode('SET_HEATER_TEMPERATURE heater="chamber" target=40')
    assert next_target(moon, "chamber", timeout=1) == 40.0
    assert moon.query(CHAMBER)["target"] == 40.0
    assert push(moon, "chamber", 31) == {"target": 40.0, "heater": "chamber"}
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber")  # no TARGET means 0
    assert next_target(moon, "chamber", timeout=1) == 0.0
    no_more_targets(moon)  # one call per change


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


def test_turn_off_heaters_forwards_zero_for_every_heater(moon: KlippyAPIClient) -> None:
    for heater in ("chamber", "dryer", "side"):
        push(moon, heater, 30)
    moon.gcode(
        "SET_HEATER_TEMPERATURE HEATER=chamber TARGET=50\n"
        "SET_HEATER_TEMPERATURE HEATER=dryer TARGET=45\n"
        "SET_HEATER_TEMPERATURE HEATER=side TARGET=40"
    )
    assert next_target(moon, "chamber") == 50.0
    assert next_target(moon, "dryer") == 45.0
    assert next_target(moon, "side") == 40.0
    moon.gcode("TURN_OFF_HEATERS")
    assert next_target(moon, "chamber") == 0.0
    assert next_target(moon, "dryer") == 0.0
    assert next_target(moon, "side") == 0.0
    assert moon.query(CHAMBER)["target"] == 0.0


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


# -- shutdown, restart, emergency stop ------------------------------------------------


def test_m112_forwards_zero_and_clears_klippers_target(moon: KlippyAPIClient) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45")
    assert next_target(moon, "chamber") == 45.0
    moon.gcode("M112")
    assert next_target(moon, "chamber") == 0.0
    assert next_target(moon, "dryer") == 0.0
    assert next_target(moon, "side") == 0.0
    assert moon.info()["state"] == "shutdown"
    # Klipper would keep the target through a shutdown; the extra clears it,
    # so front ends and Moonraker's subscription show 0 too.
    assert moon.query(CHAMBER)["target"] == 0.0
    assert push(moon, "chamber", 31) == {"target": 0.0, "heater": "chamber"}
    no_more_targets(moon)


def test_emergency_stop_endpoint_forwards_zero(moon: KlippyAPIClient) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=40")
    assert next_target(moon, "chamber") == 40.0
    moon.request("emergency_stop")
    assert next_target(moon, "chamber") == 0.0


@pytest.mark.parametrize("command", ["RESTART", "FIRMWARE_RESTART"])
def test_restart_forwards_zero_at_once(klippy: Klippy, moon: KlippyAPIClient, command: str) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=42")
    assert next_target(moon, "chamber") == 42.0
    pending = moon.send_request("gcode/script", {"script": command})
    sent = time.monotonic()
    assert next_target(moon, "chamber") == 0.0
    assert time.monotonic() - sent < 0.2  # from the request_restart handler, not the poll
    try:
        pending.wait(timeout=5)
    except ConnectionError:
        pass
    moon.wait_closed(timeout=5)
    klippy.wait_ready(timeout=10)
    with klippy.client() as client:
        assert client.query(CHAMBER)["target"] == 0.0
        assert device_state(client)["connected"] is False  # a new object after restart


def test_reading_above_max_temp_shuts_down_naming_the_heater(moon: KlippyAPIClient) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45")
    assert next_target(moon, "chamber") == 45.0
    assert push(moon, "chamber", 85.5) == {"target": 0.0, "heater": "chamber"}
    assert next_target(moon, "chamber") == 0.0
    info = moon.info()
    assert info["state"] == "shutdown"
    assert f"{CHAMBER}: temperature 85.5 above maximum temperature of 80.0" in info["state_message"]


def test_reading_below_min_temp_shuts_down(moon: KlippyAPIClient) -> None:
    push(moon, "dryer", -0.5)
    info = moon.info()
    assert info["state"] == "shutdown"
    assert f"{DRYER}: temperature -0.5 below minimum temperature of 0.0" in info["state_message"]


# -- staleness and forwarding errors (own klippy, stale_timeout 2 s) ---------------------


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
    assert idle["connected"] is False and idle["last_update_age"] >= 4.0
    # Now starve "hot" while it heats.
    stopped = time.monotonic()
    info = wait_shutdown(client, timeout=8, what="stale shutdown")
    took = time.monotonic() - stopped
    assert 1.5 <= took <= 4.0, took  # stale_timeout 2 s, checked every 0.25 s
    assert "heater_generic hot: no temperature from Moonraker for 2s while heating" in (
        info["state_message"]
    )
    assert next_target(client, "hot") == 0.0


def test_target_right_after_ready_waits_for_the_first_reading_then_shuts_down(
    fresh_klippy: Klippy,
) -> None:
    client = fresh_klippy.client()
    client.register_remote_method(SET_TARGET)
    client.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=40")
    assert next_target(client, "hot") == 40.0  # accepted: the first reading is on its way
    info = wait_shutdown(client, timeout=8, what="no first reading within stale_timeout")
    assert "heater_generic hot: no temperature received from Moonraker in the" in (
        info["state_message"]
    )
    assert "while heating" in info["state_message"]
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


def test_forward_error_shown_and_logged_once_without_shutdown(fresh_klippy: Klippy) -> None:
    client = fresh_klippy.client()  # nobody has registered panda_breath_set_target
    push(client, "hot", 25)
    for target in (40, 41, 42):
        client.gcode(f"SET_HEATER_TEMPERATURE HEATER=hot TARGET={target}")
        time.sleep(POLL + 0.1)
    assert device_state(client, "hot")["forward_error"] == (
        "Remote method 'panda_breath_set_target' not registered"
    )
    assert_ready(client)
    assert fresh_klippy.log_text().count("cannot forward target") == 1
    client.register_remote_method(SET_TARGET)
    client.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=43")
    assert next_target(client, "hot") == 43.0
    assert device_state(client, "hot")["forward_error"] is None
    client.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=0")
    assert next_target(client, "hot") == 0.0


# -- configuration ---------------------------------------------------------------------

GENERIC = generic_section("chamber") + VERIFY.format(name="chamber")
BAD_CONFIGS = [
    (
        "heater_generic above the bare section",
        GENERIC + "\n[heater_panda_breath]\n",
        "Unknown temperature sensor 'panda_breath'",
    ),
    ("no bare section", GENERIC, "Unknown temperature sensor 'panda_breath'"),
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
        + GENERIC,
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
        "[heater_panda_breath chamber]\n\n[heater_panda_breath]\n" + GENERIC,
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


def test_m191_waits_for_the_pushed_reading(sim_moon: KlippyAPIClient) -> None:
    push(sim_moon, "chamber", 30)
    started = time.monotonic()
    wait = sim_moon.send_request("gcode/script", {"script": "M191 S40"})
    assert next_target(sim_moon, "chamber") == 40.0
    for temperature in (33, 36, 38.5):
        time.sleep(0.4)
        sent = time.monotonic()
        assert push(sim_moon, "chamber", temperature) == {"target": 40.0, "heater": "chamber"}
        assert time.monotonic() - sent < 0.5, "push held up by the running wait"
        assert not wait.done(), "M191 returned before the chamber was warm"
    time.sleep(1.5)
    assert not wait.done(), "M191 returned at 38.5 (it waits for 39)"
    reached = time.monotonic()
    push(sim_moon, "chamber", 39)  # 40 - wait_margin (1.0)
    wait.wait(timeout=4)
    assert wait.answered_at is not None
    assert wait.answered_at - reached < 2.5  # Klipper smooths over 1 s; the wait polls each second
    assert wait.answered_at - started > 1.0
    assert sim_moon.query(CHAMBER)["target"] == 40.0


def test_m191_does_not_wait_for_a_hot_chamber_to_cool(sim_moon: KlippyAPIClient) -> None:
    push(sim_moon, "chamber", 55)
    time.sleep(1.1)  # one repeat: Klipper's smoothed reading is the pushed one
    started = time.monotonic()
    sim_moon.gcode("M191 S40", timeout=3)
    assert time.monotonic() - started < 1.0
    assert next_target(sim_moon, "chamber") == 40.0
    sim_moon.gcode("M141")
    assert next_target(sim_moon, "chamber") == 0.0


def test_idle_timeout_turns_the_chamber_off(sim_moon: KlippyAPIClient) -> None:
    push(sim_moon, "chamber", 30)
    sim_moon.gcode("SET_IDLE_TIMEOUT TIMEOUT=1")
    sim_moon.gcode("M141 S40")
    assert next_target(sim_moon, "chamber") == 40.0
    started = time.monotonic()
    assert next_target(sim_moon, "chamber", timeout=5) == 0.0
    assert time.monotonic() - started < 4.0
    assert sim_moon.query("idle_timeout")["state"] == "Idle"
    assert_ready(sim_moon)


def test_verify_heater_trips_when_the_chamber_does_not_warm(sim_moon: KlippyAPIClient) -> None:
    push(sim_moon, "vh", 25)
    sim_moon.gcode("SET_HEATER_TEMPERATURE HEATER=vh TARGET=45")
    assert next_target(sim_moon, "vh") == 45.0

    def tripped() -> dict[str, Any] | None:
        push(sim_moon, "vh", 25)  # fresh but flat readings
        info = sim_moon.info()
        return info if info["state"] == "shutdown" else None

    info = wait_until(tripped, timeout=10, interval=0.25, what="verify_heater shutdown")
    assert "Heater vh not heating at expected rate" in info["state_message"]
    assert next_target(sim_moon, "vh") == 0.0


def test_m112_reaches_the_mcu_and_forwards_zero(
    sim_klippy: Klippy, sim_moon: KlippyAPIClient
) -> None:
    mcu = sim_klippy.mcu
    assert mcu is not None
    before = mcu.commands_seen["emergency_stop"]
    push(sim_moon, "chamber", 30)
    sim_moon.gcode("M141 S42")
    assert next_target(sim_moon, "chamber") == 42.0
    sim_moon.gcode("M112")
    assert next_target(sim_moon, "chamber") == 0.0
    assert sim_moon.info()["state"] == "shutdown"
    wait_until(
        lambda: mcu.commands_seen["emergency_stop"] > before,
        timeout=2,
        what="emergency_stop sent to the MCU",
    )
