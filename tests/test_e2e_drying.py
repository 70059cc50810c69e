"""Drying from every UI without G-code: the Moonraker power device "Panda Breath drying" (issue 10).

Real Moonraker (its power component and HTTP API, as Mainsail, Fluidd,
KlipperScreen and Home Assistant use it), real klippy, the simulator.
"""

from __future__ import annotations

import time

import pytest
from testbed import wait_until
from testbed.moonraker import MoonrakerError
from testbed.stack import Stack

DEVICE = "Panda Breath drying"


def power(stack: Stack, action: str) -> dict:
    return stack.moonraker.power(DEVICE, action)


def power_status(stack: Stack) -> str:
    return stack.moonraker.power_status(DEVICE)


def drying(state: dict) -> bool:
    return state["mode"] == "drying" and state["work_on"] is True


def heating_at(target: int):
    return lambda s: s["work_on"] is True and s["mode"] == "on" and s["set_temp"] == target


@pytest.mark.parametrize("firmware", ["v1.0.3", "stock_mqtt"])
def test_the_power_device_starts_and_stops_the_devices_drying_cycle(
    make_stack, firmware: str
) -> None:
    stack: Stack = make_stack(firmware, panda_options={"drying_temperature": 50,
                                                       "drying_hours": 3})
    assert power_status(stack) == "off"
    assert power(stack, "on") == {DEVICE: "on"}
    state = stack.wait_sim(drying, timeout=3.0, what="the device drying")
    assert state["custom_temp"] == 50 and state["custom_timer"] == 3
    device = stack.wait_device(lambda d: d["drying"] is not None, 2.0)
    assert device["drying"]["source"] == "Moonraker"
    assert 3 * 3600 - 120 <= device["drying"]["remaining_s"] <= 3 * 3600
    # The countdown in Klipper's status object, for every UI that reads it.
    heater = wait_until(lambda: (h := stack.heater_status())["drying"] and h, 3.0,
                        what="drying in Klipper's heater status")
    assert 3 * 3600 - 120 <= heater["drying_remaining"] <= 3 * 3600
    # It runs: the component pushes it each second.
    wait_until(lambda: stack.heater_status()["drying_remaining"] < heater["drying_remaining"],
               3.0, what="the countdown running in Klipper's heater status")
    # TURN_OFF_HEATERS and the idle timeout concern Klipper's heater, not this job.
    stack.moonraker.gcode("TURN_OFF_HEATERS")
    time.sleep(1.5)
    assert drying(stack.sim.state()) and power_status(stack) == "on"
    assert power(stack, "off") == {DEVICE: "off"}
    stack.wait_sim(lambda s: s["work_on"] is False, timeout=2.0, what="drying stopped")
    assert stack.device()["drying"] is None


def test_a_klipper_target_ends_drying_and_drying_waits_for_target_zero(make_stack) -> None:
    stack: Stack = make_stack()
    power(stack, "on")
    stack.wait_sim(drying, timeout=3.0)
    stack.set_target(45)  # the print needs the chamber: Klipper wins
    stack.wait_sim(heating_at(45), timeout=2.0, what="heating at 45 instead of drying")
    wait_until(lambda: power_status(stack) == "off", 2.0, what="power device off")
    with pytest.raises(MoonrakerError) as err:
        power(stack, "on")
    assert "Klipper heats the chamber to 45" in err.value.message
    assert heating_at(45)(stack.sim.state())


def test_a_drying_run_started_at_the_device_is_adopted_then_m112_ends_it(make_stack) -> None:
    stack: Stack = make_stack(panda_options={"reassert_interval": 5})
    stack.sim.control("button", drying=1)  # the front panel's Filament Drying button
    stack.wait_sim(drying)
    # Seen at the next snapshot: force one with a reconnect.
    stack.sim.control("drop")
    device = stack.wait_device(lambda d: d["drying"] is not None, 5.0, what="drying adopted")
    assert device["drying"]["source"] == "device"
    assert device["uncommanded_heating_events"] == 0
    wait_until(lambda: power_status(stack) == "on", 2.0, what="the power device shows it")
    time.sleep(6)  # a re-assert interval: the run is left alone
    assert drying(stack.sim.state())
    stack.moonraker.post("/printer/emergency_stop")
    stack.wait_sim(lambda s: s["work_on"] is False, timeout=2.0, what="M112 ends drying")
    wait_until(lambda: power_status(stack) == "off", 2.0)


def test_moonraker_stopping_ends_drying(make_stack) -> None:
    stack: Stack = make_stack()
    power(stack, "on")
    stack.wait_sim(drying, timeout=3.0)
    stack.moonraker.stop()
    stack.wait_sim(lambda s: s["work_on"] is False, timeout=3.0, what="off when Moonraker stops")


def test_esphome_has_no_drying_device(make_stack) -> None:
    # The example ESPHome firmware has no drying cycle: no power device (and
    # without [power] sections Moonraker's power API is not even loaded).
    stack: Stack = make_stack("esphome")
    try:
        devices = stack.moonraker.get("/machine/device_power/devices")["devices"]
    except MoonrakerError as err:
        assert err.status == 404
    else:
        assert all(d["device"] != DEVICE for d in devices)
