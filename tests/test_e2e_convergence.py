"""The device always returns to Klipper's state, and the session never dies (issue 8).

Real Moonraker + component, real klippy + extra, the simulator.  Changes are
made at the simulated device the way an owner makes them (front panel, its
web UI, another client: the stock firmware pushes none of them to us).
"""

from __future__ import annotations

import time

from testbed import wait_until
from testbed.stack import Stack


def heating_at(target: int):
    def check(state: dict) -> bool:
        return state["work_on"] is True and state["work_mode"] == 2 and state["set_temp"] == target

    return check


def is_off(state: dict) -> bool:
    return state["work_on"] is False


def test_a_target_set_after_a_change_at_the_device_is_written_in_full(make_stack) -> None:
    # Set 45, then 0; the owner sets 38 at the device; Klipper sets 45 again.
    # Before the fix only {"work_on": true} went out: the device held 38.
    stack: Stack = make_stack()
    stack.set_target(45)
    stack.wait_sim(heating_at(45))
    stack.set_target(0)
    stack.wait_sim(is_off)
    stack.sim.control("button", set_temp=38)
    stack.set_target(45)
    stack.wait_sim(heating_at(45), timeout=2.0, what="device back at 45, not 38")


def test_setting_the_same_target_again_reaches_a_device_switched_off_at_its_panel(
    make_stack,
) -> None:
    stack: Stack = make_stack()
    stack.set_target(45)
    stack.wait_sim(heating_at(45))
    stack.sim.control("button", work_on=0)
    stack.wait_sim(is_off)
    stack.moonraker.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45")
    stack.wait_sim(heating_at(45), timeout=2.0, what="device heating again after the same target")


def test_a_change_at_the_device_is_undone_within_the_reassert_interval(make_stack) -> None:
    stack: Stack = make_stack(panda_options={"reassert_interval": 5})
    stack.set_target(45)
    stack.wait_sim(heating_at(45))
    changed = time.monotonic()
    stack.sim.control("button", work_on=0)
    stack.wait_sim(is_off)
    stack.wait_sim(heating_at(45), timeout=7.0, what="device switched back on by the re-assert")
    assert time.monotonic() - changed <= 7.0
    stack.sim.control("button", set_temp=38)
    stack.wait_sim(heating_at(45), timeout=7.0, what="another target undone")
    device = stack.device()
    assert device["reasserts"] >= 2
    assert device["link"] == "connected" and device["reconnects"] == 0  # no connection churn


def test_heat_switched_on_at_the_device_while_klipper_says_0_goes_off(make_stack) -> None:
    stack: Stack = make_stack(panda_options={"reassert_interval": 5})
    stack.wait_sim(is_off)
    stack.sim.control("button", work_on=1, work_mode=2, set_temp=50)
    stack.wait_sim(is_off, timeout=7.0, what="uncommanded heat switched off by the re-assert")


def test_a_failed_link_task_is_restarted_reported_and_still_obeys(make_stack) -> None:
    stack: Stack = make_stack(moonraker_debug=True)
    stack.set_target(45)
    stack.wait_sim(heating_at(45))
    result = stack.moonraker.post("/debug/panda_breath/fail_link", {"name": "panda_breath"})
    assert result["injected"] is True
    device = stack.wait_device(lambda d: d["link_failures"] == 1, 3.0, what="failure counted")
    assert device["last_link_failure"].startswith("InjectedLinkFailure")
    warnings = "\n".join(stack.moonraker.get("/server/info")["warnings"])
    assert "[panda_breath]: the device link stopped on an internal error" in warnings
    stack.wait_device(lambda d: d["link"] == "connected" and d["reconnects"] >= 1, 5.0,
                      what="link restarted")
    stack.moonraker.gcode("TURN_OFF_HEATERS")
    stack.wait_sim(is_off, timeout=2.0, what="device off after the restarted link")
    stack.set_target(40)
    stack.wait_sim(heating_at(40), timeout=2.0)
    wait_until(lambda: stack.device()["link_failures"] == 1, 1.0, what="no further failures")
