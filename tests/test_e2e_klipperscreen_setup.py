"""The opt-in KlipperScreen setup end to end: [heater_generic chamber] fed by the extra (issue 10).

Real Moonraker + component, real klippy on the stand-in MCU (so the stock
heater takes readings), the simulator.  Same safety as the default setup.
"""

from __future__ import annotations

from stock_device import heating_at, is_off
from testbed import wait_until
from testbed.stack import Stack


def test_klipperscreens_own_command_reaches_the_device_and_every_off_path_works(
    make_stack,
) -> None:
    stack: Stack = make_stack(heater_setup="heater_generic", klippy_mcu="sim")
    assert stack.heater_object == "heater_generic chamber"
    heaters = stack.moonraker.query({"heaters": ["available_heaters"]})["heaters"]
    assert "heater_generic chamber" in heaters["available_heaters"]
    wait_until(lambda: stack.heater_status()["temperature"] > 15, 5.0,
               what="the device's reading in heater_generic chamber")
    # Exactly what KlipperScreen sends (lower case, quoted).
    stack.moonraker.gcode('SET_HEATER_TEMPERATURE heater="chamber" target=40')
    stack.wait_sim(heating_at(40), timeout=2.0, what="the device heating at 40")
    assert stack.device()["klipper_heater_found"] is True
    stack.moonraker.gcode("TURN_OFF_HEATERS")
    stack.wait_sim(is_off, timeout=2.0, what="off after TURN_OFF_HEATERS")
    stack.set_target(45)
    stack.wait_sim(heating_at(45), timeout=2.0)
    stack.moonraker.post("/printer/emergency_stop")
    stack.wait_sim(is_off, timeout=2.0, what="off after M112")
