"""The Klipper extra in a real klippy: both setups by one suite, then the default setup's own.

See klipper_extra_setups for the setups, the heaters each klippy has and the
two kinds of klippy.  test_klipper_extra_generic.py has the generic setup's own
tests.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from klipper_extra_setups import (
    DEFAULT,
    GENERIC,
    SET_TARGET,
    STALE_HINT,
    UPDATE,
    Setup,
    assert_ready,
    next_target,
    no_more_targets,
    push,
    wait_shutdown,
)
from testbed import wait_until
from testbed.configs import base_printer_cfg
from testbed.klippy import Klippy, KlippyAPIClient, KlippyError

pytest_plugins = ["klipper_extra_setups"]  # the fixtures
CHAMBER = "heater_panda_breath chamber"
DRYER = "heater_panda_breath dryer"
#: The default setup's own tests below
DEFAULT_ONLY = pytest.mark.parametrize("setup", [DEFAULT], indirect=True, ids=["default"])


@pytest.fixture(scope="module", params=[DEFAULT, GENERIC], ids=["default", "generic"])
def setup(request: pytest.FixtureRequest) -> Setup:
    return request.param




def status(client: KlippyAPIClient, name: str = CHAMBER) -> dict[str, Any]:
    return client.query(name)


# == both setups ========================================================================

# -- pushes -------------------------------------------------------------------------

BAD_UPDATES: list[tuple[str, dict[str, Any]]] = [
    ("string power", {"heater": "chamber", "temperature": 30, "power": "full"}),
    ("negative power", {"heater": "chamber", "temperature": 30, "power": -0.5}),
    ("string temperature", {"heater": "chamber", "temperature": "30"}),
    ("bool temperature", {"heater": "chamber", "temperature": True}),
    ("nan temperature", {"heater": "chamber", "temperature": math.nan}),
    ("infinite temperature", {"heater": "chamber", "temperature": math.inf}),
    ("list temperature", {"heater": "chamber", "temperature": [30]}),
    ("unknown heater", {"heater": "garage", "temperature": 30}),
    ("missing heater", {"temperature": 30}),
    ("list heater", {"heater": ["chamber"], "temperature": 30}),
    ("power above 1", {"heater": "chamber", "temperature": 30, "power": 2}),
    ("dict heater", {"heater": {"name": "chamber"}, "temperature": 30}),
    ("string heater_on", {"heater": "chamber", "temperature": 30, "heater_on": "yes"}),
    ("int heater_on", {"heater": "chamber", "temperature": 30, "heater_on": 1}),
    ("string device_target", {"heater": "chamber", "temperature": 30, "device_target": "40"}),
    ("nan device_target", {"heater": "chamber", "temperature": 30, "device_target": math.nan}),
    ("int link", {"heater": "chamber", "temperature": 30, "link": 5}),
    ("dict fault", {"heater": "chamber", "temperature": 30, "fault": {"code": 1}}),
    ("string min_target", {"heater": "chamber", "temperature": 30, "min_target": "30"}),
    ("string max_target", {"heater": "chamber", "temperature": 30, "max_target": "60"}),
    ("list helix", {"heater": "chamber", "temperature": 30, "helix": [1]}),
    ("string work_on", {"heater": "chamber", "temperature": 30, "helix": {"work_on": "on"}}),
    ("unknown work_mode", {"heater": "chamber", "temperature": 30, "helix": {"work_mode": 7}}),
    ("bool work_mode", {"heater": "chamber", "temperature": 30, "helix": {"work_mode": True}}),
    ("float work_mode", {"heater": "chamber", "temperature": 30, "helix": {"work_mode": 2.0}}),
    ("list work_mode", {"heater": "chamber", "temperature": 30, "helix": {"work_mode": [2]}}),
    ("nan filament_temp",
     {"heater": "chamber", "temperature": 30, "helix": {"filament_temp": math.nan}}),
    ("float filament_timer",
     {"heater": "chamber", "temperature": 30, "helix": {"filament_timer": 3.5}}),
    ("float remaining_seconds",
     {"heater": "chamber", "temperature": 30, "helix": {"remaining_seconds": 60.0}}),
    ("int external_control", {"heater": "chamber", "temperature": 30, "external_control": 1}),
]


@pytest.mark.parametrize("params", [p for _, p in BAD_UPDATES], ids=[i for i, _ in BAD_UPDATES])
def test_bad_update_gets_error_reply_and_changes_nothing(
    setup: Setup, moon: KlippyAPIClient, params: dict[str, Any]
) -> None:
    push(moon, "chamber", 22, link="connected")
    helix = params.get("helix")
    values = [*params.values(), *(helix.values() if isinstance(helix, dict) else [])]
    non_finite = any(isinstance(v, float) and not math.isfinite(v) for v in values)
    try:
        moon.request(UPDATE, params)
    except KlippyError as err:
        assert err.message
    except TimeoutError:
        # NaN and Infinity are not JSON (RFC 8259): klippy builds that decode
        # with msgspec (mainline, Kalico) drop such a request unanswered
        # before any handler runs.  Moonraker never sends them.
        assert non_finite, "klippy did not answer a valid JSON request"
    else:
        raise AssertionError("bad update accepted")
    assert_ready(moon)
    st = setup.device_state(moon)
    assert st["temperature"] == 22.0 and st["link"] == "connected"  # nothing half-applied


# -- targets out --------------------------------------------------------------------


def test_set_heater_temperature_in_both_spellings_is_forwarded_and_echoed(
    setup: Setup, moon: KlippyAPIClient
) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45")
    assert next_target(moon, "chamber", timeout=1) == 45.0
    assert moon.query(setup.obj())["target"] == 45.0
    assert setup.device_state(moon)["forward_error"] is None
    assert push(moon, "chamber", 31) == {"target": 45.0, "heater": "chamber"}
    # KlipperScreen's form, exactly as it sends it
    moon.gcode('SET_HEATER_TEMPERATURE heater="chamber" target=40')
    assert next_target(moon, "chamber", timeout=1) == 40.0
    assert moon.query(setup.obj())["target"] == 40.0
    assert push(moon, "chamber", 31) == {"target": 40.0, "heater": "chamber"}
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber")  # no TARGET means 0
    assert next_target(moon, "chamber", timeout=1) == 0.0
    no_more_targets(moon)  # one call per change


def test_turn_off_heaters_forwards_zero_for_every_heater(
    setup: Setup, moon: KlippyAPIClient
) -> None:
    targets = dict(zip(setup.heaters, (50.0, 45.0, 40.0), strict=False))
    for heater in targets:
        push(moon, heater, 30)
    moon.gcode("\n".join(
        f"SET_HEATER_TEMPERATURE HEATER={h} TARGET={t}" for h, t in targets.items()))
    for heater, target in targets.items():
        assert next_target(moon, heater) == target
    moon.gcode("TURN_OFF_HEATERS")
    for heater in targets:
        assert next_target(moon, heater) == 0.0
    assert moon.query(setup.obj())["target"] == 0.0
    assert moon.query(setup.obj("dryer"))["target"] == 0.0


# -- shutdown, restart, emergency stop ------------------------------------------------


def test_m112_forwards_zero_and_clears_the_target(setup: Setup, moon: KlippyAPIClient) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45")
    assert next_target(moon, "chamber") == 45.0
    moon.gcode("M112")
    for heater in setup.heaters:
        assert next_target(moon, heater) == 0.0
    assert moon.info()["state"] == "shutdown"
    # Klipper would keep a heater_generic's target through a shutdown; the
    # extra clears it, so front ends and Moonraker's subscription show 0 too.
    assert moon.query(setup.obj())["target"] == 0.0
    assert push(moon, "chamber", 31) == {"target": 0.0, "heater": "chamber"}
    no_more_targets(moon)
    with pytest.raises(KlippyError):
        moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45")


def test_emergency_stop_endpoint_forwards_zero(moon: KlippyAPIClient) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=40")
    assert next_target(moon, "chamber") == 40.0
    moon.request("emergency_stop")
    assert next_target(moon, "chamber") == 0.0


@pytest.mark.parametrize("command", ["RESTART", "FIRMWARE_RESTART"])
def test_restart_forwards_zero_at_once(
    setup: Setup, klippy: Klippy, moon: KlippyAPIClient, command: str
) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=42")
    assert next_target(moon, "chamber") == 42.0
    started = time.monotonic()
    pending = moon.send_request("gcode/script", {"script": command})
    sent = time.monotonic()
    assert next_target(moon, "chamber") == 0.0
    assert time.monotonic() - sent < 0.2  # from the request_restart handler, not the poll
    assert next_target(moon, "dryer") == 0.0
    try:
        pending.wait(timeout=5)
    except ConnectionError:
        pass
    moon.wait_closed(timeout=5)
    klippy.wait_ready(timeout=10)
    elapsed = time.monotonic() - started
    assert elapsed < 5.0
    with klippy.client() as client:
        assert client.query(setup.obj())["target"] == 0.0
        assert setup.device_state(client)["connected"] is False  # a new object after restart


def test_reading_above_max_temp_shuts_down_naming_the_heater(
    setup: Setup, moon: KlippyAPIClient
) -> None:
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45")
    assert next_target(moon, "chamber") == 45.0
    assert push(moon, "chamber", 85.5) == {"target": 0.0, "heater": "chamber"}
    assert next_target(moon, "chamber") == 0.0
    assert next_target(moon, "dryer") == 0.0
    info = moon.info()
    assert info["state"] == "shutdown"
    assert (
        f"{setup.obj()}: temperature 85.5 above maximum temperature of 80.0"
        in info["state_message"]
    )
    # Endpoints keep working after shutdown; non-zero targets are refused.
    assert push(moon, "chamber", 50) == {"target": 0.0, "heater": "chamber"}
    assert moon.query(setup.obj())["target"] == 0.0


def test_reading_below_min_temp_shuts_down(setup: Setup, moon: KlippyAPIClient) -> None:
    push(moon, "dryer", -0.5)
    info = moon.info()
    assert info["state"] == "shutdown"
    assert (f"{setup.obj('dryer')}: temperature -0.5 below minimum temperature of 0.0"
            in info["state_message"])


# -- staleness and forwarding errors (own klippy, stale_timeout 2 s) ---------------------


def test_target_accepted_right_after_ready_while_the_first_reading_is_on_its_way(
    setup: Setup, fresh_klippy: Klippy
) -> None:
    # Moonraker pushes the first reading on klippy_ready; a [delayed_gcode] or a
    # queued print may set a target before it lands.  Accepted, then bounded.
    client = fresh_klippy.client()
    client.register_remote_method(SET_TARGET)
    client.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=40")
    assert next_target(client, "hot") == 40.0
    info = wait_shutdown(client, timeout=8, what="no first reading within stale_timeout")
    assert f"{setup.obj('hot')}: no temperature received from Moonraker in the" in (
        info["state_message"]
    )
    assert "while heating" in info["state_message"]
    assert next_target(client, "hot") == 0.0


def test_forward_error_shown_and_logged_once_without_shutdown(
    setup: Setup, fresh_klippy: Klippy
) -> None:
    client = fresh_klippy.client()  # nobody has registered panda_breath_set_target
    push(client, "hot", 25)
    for target in (40, 41, 42):
        client.gcode(f"SET_HEATER_TEMPERATURE HEATER=hot TARGET={target}")
        time.sleep(setup.poll + 0.1 if setup.poll else 0)
    assert client.query(setup.obj("hot"))["target"] == 42.0
    assert setup.device_state(client, "hot")["forward_error"] == (
        "Remote method 'panda_breath_set_target' not registered"
    )
    assert_ready(client)
    assert fresh_klippy.log_text().count("cannot forward target") == 1
    client.register_remote_method(SET_TARGET)
    client.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=43")
    assert next_target(client, "hot") == 43.0
    assert setup.device_state(client, "hot")["forward_error"] is None
    client.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=0")
    assert next_target(client, "hot") == 0.0
    # A registered client that went away: "No active connections" is shown instead.
    client.close()
    other = fresh_klippy.client()
    push(other, "hot", 25)
    other.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=44")
    wait_until(lambda: setup.device_state(other, "hot")["forward_error"] == (
        "No active connections for method 'panda_breath_set_target'"), 2.0,
        what="the forwarding error of a client gone")
    other.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=0")
    assert_ready(other)


# -- normal mode on the stand-in MCU: real waits and timers ---------------------------------


def test_m191_waits_for_the_pushed_reading(setup: Setup, sim_moon: KlippyAPIClient) -> None:
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
    assert wait.answered_at - reached < setup.wait_lag  # TEMPERATURE_WAIT polls once a second
    assert wait.answered_at - started > 1.0
    assert sim_moon.query(setup.obj())["target"] == 40.0


def test_m191_does_not_wait_for_a_hot_chamber_to_cool(
    setup: Setup, sim_moon: KlippyAPIClient
) -> None:
    push(sim_moon, "chamber", 55)
    # a heater_generic's smoothed reading is the pushed one after a repeat
    wait_until(lambda: sim_moon.query(setup.obj())["temperature"] == 55.0, 3.0,
               what="the reading in Klipper's heater")
    started = time.monotonic()
    sim_moon.gcode("M191 S40", timeout=3)
    assert time.monotonic() - started < 1.0
    assert next_target(sim_moon, "chamber") == 40.0
    sim_moon.gcode("M141")
    assert next_target(sim_moon, "chamber") == 0.0


def test_idle_timeout_turns_the_chamber_off(sim_moon: KlippyAPIClient) -> None:
    push(sim_moon, "chamber", 30)
    sim_moon.gcode("SET_IDLE_TIMEOUT TIMEOUT=1")
    sim_moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=40")
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


# == the default setup: [heater_panda_breath NAME] =======================================


@DEFAULT_ONLY
def test_listed_as_heater_and_sensor(moon: KlippyAPIClient) -> None:
    heaters = moon.query("heaters")
    assert heaters["available_heaters"] == [CHAMBER, DRYER]
    assert heaters["available_sensors"] == [CHAMBER, DRYER]
    objects = moon.request("objects/list")["objects"]
    assert CHAMBER in objects and DRYER in objects
    assert "heater_panda_breath_update" not in objects


@DEFAULT_ONLY
def test_configfile_settings_carry_limits_for_the_uis(moon: KlippyAPIClient) -> None:
    settings = moon.query("configfile")["settings"]
    chamber = settings[CHAMBER]
    assert chamber["min_temp"] == 0.0
    assert chamber["max_temp"] == 80.0  # the reading limit, above the device's ceiling
    assert chamber["device_max_temp"] == 60.0
    assert chamber["stale_timeout"] == 30.0
    assert chamber["tolerance"] == 1.0
    assert chamber["gcode_id"] == "C"
    assert settings[DRYER]["max_temp"] == 50.0
    assert settings["verify_heater chamber"]["check_gain_time"] == 480.0


@DEFAULT_ONLY
def test_status_before_any_reading(fresh_klippy: Klippy) -> None:
    with fresh_klippy.client() as client:
        st = status(client, "heater_panda_breath idle")
    assert st == {
        "temperature": 0.0,
        "target": 0.0,
        "power": 0.0,
        "connected": False,
        "heater_on": None,
        "device_target": None,
        "link": None,
        "fault": None,
        "external_control": None,
        "forward_error": None,
        "drying": False,
        "drying_remaining": None,
    }


@DEFAULT_ONLY
def test_update_reply_and_status(moon: KlippyAPIClient) -> None:
    reply = push(
        moon, "chamber", 31.25, heater_on=True, device_target=40, link="connected", fault=None,
        power=1.0,  # the component infers it where the firmware reports no relay
    )
    assert reply == {"target": 0.0, "heater": "chamber"}
    st = status(moon)
    assert st["temperature"] == 31.25
    assert st["power"] == 1.0
    assert st["heater_on"] is True
    assert st["device_target"] == 40.0
    assert st["link"] == "connected"
    assert st["fault"] is None
    assert st["connected"] is True
    push(moon, "chamber", 31, heater_on=False, fault="ptc sensor open")
    st = status(moon)
    assert st["power"] == 0.0 and st["heater_on"] is False
    assert st["fault"] == "ptc sensor open"
    assert st["device_target"] is None and st["link"] is None  # each push is the full state


@DEFAULT_ONLY
def test_status_changes_only_with_what_was_pushed(moon: KlippyAPIClient) -> None:
    # Every UI subscribed to the heater gets each change: none may tick by itself
    # (staleness is shown by 'connected', which flips only at stale_timeout).
    push(moon, "chamber", 30.5, link="connected")
    before = status(moon), status(moon, "panda_breath")
    time.sleep(2.2)
    assert (status(moon), status(moon, "panda_breath")) == before
    push(moon, "chamber", 30.5, link="connected")
    assert (status(moon), status(moon, "panda_breath")) == before
    push(moon, "chamber", 30.75, link="connected")
    assert status(moon) == dict(before[0], temperature=30.75)


@DEFAULT_ONLY
def test_power_is_the_pushed_commanded_state_where_the_relay_is_unknown(
    moon: KlippyAPIClient,
) -> None:
    push(moon, "chamber", 30, power=1.0, link="connected")
    assert status(moon)["power"] == 1.0 and status(moon)["heater_on"] is None
    push(moon, "chamber", 30, power=0.0, heater_on=True)
    assert status(moon)["power"] == 0.0  # the component's power wins when it sends one
    with pytest.raises(KlippyError, match=r"expected 0.0 to 1.0"):
        push(moon, "chamber", 30, power=1.5)
    assert_ready(moon)


@DEFAULT_ONLY
def test_the_drying_countdown_is_shown_as_pushed(moon: KlippyAPIClient) -> None:
    # The component pushes it each second (test_e2e_drying sees it run).
    push(moon, "chamber", 40, drying=True, drying_remaining=3600.0)
    assert status(moon)["drying"] is True and status(moon)["drying_remaining"] == 3600.0
    push(moon, "chamber", 40, drying=True, drying_remaining=3599.0)
    assert status(moon)["drying_remaining"] == 3599.0
    push(moon, "chamber", 40, drying=False)
    assert status(moon)["drying"] is False and status(moon)["drying_remaining"] is None


@DEFAULT_ONLY
def test_a_state_push_without_a_reading_updates_link_and_fault_only(
    moon: KlippyAPIClient,
) -> None:
    push(moon, "chamber", 31, link="connected")
    reply = moon.request(UPDATE, {"heater": "chamber", "link": "disconnected",
                                  "fault": "device unreachable"})
    assert reply == {"target": 0.0, "heater": "chamber"}
    st = status(moon)
    assert st["link"] == "disconnected" and st["fault"] == "device unreachable"
    assert st["temperature"] == 31.0
    assert_ready(moon)


@DEFAULT_ONLY
def test_m105_reports_gcode_id(moon: KlippyAPIClient) -> None:
    moon.request("gcode/subscribe_output", {"response_template": {"method": "gcode_out"}})
    push(moon, "chamber", 28.5)
    moon.gcode("M105")
    line = moon.wait_for_notification("gcode_out", lambda p: "C:" in p["response"])
    assert "C:28.5 /0.0" in line["response"]


@DEFAULT_ONLY
@pytest.mark.parametrize("target", ["81", "-5", "0.5e3", "nan", "inf"])
def test_out_of_range_target_refused(moon: KlippyAPIClient, target: str) -> None:
    push(moon, "chamber", 30)
    with pytest.raises(KlippyError) as err:
        moon.gcode(f"SET_HEATER_TEMPERATURE HEATER=chamber TARGET={target}")
    # Kalico's G-code parser already refuses nan and inf ("unable to parse").
    assert ("out of range (0.0:80.0)" in err.value.message
            or f"unable to parse {target}" in err.value.message)
    assert status(moon)["target"] == 0.0
    assert moon.notifications(SET_TARGET) == []
    assert_ready(moon)


@DEFAULT_ONLY
@pytest.mark.parametrize("target", ["61", "80"])
def test_target_above_the_device_limit_refused(moon: KlippyAPIClient, target: str) -> None:
    push(moon, "chamber", 30)
    with pytest.raises(KlippyError) as err:
        moon.gcode(f"SET_HEATER_TEMPERATURE HEATER=chamber TARGET={target}")
    assert f"{CHAMBER}: target {float(target):.1f} is above the device's limit" in (
        err.value.message
    )
    assert "device_max_temp 60.0" in err.value.message
    assert moon.notifications(SET_TARGET) == []
    assert_ready(moon)


@DEFAULT_ONLY
def test_target_below_the_devices_minimum_refused_at_the_gcode(moon: KlippyAPIClient) -> None:
    # DragonBreath refuses heat targets below 30; the component pushes that.
    push(moon, "chamber", 25, min_target=30.0)
    with pytest.raises(KlippyError) as err:
        moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=25")
    assert (f"{CHAMBER}: target 25.0 refused: the device heats only to 30 or more"
            " (0 switches it off)") in err.value.message
    assert moon.notifications(SET_TARGET) == [] and status(moon)["target"] == 0.0
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=30")
    assert next_target(moon, "chamber") == 30.0
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=0")
    assert next_target(moon, "chamber") == 0.0
    push(moon, "chamber", 25)  # a firmware without a minimum
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=25")
    assert next_target(moon, "chamber") == 25.0
    assert_ready(moon)


@DEFAULT_ONLY
def test_the_panda_breath_object_has_helixscreens_fields(moon: KlippyAPIClient) -> None:
    assert "panda_breath" in moon.request("objects/list")["objects"]
    push(moon, "chamber", 33, link="connected", device_target=45.0, drying=True,
         drying_remaining=7200.0, helix={
             "connected": True, "device_target": 45.0, "work_on": True, "work_mode": 1,
             "filament_drying_active": True, "filament_temp": 50.0, "filament_timer": 3,
             "remaining_seconds": 7200})
    helix = status(moon, "panda_breath")
    # No heater name has "panda_breath" in it: the first heater is described.
    assert helix["heater"] == CHAMBER
    assert helix["connected"] is True and helix["device_target"] == 45.0
    assert helix["work_on"] is True and helix["work_mode"] == 1
    assert helix["filament_drying_active"] is True and helix["filament_temp"] == 50.0
    # Integers where HelixScreen reads integers (it ignores 3600.0).
    assert type(helix["remaining_seconds"]) is int and helix["remaining_seconds"] == 7200
    assert type(helix["filament_timer"]) is int and helix["filament_timer"] == 3
    push(moon, "chamber", 33, link="connecting")
    helix = status(moon, "panda_breath")
    assert helix["connected"] is False and helix["work_mode"] is None
    assert helix["filament_drying_active"] is False and helix["remaining_seconds"] == 0


def test_the_panda_breath_object_describes_the_heater_helixscreen_picks(tmp_path: Path) -> None:
    heaters = "[heater_panda_breath chamber]\n\n[heater_panda_breath panda_breath]\n"
    klippy = Klippy(tmp_path, base_printer_cfg(tmp_path / "gcodes", heaters))
    klippy.start()
    try:
        with klippy.client() as client:
            push(client, "panda_breath", 30, link="connected",
                 helix={"connected": True, "work_mode": 2, "work_on": True})
            helix = status(client, "panda_breath")
            assert helix["heater"] == "heater_panda_breath panda_breath"
            assert helix["work_mode"] == 2 and helix["connected"] is True
    finally:
        klippy.close()


@DEFAULT_ONLY
def test_a_reading_above_the_device_limit_does_not_stop_the_printer(
    moon: KlippyAPIClient,
) -> None:
    # Overshoot, or a hot bed warming the closed chamber past the device's 60.
    push(moon, "chamber", 66.5)
    assert_ready(moon)
    assert status(moon)["temperature"] == 66.5


@DEFAULT_ONLY
def test_target_refused_when_no_reading_came_within_stale_timeout(
    fresh_klippy: Klippy,
) -> None:
    client = fresh_klippy.client()
    client.register_remote_method(SET_TARGET)
    time.sleep(2.5)  # stale_timeout 2 s since ready, and not a single reading
    with pytest.raises(KlippyError) as err:
        client.gcode("SET_HEATER_TEMPERATURE HEATER=idle TARGET=40")
    message = err.value.message
    assert "heater_panda_breath idle: target 40.0 refused: no temperature received" in message
    assert STALE_HINT in message
    assert client.notifications(SET_TARGET) == []
    client.gcode("SET_HEATER_TEMPERATURE HEATER=idle TARGET=0")  # 0 is always accepted
    assert next_target(client, "idle") == 0.0
    assert_ready(client)


@DEFAULT_ONLY
def test_two_heaters_are_independent(moon: KlippyAPIClient) -> None:
    push(moon, "chamber", 33)
    push(moon, "dryer", 41, heater_on=True)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=dryer TARGET=48")
    assert next_target(moon, "dryer") == 48.0
    assert moon.notifications(SET_TARGET) == []
    assert push(moon, "chamber", 34) == {"target": 0.0, "heater": "chamber"}
    assert push(moon, "dryer", 42) == {"target": 48.0, "heater": "dryer"}
    chamber, dryer = status(moon), status(moon, DRYER)
    assert (chamber["temperature"], chamber["target"]) == (34.0, 0.0)
    assert (dryer["temperature"], dryer["target"]) == (42.0, 48.0)
    with pytest.raises(KlippyError, match=r"out of range \(0.0:50.0\)"):
        moon.gcode("SET_HEATER_TEMPERATURE HEATER=dryer TARGET=55")


@DEFAULT_ONLY
def test_pid_calibrate_is_refused_without_shutdown(moon: KlippyAPIClient) -> None:
    push(moon, "chamber", 30)
    with pytest.raises(KlippyError, match="regulates its own temperature"):
        moon.gcode("PID_CALIBRATE HEATER=chamber TARGET=40")
    assert_ready(moon)


@DEFAULT_ONLY
def test_waits_return_at_once_in_file_output_mode(moon: KlippyAPIClient) -> None:
    """Documents the -o limitation; the sim-MCU tests below cover real waits."""
    push(moon, "chamber", 30)
    moon.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=40")
    started = time.monotonic()
    wait = moon.send_request(
        "gcode/script", {"script": f'TEMPERATURE_WAIT SENSOR="{CHAMBER}" MINIMUM=39\nG4 P2000'}
    )
    for temperature in (35, 38, 39.5):
        assert push(moon, "chamber", temperature)["target"] == 40.0
    wait.wait(timeout=5)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, "debug-output mode should not pause; did klippy change?"
    # "Unknown sensor" (2023 klippy) or "is not valid for SENSOR" (mainline)
    with pytest.raises(KlippyError, match="Unknown sensor|is not valid for SENSOR"):
        moon.gcode('TEMPERATURE_WAIT SENSOR="heater_panda_breath nosuch" MINIMUM=1')


@DEFAULT_ONLY
def test_endpoint_listed_for_moonraker(moon: KlippyAPIClient) -> None:
    assert UPDATE in moon.request("list_endpoints")["endpoints"]


@DEFAULT_ONLY
def test_stale_at_target_zero_only_reported_then_stale_while_heating_shuts_down(
    fresh_klippy: Klippy,
) -> None:
    client = fresh_klippy.client()
    client.register_remote_method(SET_TARGET)
    push(client, "idle", 25)
    push(client, "hot", 25)
    client.gcode("SET_HEATER_TEMPERATURE HEATER=hot TARGET=40")
    assert next_target(client, "hot") == 40.0
    # Keep "hot" fed while "idle" (target 0) goes stale for a couple of checks.
    idle_stale_since = None
    while idle_stale_since is None or time.monotonic() - idle_stale_since < 2.2:
        push(client, "hot", 26)
        if idle_stale_since is None and not status(client, "heater_panda_breath idle")["connected"]:
            idle_stale_since = time.monotonic()
        time.sleep(0.25)
        assert time.monotonic() - (idle_stale_since or time.monotonic()) < 10
    assert_ready(client)
    idle = status(client, "heater_panda_breath idle")
    assert idle["connected"] is False
    with pytest.raises(KlippyError) as err:
        client.gcode("SET_HEATER_TEMPERATURE HEATER=idle TARGET=40")
    assert "heater_panda_breath idle: target 40.0 refused: no temperature from Moonraker for" in (
        err.value.message
    )
    assert STALE_HINT in err.value.message
    # Now starve "hot" while it heats.
    stopped = time.monotonic()
    info = wait_until(
        lambda: (info := client.info())["state"] == "shutdown" and info,
        timeout=8,
        what="stale shutdown",
    )
    took = time.monotonic() - stopped
    assert 1.5 <= took <= 6.0, took  # stale_timeout 2 s, checked once a second
    assert "heater_panda_breath hot: no temperature from Moonraker for" in info["state_message"]
    assert "while heating" in info["state_message"]
    assert next_target(client, "hot") == 0.0


def test_patched_firmware_limit_accepts_70(tmp_path: Path) -> None:
    section = "[heater_panda_breath chamber]\ndevice_max_temp: 70\nmax_temp: 70\n"
    cfg = base_printer_cfg(tmp_path / "gcodes", section)
    with Klippy(tmp_path, cfg) as klippy, klippy.client() as client:
        client.register_remote_method(SET_TARGET)
        push(client, "chamber", 30)
        client.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=70")
        assert next_target(client, "chamber") == 70.0
        assert client.query("configfile")["settings"][CHAMBER]["max_temp"] == 70.0


@DEFAULT_ONLY
def test_m141_and_m191_s0(sim_moon: KlippyAPIClient) -> None:
    push(sim_moon, "chamber", 30)
    sim_moon.gcode("M141 S38\nM141")
    assert next_target(sim_moon, "chamber") == 38.0
    assert next_target(sim_moon, "chamber") == 0.0
    sim_moon.gcode("M141 S45")
    assert next_target(sim_moon, "chamber") == 45.0
    started = time.monotonic()
    sim_moon.gcode("M191 S0", timeout=3)
    assert time.monotonic() - started < 0.5
    assert next_target(sim_moon, "chamber") == 0.0
    with pytest.raises(KlippyError, match="above the device's limit"):
        sim_moon.gcode("M141 S65")


@DEFAULT_ONLY
def test_temperature_wait_is_ended_by_a_shutdown(sim_moon: KlippyAPIClient) -> None:
    push(sim_moon, "chamber", 30)
    wait = sim_moon.send_request("gcode/script", {"script": "M191 S45"})
    assert next_target(sim_moon, "chamber") == 45.0
    time.sleep(0.3)
    sim_moon.request("emergency_stop")
    assert next_target(sim_moon, "chamber") == 0.0
    # Kalico ends the script with "Command interrupted".
    with pytest.raises(KlippyError, match="Shutdown due to webhooks request|Command interrupted"):
        wait.wait(timeout=3)  # the script ends with the shutdown instead of hanging
    assert sim_moon.info()["state"] == "shutdown"

BAD_CONFIGS = [
    (
        "device limit above patched firmware",
        "[heater_panda_breath chamber]\ndevice_max_temp: 75\nmax_temp: 70\n",
        "Option 'device_max_temp' in section 'heater_panda_breath chamber' must have maximum of 70",
    ),
    (
        "stale_timeout too short",
        "[heater_panda_breath chamber]\nstale_timeout: 1\n",
        "Option 'stale_timeout' in section 'heater_panda_breath chamber' must have minimum of 2",
    ),
    (
        "unknown option",
        "[heater_panda_breath chamber]\nheater_pin: PA1\n",
        "Option 'heater_pin' is not valid in section 'heater_panda_breath chamber'",
    ),
    (
        "name taken by another heater",
        "[heater_generic chamber]\nheater_pin: PA0\nsensor_type: temperature_host\n"
        "min_temp: 0\nmax_temp: 60\ncontrol: watermark\n\n[heater_panda_breath chamber]\n",
        "Heater chamber already registered",
    ),
    (
        "gcode_id taken",
        "[heater_panda_breath a]\ngcode_id: C\n\n[heater_panda_breath b]\ngcode_id: C\n",
        "G-Code sensor id C already registered",
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


