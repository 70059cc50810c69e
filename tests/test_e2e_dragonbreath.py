"""firmware: dragonbreath end to end (issue 13): real Moonraker + component, real klippy, the
simulator's DragonBreath personality over HTTP and Server-Sent Events.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from testbed import ROOT, wait_until
from testbed.moonraker import MoonrakerError
from testbed.resync import SyncTimes, restart_and_time_sync
from testbed.stack import Stack

MACROS = f"[include {ROOT / 'examples' / 'panda_breath_macros.cfg'}]\n"


def heating_at(target: int):
    return lambda s: s["mode"] == "power_on" and s["requested_c"] == target


def is_off(state: dict) -> bool:
    return state["mode"] == "off"


def test_target_off_and_the_lease_are_kept(make_stack) -> None:
    stack: Stack = make_stack("dragonbreath")
    sent = time.monotonic()
    stack.set_target(45)
    stack.wait_sim(heating_at(45), timeout=2.0, what="power_on at 45")
    assert time.monotonic() - sent < 2.0
    state = stack.wait_sim(lambda s: s["lease"] is not None, 3.0, what="our lease")
    assert state["lease"]["kind"] == "klipper"
    device = stack.device()
    assert device["link"] == "connected" and device["firmware"] == "dragonbreath"
    assert device["lease_owned"] is True
    stack.moonraker.gcode("TURN_OFF_HEATERS")
    stack.wait_sim(is_off, timeout=2.0, what="off after TURN_OFF_HEATERS")


def test_another_controller_is_not_fought_until_klippers_next_target(make_stack) -> None:
    stack: Stack = make_stack("dragonbreath")
    stack.set_target(45)
    stack.wait_sim(heating_at(45), timeout=2.0)
    stack.sim.control("take_over", source="web", mode="power_on", target=38)
    stack.wait_sim(heating_at(38), timeout=2.0)
    device = stack.wait_device(lambda d: d["external_control"] == "web", 3.0,
                               what="the take-over shown")
    assert "web took control" in device["last_event"]
    wait_until(lambda: stack.heater_status()["external_control"] == "web", 3.0,
               what="who controls the device, in Klipper's status")
    time.sleep(3)
    assert heating_at(38)(stack.sim.state())  # not fought
    stack.set_target(42)  # Klipper's next target takes it back
    stack.wait_sim(heating_at(42), timeout=3.0, what="Klipper's target again")
    # The device reports our write a moment after it heats (tests/test_arbitration.py)
    stack.wait_device(lambda d: d["external_control"] is None, 2.0,
                      what="the device Klipper's again")
    wait_until(lambda: stack.heater_status()["external_control"] is None, 3.0,
               what="Klipper's again, in Klipper's status")


def test_a_latched_fault_stays_until_the_user_clears_it(make_stack) -> None:
    stack: Stack = make_stack("dragonbreath")
    stack.set_target(45)
    stack.wait_sim(heating_at(45), timeout=2.0)
    stack.sim.control("fault", reason="ptc_overtemp")
    stack.wait_sim(is_off, timeout=3.0, what="the device's own safety off")
    stack.wait_device(lambda d: d["faults"], 3.0, what="the fault in the status API")
    warnings = wait_until(
        lambda: [w for w in stack.moonraker.get("/server/info")["warnings"]
                 if "reports a fault" in w], 3.0, what="a Moonraker warning")
    assert "latched" in warnings[0] and "clear_fault" in warnings[0]
    fault = wait_until(lambda: stack.heater_status()["fault"], 3.0, what="fault in Klipper")
    assert fault
    time.sleep(3)
    assert stack.sim.state()["fault_latched"] is True  # never cleared by the bridge
    stack.moonraker.post("/server/panda_breath/clear_fault", {"name": "panda_breath"})
    stack.wait_sim(lambda s: s["fault_latched"] is False, timeout=3.0, what="cleared")
    stack.wait_sim(heating_at(45), timeout=4.0, what="Klipper's target again after clearing")


def test_the_devices_own_watchdog_switches_it_off_when_moonraker_is_killed(make_stack) -> None:
    stack: Stack = make_stack("dragonbreath", panda_options={"lease_timeout": 10})
    stack.set_target(45)
    stack.wait_sim(heating_at(45), timeout=2.0)
    stack.wait_sim(lambda s: s["comms_ms"] == 10000, timeout=5.0, what="lease_timeout applied")
    assert stack.moonraker.proc is not None
    os.kill(stack.moonraker.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    state = stack.wait_sim(is_off, timeout=15.0, what="off by the device's watchdog")
    assert time.monotonic() - killed <= 10.0 + 1.5
    assert state["fault_latched"] is True


def test_heartbeats_reach_the_device_within_a_third_of_the_lease(make_stack) -> None:
    """lease_timeout 10: the device sees a renewal at least every 3.33 s (+ 0.1 s round trip)."""
    stack: Stack = make_stack("dragonbreath", panda_options={"lease_timeout": 10})
    stack.wait_sim(lambda s: s["comms_ms"] == 10000, timeout=5.0, what="lease_timeout applied")
    stack.set_target(45)
    stack.wait_sim(heating_at(45), timeout=2.0)
    state = stack.wait_sim(lambda s: len((s["lease"] or {}).get("renewal_gaps", [])) >= 4,
                           timeout=16.0, what="four renewals")
    gaps = state["lease"]["renewal_gaps"]
    assert max(gaps) <= 10.0 / 3 + 0.1, gaps


def test_a_restarted_device_heats_for_klipper_within_half_a_second_of_answering(
    make_stack,
) -> None:
    """Down 3 s, five times, default timings: the session outlives the dropped stream
    and polls, so the poll finds the new boot (it boots off) and Klipper's 45 goes back."""
    stack: Stack = make_stack("dragonbreath", panda_options={
        "reconnect_max_delay": None, "silence_timeout": None})
    stack.set_target(45)
    times = SyncTimes()
    for _ in range(5):
        stack.wait_sim(heating_at(45), timeout=5.0)
        times.runs.append(restart_and_time_sync(stack.sim, heating_at(45), wipe=1))
        time.sleep(2.2)
    worst = times.worst()
    assert worst is not None and worst <= 0.5, times.describe()


