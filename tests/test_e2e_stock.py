"""Stock firmware end to end: real Moonraker + component, real klippy + extra, the simulator.

Targets are set the way users set them (G-code through Moonraker's HTTP API)
and checked against the simulator's true device state.
"""

from __future__ import annotations

import itertools
import time

import pytest
from stock_device import heating_at, is_off
from testbed import wait_until
from testbed.resync import SyncTimes, restart_and_time_sync
from testbed.stack import Stack

SET_45 = "SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45"


def test_target_reaches_device_within_a_second_and_chamber_warms(make_stack) -> None:
    stack: Stack = make_stack(time_scale=120.0)
    start_temp = stack.heater_status()["temperature"]
    sent = time.monotonic()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45), timeout=1.0, what="device heating at 45")
    assert time.monotonic() - sent < 1.0
    status = wait_until(
        lambda: (s := stack.heater_status())["temperature"] >= start_temp + 2 and s,
        timeout=20.0, what="chamber to warm in Klipper's heater status",
    )
    assert status["target"] == 45.0
    device = stack.device()
    assert device["link"] == "connected"
    assert device["target"] == 45.0
    assert device["firmware_version"] == "V1.0.3"


def test_turn_off_heaters_switches_device_off(make_stack) -> None:
    stack: Stack = make_stack()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    stack.moonraker.gcode("TURN_OFF_HEATERS")
    stack.wait_sim(is_off, timeout=1.0, what="device off after TURN_OFF_HEATERS")


def test_emergency_stop_switches_device_off(make_stack) -> None:
    stack: Stack = make_stack()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    stack.moonraker.post("/printer/emergency_stop")
    stack.wait_sim(is_off, timeout=2.0, what="device off after M112")
    wait_until(lambda: stack.device()["last_event"] == "off: Klipper shutdown", 3.0,
               what="Klipper shutdown seen by the component")


def test_device_drop_reconnects_and_resends_target(make_stack) -> None:
    stack: Stack = make_stack()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    before = stack.device()["reconnects"]
    dropped_at = time.time()
    stack.sim.control("drop")
    state = stack.wait_sim(
        lambda s: any(
            f["time"] > dropped_at
            and f.get("payload", {}).get("settings", {}).get("set_temp") == 45
            for f in s["recent_frames"]
        ),
        timeout=3.0, what="target resent after the drop",
    )
    assert heating_at(45)(state)
    wait_until(lambda: stack.device()["reconnects"] > before, 3.0, what="reconnect counted")


def test_silent_device_is_detected_and_reconnected(make_stack) -> None:
    stack: Stack = make_stack(panda_options={"silence_timeout": 2})
    before = stack.device()["reconnects"]
    stack.sim.control("silence", seconds=30)
    wait_until(lambda: stack.device()["reconnects"] > before, 6.0,
               what="reconnect after a silent device")


def test_reboot_with_saved_heat_is_switched_off_when_klipper_target_is_0(make_stack) -> None:
    stack: Stack = make_stack()
    stack.wait_sim(is_off)
    # Someone heated from the front panel; then the power blinked: the
    # device comes back heating from its flash with no command.
    stack.sim.control("button", work_on=1, work_mode=2, set_temp=50)
    stack.sim.control("reboot", down=0.5)
    stack.wait_sim(is_off, timeout=6.0, what="uncommanded heating switched off")
    device = wait_until(lambda: (d := stack.device())["uncommanded_heating_events"] >= 1 and d,
                        3.0, what="uncommanded heating reported")
    assert device["last_event"] == "uncommanded heating switched off"


def test_reboot_while_heating_resends_the_target(make_stack) -> None:
    stack: Stack = make_stack()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    # Flash holds something else (a front-panel change before the power cut).
    stack.sim.control("button", work_on=0, set_temp=30)
    stack.sim.control("reboot", down=0.5)
    stack.wait_sim(heating_at(45), timeout=6.0, what="target 45 resent after reboot")


