"""What Klipper and the status API show is the device's truth, at every moment (issue 9).

Real Moonraker + component, real klippy + extra, the simulator: each test
reads Klipper's heater object the way Mainsail and Fluidd do.
"""

from __future__ import annotations

import time

from stock_device import heating_at
from testbed import wait_until
from testbed.moonraker import MoonrakerError
from testbed.stack import Stack


def test_power_shows_the_commanded_heat_on_the_stock_websocket(make_stack) -> None:
    # The stock firmware never reports its relay; before, power stayed 0 %.
    stack: Stack = make_stack()
    stack.set_target(45)
    stack.wait_sim(heating_at(45))
    status = wait_until(lambda: (s := stack.heater_status())["power"] == 1.0 and s, 2.0,
                        what="power 1.0 while the device heats below its set point")
    assert status["device_target"] == 45.0
    device = stack.device()
    assert device["work_on"] is True and device["mode"] == "on" and device["power"] == 1.0
    stack.moonraker.gcode("TURN_OFF_HEATERS")
    wait_until(lambda: stack.heater_status()["power"] == 0.0, 2.0, what="power 0 when off")


def test_device_target_follows_what_the_device_accepted(make_stack) -> None:
    stack: Stack = make_stack()
    for target in (40, 45, 30, 35):
        stack.set_target(target)
        stack.wait_sim(heating_at(target))
        wait_until(lambda t=target: stack.heater_status()["device_target"] == t, 2.0,
                   what=f"device_target {target} in Klipper")
    stack.set_target(0)
    wait_until(lambda: stack.device()["work_on"] is False, 2.0, what="work_on false")
    # Off keeps the device's set point: it still holds 35.
    assert stack.heater_status()["device_target"] == 35.0


def test_link_changes_reach_klipper_within_a_second_without_a_reading(make_stack) -> None:
    stack: Stack = make_stack(panda_options={"silence_timeout": 2})
    wait_until(lambda: stack.heater_status()["link"] == "connected", 3.0)
    stack.sim.control("refuse", seconds=30)
    stack.sim.control("drop")
    device = stack.wait_device(lambda d: d["link"] != "connected", 3.0, what="link down")
    known = time.monotonic()
    wait_until(lambda: stack.heater_status()["link"] in ("connecting", "disconnected"), 1.5,
               what="Klipper's heater object to show the outage")
    assert time.monotonic() - known < 1.5
    assert device["unreachable_since"] is not None


def test_an_outage_at_target_zero_is_a_warning_in_every_ui(make_stack) -> None:
    stack: Stack = make_stack(panda_options={"offline_warning_delay": 5})
    stack.sim.control("refuse", seconds=12)
    stack.sim.control("drop")
    down = time.monotonic()

    def warning() -> str | None:
        texts = stack.moonraker.get("/server/info")["warnings"]
        return next((t for t in texts if "unreachable since" in t), None)

    text = wait_until(warning, 8.0, what="the unreachable warning")
    assert time.monotonic() - down >= 4.5
    assert text.startswith("[panda_breath]: the Panda Breath has been unreachable since ")
    wait_until(lambda: warning() is None, 15.0, what="warning removed once it is back")
    assert stack.device()["link"] == "connected"


def test_a_target_right_after_klipper_becomes_ready_is_accepted(make_stack) -> None:
    # A [delayed_gcode], a queued print or a print started right after
    # FIRMWARE_RESTART sets the chamber while the first reading is on its way.
    stack: Stack = make_stack()
    for _ in range(3):
        try:
            stack.moonraker.gcode("FIRMWARE_RESTART", timeout=5)
        except MoonrakerError:
            pass  # the restart may cut the request's own reply
        wait_until(lambda: stack.moonraker.klippy_state() != "ready", 5.0, 0.01,
                   what="klippy restarting")
        wait_until(lambda: stack.moonraker.klippy_state() == "ready", 15.0, 0.01,
                   what="klippy ready")
        stack.set_target(45)  # raised "no temperature received from Moonraker yet" before
        stack.wait_sim(heating_at(45), timeout=3.0)
        stack.set_target(0)


def test_a_chamber_warmer_than_the_device_limit_does_not_stop_the_printer(make_stack) -> None:
    stack: Stack = make_stack()
    stack.sim.control("set_temps", chamber=63)
    wait_until(lambda: stack.heater_status()["temperature"] >= 62, 6.0,
               what="the warm reading in Klipper")
    assert stack.moonraker.klippy_state() == "ready"
    try:
        stack.set_target(61)
    except MoonrakerError as err:
        assert "above the device's limit (device_max_temp 60.0)" in err.message
    else:
        raise AssertionError("a target above device_max_temp was accepted")