def test_a_target_the_device_refuses_is_an_error_at_the_gcode(make_stack) -> None:
    stack: Stack = make_stack("dragonbreath")
    wait_until(lambda: stack.moonraker.query({stack.heater_object: None}), 3.0)
    with pytest.raises(MoonrakerError) as err:
        stack.set_target(25)
    assert "target 25.0 refused: the device heats only to 30 or more" in str(err.value)
    assert stack.heater_status()["target"] == 0.0
    assert is_off(stack.sim.state()) and stack.device()["last_refusal"] is None
    stack.set_target(30)
    stack.wait_sim(heating_at(30), timeout=2.0, what="30 accepted")


def test_the_fault_is_cleared_from_klipper_with_the_example_macro(make_stack) -> None:
    stack: Stack = make_stack("dragonbreath", printer_extra=MACROS)
    with pytest.raises(MoonrakerError):
        stack.moonraker.gcode("PANDA_BREATH_CLEAR_FAULT")
    console = stack.moonraker.get("/server/gcode_store?count=10")["gcode_store"]
    assert any("chamber: the device reports no fault to clear" in line["message"]
               for line in console)
    stack.set_target(45)
    stack.wait_sim(heating_at(45), timeout=2.0)
    stack.sim.control("fault", reason="ptc_overtemp")
    wait_until(lambda: stack.heater_status()["fault"], 3.0, what="fault in Klipper")
    stack.set_target(40)  # the device will not heat: said in the console
    wait_until(lambda: any(
        "target 40 not applied: the device reports" in line["message"]
        and "PANDA_BREATH_CLEAR_FAULT" in line["message"]
        for line in stack.moonraker.get("/server/gcode_store?count=10")["gcode_store"]),
        3.0, what="the console error")
    stack.set_target(45)
    stack.moonraker.gcode("PANDA_BREATH_CLEAR_FAULT")
    stack.wait_sim(lambda s: s["fault_latched"] is False, timeout=3.0, what="cleared")
    stack.wait_sim(heating_at(45), timeout=4.0, what="Klipper's target again after clearing")
    wait_until(lambda: stack.heater_status()["fault"] is None, 3.0, what="fault gone in Klipper")