def test_a_restarted_device_is_in_klippers_state_within_half_a_second_of_answering(
    make_stack,
) -> None:
    """Down 3 s, ten times, with the default timings (reconnect_max_delay 5 s).

    Odd runs heat at 45 for Klipper while the flash says off (the target must
    be resent); even runs have Klipper's target 0 while the flash says heat
    at 50 (the device boots heating and must be switched off).  Timed on the
    device: from its first answer to the write that put it in Klipper's state.
    """
    stack: Stack = make_stack(panda_options={"reconnect_max_delay": None, "silence_timeout": None})
    resent, switched_off = SyncTimes(), SyncTimes()
    for run in range(10):
        if run % 2 == 0:
            stack.moonraker.gcode(SET_45)
            stack.wait_sim(heating_at(45))
            stack.sim.control("button", work_on=0, set_temp=30)
            resent.runs.append(restart_and_time_sync(stack.sim, heating_at(45)))
        else:
            stack.moonraker.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=0")
            stack.wait_sim(is_off)
            stack.sim.control("button", work_on=1, work_mode=2, set_temp=50)
            switched_off.runs.append(restart_and_time_sync(stack.sim, is_off))
        time.sleep(2.2)  # a connection that lived 2 s: the next outage is a new one
    report = f"resent: {resent.describe()}; switched off: {switched_off.describe()}"
    print(report)
    for times in (resent, switched_off):
        worst = times.worst()
        assert worst is not None and worst <= 0.5, report


def test_moonraker_stop_switches_device_off(make_stack) -> None:
    stack: Stack = make_stack()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    stack.moonraker.stop()
    stack.wait_sim(is_off, timeout=2.0, what="device off after Moonraker stopped")


def test_klippy_restart_turns_off_then_resyncs(make_stack) -> None:
    stack: Stack = make_stack()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    stack.klippy.restart_process()
    stack.wait_sim(is_off, timeout=3.0, what="device off when klippy went away")
    stack.moonraker.wait_component_ready(timeout=15.0)
    wait_until(lambda: stack.moonraker.klippy_state() == "ready", 10.0, what="klippy ready")
    # Temperatures flow again, and a new target still reaches the device.
    wait_until(lambda: stack.device()["last_push_age"] is not None
               and stack.device()["last_push_age"] < 5, 10.0, what="pushes resumed")
    wait_until(lambda: _try_gcode(stack, "SET_HEATER_TEMPERATURE HEATER=chamber TARGET=40"),
               10.0, what="target accepted after restart")
    stack.wait_sim(heating_at(40), timeout=2.0)


def test_gcode_restart_forwards_zero(make_stack) -> None:
    stack: Stack = make_stack()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    try:
        stack.moonraker.gcode("RESTART", timeout=5.0)
    except Exception:  # noqa: BLE001 - klippy closes the socket while answering
        pass
    stack.wait_sim(is_off, timeout=3.0, what="device off after RESTART")


@pytest.mark.parametrize(("firmware", "key"), [("v1.0.0", "temp"), ("v1.0.4", "set_temp")])
def test_firmware_versions_get_their_own_target_key(make_stack, firmware: str, key: str) -> None:
    stack: Stack = make_stack(firmware=firmware)
    stack.moonraker.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=42")
    state = stack.wait_sim(lambda s: s["work_on"] is True and s["set_temp"] == 42, timeout=2.0,
                           what=f"{firmware} heating at 42")
    assert state["work_mode"] == 2  # Always-On is 2 on every build, V1.0.0 included
    keys = [k for f in state["recent_frames"] for k in f.get("payload", {}).get("settings", {})]
    assert key in keys
    assert stack.device()["firmware_version"] == "V" + firmware[1:]


def test_stale_temperature_while_heating_shuts_down_and_device_goes_off(make_stack) -> None:
    stack: Stack = make_stack(stale_timeout=3.0)
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    # The device keeps its sockets but stops talking, and refuses new ones.
    stack.sim.control("silence", seconds=60)
    stack.sim.control("refuse", seconds=6)
    wait_until(lambda: stack.moonraker.klippy_state() == "shutdown", 12.0,
               what="Klipper shutdown on stale temperature")
    stack.wait_sim(is_off, timeout=12.0, what="device off once reachable again")


