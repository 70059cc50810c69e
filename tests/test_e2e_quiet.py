"""Only changes reach the UIs: real Moonraker + component, real klippy + extra, the simulator.

A front end subscribed to the heater (every Mainsail, Fluidd, KlipperScreen,
HelixScreen tab) gets a ``notify_status_update`` only when a value it shows
changed: none while the chamber is steady, one per change of the reading.
Klipper's staleness check still gets its keep-alive (here stale_timeout 9 s,
so an unchanged reading is pushed again after 3 s, at the next 2 s device
frame: every 4 s, half the frames), and the heater stays connected.
"""

from __future__ import annotations

import time

from testbed import wait_until
from testbed.stack import Stack
from testbed.ui_client import UiClient

#: The steady window (the property holds for any length; 10 minutes in the issue).
STEADY_S = 30.0
STALE_TIMEOUT_S = 9.0
AMBIENT = 22.0


def steady_stack(make_stack) -> Stack:  # type: ignore[no-untyped-def]
    stack: Stack = make_stack(time_scale=1.0, stale_timeout=STALE_TIMEOUT_S)
    stack.sim.control("set_temps", chamber=AMBIENT, ambient=AMBIENT)
    wait_until(lambda: stack.heater_status()["temperature"] == AMBIENT, 10.0,
               what="the steady reading in Klipper")
    return stack


def test_a_steady_chamber_sends_no_update_and_klipper_still_hears_it(make_stack) -> None:
    stack = steady_stack(make_stack)
    with UiClient(stack.moonraker.url) as ui:
        ui.subscribe([stack.heater_object, "panda_breath"])
        time.sleep(3.0)  # the subscription's first diffs
        ui.reset()
        pushes_before = stack.device()["pushes"]
        time.sleep(STEADY_S)
        updates, fields, methods = ui.snapshot()
    assert updates[stack.heater_object] == 0, fields
    assert updates["panda_breath"] == 0, fields
    assert methods["notify_panda_breath_status_changed"] == 0, methods
    device = stack.device()
    pushes = device["pushes"] - pushes_before
    # Keep-alives only: one each stale_timeout / 3, riding on the 2 s device frames
    keepalive = device["keepalive_interval"]
    assert keepalive == STALE_TIMEOUT_S / 3
    assert STEADY_S / (keepalive + 2) - 1 <= pushes <= STEADY_S / keepalive + 1, pushes
    status = stack.heater_status()
    assert status["connected"] is True and status["temperature"] == AMBIENT
    assert device["last_reading_age"] < 3.0


def test_a_changing_reading_sends_one_update_per_change(make_stack) -> None:
    stack = steady_stack(make_stack)
    readings = [AMBIENT + k for k in range(1, 6)]  # the stock device reports whole degrees
    with UiClient(stack.moonraker.url) as ui:
        ui.subscribe([stack.heater_object])
        time.sleep(3.0)
        ui.reset()
        for value in readings:
            stack.sim.control("set_temps", ambient=value)
            stack.sim.control("emit_temperature", value=value)
            wait_until(lambda value=value: stack.heater_status()["temperature"] == value,
                       5.0, what=f"reading {value} in Klipper")
            time.sleep(2.5)  # a keep-alive and a device frame or two in between
        updates, fields, _methods = ui.snapshot()
    assert fields[(stack.heater_object, "temperature")] == len(readings), fields
    assert updates[stack.heater_object] == len(readings), fields


def test_with_keepalives_a_silent_device_still_goes_stale_while_heating(make_stack) -> None:
    # Steady reading: Klipper hears only keep-alives, each riding on a device frame.
    stack = steady_stack(make_stack)
    stack.sim.control("time_scale", value=0.01)  # the chamber barely warms: keep-alives only
    stack.set_target(45)
    wait_until(lambda: stack.sim.state()["work_on"] is True, 5.0, what="device heating")
    time.sleep(2 * STALE_TIMEOUT_S / 3)
    silenced = time.monotonic()
    stack.sim.control("silence", seconds=60)
    stack.sim.control("refuse", seconds=30)
    wait_until(lambda: stack.moonraker.klippy_state() == "shutdown", 3 * STALE_TIMEOUT_S,
               0.1, "Klipper shutdown on stale temperature")
    took = time.monotonic() - silenced
    # At most stale_timeout after the last frame (+ the extra's 1 s check); earlier
    # by up to a keep-alive interval and a frame, never later.
    assert took <= STALE_TIMEOUT_S + 1.5, took
    assert "while heating" in stack.klippy.log_text()