FILTER = "Panda Breath filter"


def filter_power(stack: Stack, action: str) -> dict:
    return stack.moonraker.power(FILTER, action)


def filter_status(stack: Stack) -> str:
    return stack.moonraker.power_status(FILTER)


def console_lines(stack: Stack) -> list[str]:
    return [line["message"] for line in
            stack.moonraker.get("/server/gcode_store?count=20")["gcode_store"]]


def test_filtration_from_the_power_device_the_device_and_the_macro(make_stack) -> None:
    stack: Stack = make_stack("dragonbreath", printer_extra=MACROS)
    wait_until(lambda: filter_status(stack) == "off", 3.0, what="the filter device, off")
    filter_power(stack, "on")
    stack.wait_sim(lambda s: s["filter_percent"] == 100 and s["fan_on"], 2.0, what="blower on")
    wait_until(lambda: filter_status(stack) == "on", 2.0, what="the power device on")
    assert stack.device()["filter"] is True and stack.sim.state()["mode"] == "off"
    # Switched off at the device (its web page): the power device follows.
    stack.sim.control("take_over", source="web", mode="filter")
    wait_until(lambda: filter_status(stack) == "off", 3.0, what="the device's change shown")
    assert stack.device()["filter"] is False
    # The example macro, from Klipper.
    stack.moonraker.gcode("PANDA_BREATH_FILTER ON=1")
    stack.wait_sim(lambda s: s["filter_percent"] == 100, 2.0, what="on from the macro")
    stack.moonraker.gcode("PANDA_BREATH_FILTER ON=0")
    stack.wait_sim(lambda s: s["filter_percent"] == 0, 2.0, what="off from the macro")
    with pytest.raises(MoonrakerError):
        stack.moonraker.gcode("PANDA_BREATH_FILTER ON=yes")
    assert any("ON must be 1 or 0, not 'yes'" in line for line in console_lines(stack))
    # While Klipper heats, the blower serves the heater: "on" is refused where
    # it was asked for, and the heat goes on untouched.
    stack.set_target(45)
    stack.wait_sim(heating_at(45), timeout=2.0)
    stack.wait_device(lambda d: (d["device_target"] or 0) > 0, 2.0, what="heat reported")
    with pytest.raises(MoonrakerError) as err:
        filter_power(stack, "on")
    assert "the device heats now" in str(err.value)
    stack.moonraker.gcode("PANDA_BREATH_FILTER ON=1")
    wait_until(lambda: any("filter not switched: the device heats now" in line
                           for line in console_lines(stack)), 3.0, what="the console error")
    state = stack.sim.state()
    assert heating_at(45)(state) and state["filter_percent"] == 0
    assert filter_status(stack) == "off"


def test_only_dragonbreath_has_a_filter_device(make_stack) -> None:
    stack: Stack = make_stack("v1.0.3")
    devices = stack.moonraker.get("/machine/device_power/devices")["devices"]
    assert [d["device"] for d in devices] == ["Panda Breath drying"]
    assert stack.device()["filter"] is None