def test_status_api_and_no_secrets_in_logs(make_stack) -> None:
    from pbsim.secrets import SECRETS

    stack: Stack = make_stack()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    stack.sim.control("drop")
    wait_until(lambda: stack.device()["reconnects"] >= 1, 5.0, what="a reconnect")
    device = stack.device()
    for key in ("link", "firmware_version", "mode", "work_on", "target", "chamber_temp",
                "ptc_temp", "faults", "last_frame_age", "reconnects", "klipper_heater_found"):
        assert key in device
    logs = stack.logs()
    assert "panda_breath" in logs
    for secret in SECRETS:
        assert secret not in logs


def test_bad_config_value_is_a_warning_and_server_keeps_running(make_stack) -> None:
    stack: Stack = make_stack(
        extra_moonraker_config="[panda_breath broken]\nhost: 127.0.0.1\nport: eighty\n"
        "silence_timeout: 0.1\n",
    )
    info = stack.moonraker.get("/server/info?raw=true")
    text = "\n".join(info["warnings"])
    assert "[panda_breath broken]" in text
    assert "'port'" in text and "'silence_timeout'" in text
    assert "panda_breath" not in info["failed_components"]
    # The good device still works.
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))


def _try_gcode(stack: Stack, script: str) -> bool:
    try:
        stack.moonraker.gcode(script, timeout=5.0)
    except Exception:  # noqa: BLE001 - klippy may still be starting
        return False
    return True


def test_status_changes_are_pushed_to_websocket_clients(make_stack) -> None:
    import json

    from websockets.sync.client import connect

    stack: Stack = make_stack()
    url = stack.moonraker.url.replace("http://", "ws://") + "/websocket"
    with connect(url, max_queue=None, open_timeout=5) as ws:
        stack.moonraker.gcode(SET_45)
        deadline = time.monotonic() + 5.0
        seen = []
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("method") == "notify_panda_breath_status_changed":
                device = message["params"][0]["devices"]["panda_breath"]
                seen.append(time.monotonic())
                if device["target"] == 45.0:
                    break
        else:
            raise AssertionError("no notify_panda_breath_status_changed with target 45")
    # Rate-limited: never two notifications closer than the interval (with slack).
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert all(gap >= 0.4 for gap in gaps), gaps


def test_refusing_device_is_retried_with_backoff_not_a_storm(make_stack) -> None:
    # The first minute of an outage: one attempt at a time, 0.125-0.25 s apart
    # (tests/test_backoff.py shows the backing off after that minute).
    stack: Stack = make_stack()
    before = stack.sim.state()["connections_refused"]
    stack.sim.control("refuse", seconds=5)
    stack.sim.control("drop")
    time.sleep(5.0)
    attempts = stack.sim.state()["connections_refused"] - before
    assert 10 <= attempts <= 5.0 / 0.125 + 1, attempts
    # Back within about one capped delay once it accepts again, with one connection.
    state = stack.wait_sim(lambda s: s["clients"] == 1 and not s["refusing"], timeout=3.0,
                           what="reconnected after the refusal")
    assert state["clients"] == 1


def test_moonraker_crash_and_restart_keeps_klippers_heat_without_a_false_off(make_stack) -> None:
    stack: Stack = make_stack()
    stack.moonraker.gcode(SET_45)
    stack.wait_sim(heating_at(45))
    proc = stack.moonraker.proc
    assert proc is not None
    proc.kill()  # no clean stop, so no OFF: the device keeps heating as Klipper wants
    proc.wait(5)
    stack.moonraker.proc = None
    restarted_at = time.time()
    stack.moonraker.start()
    stack.moonraker.wait_component_ready()
    time.sleep(1.0)
    state = stack.sim.state()
    writes = [f["payload"].get("settings", {}) for f in state["recent_frames"]
              if f["time"] > restarted_at and isinstance(f.get("payload"), dict)]
    assert {"work_on": False} not in writes  # never switched off on a guess
    assert heating_at(45)(state)
    device = stack.device()
    assert device["target"] == 45.0 and device["uncommanded_heating_events"] == 0