def test_drying_takes_dragonbreaths_own_ranges(make_stack) -> None:
    stack: Stack = make_stack("dragonbreath", printer_extra=MACROS, panda_options={
        "device_max_temp": 70, "drying_temperature": 65, "drying_hours": 4})
    # DragonBreath's own PETG preset, 65 °C for 4 h: above the stock firmware's 60.
    stack.moonraker.power("Panda Breath drying", "on")
    state = stack.wait_sim(lambda s: s["mode"] == "drying", 3.0, what="drying")
    assert state["drying"]["target"] == 65
    assert 3 * 3600 < state["drying"]["remaining_seconds"] <= 4 * 3600
    stack.moonraker.gcode("PANDA_BREATH_DRY_STOP")
    stack.wait_sim(is_off, 3.0, what="drying stopped")
    # HelixScreen's dryer goes down to 35 °C; the stock firmware starts at 40, DragonBreath at 30.
    stack.moonraker.gcode("PANDA_BREATH_DRY_START TEMP=35 HOURS=2")
    state = stack.wait_sim(lambda s: s["mode"] == "drying", 3.0, what="drying at 35")
    assert state["drying"]["target"] == 35
    stack.moonraker.gcode("PANDA_BREATH_DRY_STOP")
    stack.wait_sim(is_off, 3.0, what="drying stopped")
    # 24 h is a stock run; DragonBreath runs 1-12 h: an error, not a silent 12.
    stack.moonraker.gcode("PANDA_BREATH_DRY_START TEMP=50 HOURS=24")
    wait_until(lambda: any("drying hours must be a whole number from 1 to 12" in line
                           for line in console_lines(stack)), 3.0, what="the console error")
    assert is_off(stack.sim.state())


SECRET_TOKEN = "tok-e2e-5b1c9d-kept-secret"


def served_logs(stack: Stack) -> str:
    """Every file Moonraker serves from its ``logs`` root, as a client downloads them."""
    texts = []
    for entry in stack.moonraker.get("/server/files/list?root=logs"):
        url = stack.moonraker.url + "/server/files/logs/" + urllib.parse.quote(entry["path"])
        with urllib.request.urlopen(url, timeout=10) as resp:
            texts.append(resp.read().decode(errors="replace"))
    assert texts, "Moonraker serves no logs"
    return "\n".join(texts)


def database_dump(stack: Stack) -> str:
    listing = stack.moonraker.get("/server/database/list")
    items = [stack.moonraker.get("/server/database/item?namespace=" + ns)
             for ns in listing["namespaces"]]
    return json.dumps(listing) + json.dumps(items)


def test_a_token_from_moonrakers_secrets_file_is_used_and_shown_nowhere(
    make_stack, tmp_path: Path
) -> None:
    """``token: {secrets.panda_breath.token}``: the device takes it, no log/API/client sees it."""
    from websockets.sync.client import connect

    data = tmp_path / "moonraker" / "moonraker_data"
    data.mkdir(parents=True)
    (data / "moonraker.secrets").write_text(f"[panda_breath]\ntoken: {SECRET_TOKEN}\n")
    stack: Stack = make_stack(
        "dragonbreath", sim_args=("--db-token", SECRET_TOKEN),
        panda_options={"token": "{secrets.panda_breath.token}", "lease_timeout": 10})
    url = stack.moonraker.url.replace("http://", "ws://") + "/websocket"
    received: list[str] = []
    with connect(url, max_queue=None, open_timeout=5) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "printer.objects.subscribe",
                            "params": {"objects": {stack.heater_object: None}}}))
        stack.set_target(45)
        stack.wait_sim(heating_at(45), timeout=3.0, what="power_on with the secret token")
        stack.wait_sim(lambda s: len((s["lease"] or {}).get("renewal_gaps", [])) >= 1,
                       timeout=6.0, what="a heartbeat with the secret token")
        stack.moonraker.gcode("TURN_OFF_HEATERS")
        stack.wait_sim(is_off, timeout=3.0, what="off with the secret token")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                received.append(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                break
    assert stack.sim.state()["counters"].get("auth_failures", 0) == 0
    assert any("notify_panda_breath_status_changed" in m for m in received)
    places = {
        "moonraker.log": stack.moonraker.log_text(),
        "klippy.log": stack.klippy.log_text(),
        "/server/config": json.dumps(stack.moonraker.get("/server/config")),
        "/server/panda_breath/status": json.dumps(stack.moonraker.get(
            "/server/panda_breath/status")),
        "notifications": "\n".join(received),
        "/server/database": database_dump(stack),
        "logs/ as served": served_logs(stack),
    }
    assert [where for where, text in places.items() if SECRET_TOKEN in text] == []
    # The template itself is what the configuration shows.
    assert "{secrets.panda_breath.token}" in places["/server/config"]
