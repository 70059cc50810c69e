"""The MQTT firmwares end to end: Mosquitto, the simulator as an ESPHome or a
stock v1.0.4 device on that broker, real klippy + extra, real Moonraker with
``[mqtt]`` and the component.  Targets go in as G-code and are checked against
the simulator's true device state.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mqtt_fixtures import INSTANCE, MqttStack, panda_mqtt_section, start_stack
from testbed import wait_until
from testbed.moonraker import Moonraker


@pytest.fixture
def make_mqtt_stack(tmp_path: Path) -> Iterator[Callable[..., MqttStack]]:
    stacks: list[MqttStack] = []

    def build(firmware: str, **kwargs: object) -> MqttStack:
        stack = start_stack(tmp_path, firmware, stack_class=MqttStack, **kwargs)  # type: ignore[arg-type]
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.stop()


# ESPHome ---------------------------------------------------------------------


def esp_heating_at(target: float, band: float = 1.0) -> Callable[[dict], bool]:
    def check(state: dict) -> bool:
        esp = state["esphome"]
        return (
            esp["mode"] == "heat"
            and abs(esp["low"] - (target - band / 2)) < 0.01
            and abs(esp["high"] - (target + band / 2)) < 0.01
        )

    return check


def esp_off(state: dict) -> bool:
    return state["esphome"]["mode"] == "off"


def test_esphome_boot_heat_is_switched_off_then_target_and_temperature_flow(
    make_mqtt_stack,
) -> None:
    # With nothing in flash, that YAML's bang_bang boots in HEAT: the bridge
    # must switch off heating Klipper did not ask for.
    stack: MqttStack = make_mqtt_stack("esphome")
    stack.wait_sim(esp_off, timeout=5.0, what="boot-time HEAT switched off")
    device = stack.wait_device(lambda d: d["uncommanded_heating_events"] >= 1, 3.0,
                               what="uncommanded heating reported")
    assert device["link"] == "connected" and device["online"] is True
    assert device["mqtt_topics"] == "panda-breath"

    sent = time.monotonic()
    stack.set_target(45)
    stack.wait_sim(esp_heating_at(45), timeout=1.0, what="climate HEAT with band 44.5..45.5")
    assert time.monotonic() - sent < 1.0
    # Only the real ESPHome topics were used, nothing retained by us.
    topics = {f["source"] for f in stack.mqtt_frames()}
    assert "panda-breath/climate/chamber/mode/command" in topics
    assert not any(t.endswith("/set") for t in topics)
    assert stack.retained("panda-breath/climate/chamber/mode/command", timeout=0.5) is None

    # The sensor topic reaches Klipper's heater and the chamber warms.
    start = stack.heater_status()["temperature"]
    status = wait_until(
        lambda: (s := stack.heater_status())["temperature"] >= start + 2 and s, 20.0,
        what="chamber warming in Klipper's heater status",
    )
    assert status["target"] == 45.0
    sim_temp = stack.sim.state()["esphome"]["current"]
    assert abs(stack.heater_status()["temperature"] - sim_temp) < 3
    device = stack.wait_device(lambda d: d["device_target"] == 45.0 and d["mode"] == "on", 8.0,
                               what="device state read back")
    assert device["frames_dropped"] == 0

    stack.set_target(0)
    stack.wait_sim(esp_off, timeout=1.0, what="climate OFF")


def test_esphome_heartbeat_only_while_heating(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack("esphome", panda_options={"heartbeat_interval": 1})
    stack.wait_sim(esp_off, timeout=5.0)
    start = time.time()
    stack.set_target(40)
    stack.wait_sim(esp_heating_at(40), timeout=2.0)
    time.sleep(2.6)
    beats = [f for f in stack.mqtt_frames(start) if f["source"] == "panda-breath/host/heartbeat"]
    assert len(beats) >= 3  # one with the command, then one a second
    assert all(f["payload"] == "40" for f in beats)
    stack.set_target(0)
    stack.wait_sim(esp_off, timeout=1.0)
    stopped = time.time()
    time.sleep(1.5)
    assert not [f for f in stack.mqtt_frames(stopped)
                if f["source"] == "panda-breath/host/heartbeat"]


def test_esphome_broker_restart_resyncs(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack("esphome")
    stack.set_target(45)
    stack.wait_sim(esp_heating_at(45), timeout=2.0)
    before = stack.device()["reconnects"]
    restarted = time.time()
    stack.broker.restart()
    stack.wait_device(lambda d: d["reconnects"] > before and d["link"] == "connected", 10.0,
                      what="link back after the broker restart")
    # The whole desired state went out again after the reconnect...
    stack.wait_sim(
        lambda s: any(f["source"].endswith("/mode/command") and f["payload"] == "HEAT"
                      for f in s["recent_frames"] if f["time"] > restarted),
        timeout=5.0, what="HEAT resent after the broker restart",
    )
    # ...and new targets flow again.
    stack.set_target(50)
    stack.wait_sim(esp_heating_at(50), timeout=2.0)


def test_esphome_device_power_cut_and_return_gets_desired_state(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack("esphome")
    stack.set_target(45)
    stack.wait_sim(esp_heating_at(45), timeout=2.0)
    stack.sim.kill()  # no goodbye: the broker publishes the device's will
    device = stack.wait_device(lambda d: d["link"] != "connected", 5.0,
                               what="link down on the will")
    assert device["device_available"] is False and device["online"] is False
    assert device["last_error"] == "device offline"
    # It comes back with its YAML defaults (40..42), not Klipper's target.
    stack.sim.start()
    stack.wait_sim(esp_heating_at(45), timeout=5.0, what="45 resent to the returning device")


def test_esphome_sensor_nan_keeps_device_off_until_it_reads_again(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack("esphome")
    stack.set_target(45)
    stack.wait_sim(esp_heating_at(45), timeout=2.0)
    stack.sim.control("sensor_fault", sensor="warehouse", code=2)
    device = stack.wait_device(lambda d: "chamber_sensor" in d["faults"], 4.0,
                               what="nan reported as a chamber sensor fault")
    assert "nan" in device["faults"]["chamber_sensor"]
    stack.wait_sim(esp_off, timeout=2.0, what="device off while the sensor has no reading")
    assert stack.heater_status()["target"] == 45.0
    stack.sim.control("clear_faults")
    stack.wait_sim(esp_heating_at(45), timeout=4.0, what="heating again after the fault cleared")


def test_esphome_emergency_stop_and_moonraker_stop_turn_device_off(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack("esphome")
    stack.set_target(45)
    stack.wait_sim(esp_heating_at(45), timeout=2.0)
    stack.moonraker.post("/printer/emergency_stop")
    stack.wait_sim(esp_off, timeout=2.0, what="device off after M112")

    # A firmware with a host watchdog hears Moonraker go: the OFF command on
    # the way out, and the retained {"server": "offline"} on its status topic.
    assert json.loads(stack.retained(f"{INSTANCE}/moonraker/status") or "{}") == {
        "server": "online"
    }
    stopped = time.time()
    stack.moonraker.stop()
    assert any(
        f["source"].endswith("/mode/command") and f["payload"] == "OFF"
        for f in stack.mqtt_frames(stopped)
    )
    assert json.loads(stack.retained(f"{INSTANCE}/moonraker/status") or "{}") == {
        "server": "offline"
    }


# Stock v1.0.4 native MQTT ------------------------------------------------------


def stock_heating_at(target: int) -> Callable[[dict], bool]:
    def check(state: dict) -> bool:
        return state["work_on"] is True and state["mode"] == "on" and state["set_temp"] == target

    return check


def stock_off(state: dict) -> bool:
    return state["work_on"] is False


def test_stock_mqtt_target_temperature_and_commands(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack("stock_mqtt")
    stack.wait_device(lambda d: d["link"] == "connected", 5.0)
    start = time.time()
    stack.set_target(45)
    state = stack.wait_sim(stock_heating_at(45), timeout=1.5, what="device heating at 45")
    commands = [f["payload"] for f in state["recent_frames"]
                if f["transport"] == "mqtt" and f["time"] > start]
    assert commands == [{"mode": "power on"}, {"target_temp": 45}, {"work_on": "ON"}]
    assert state["connections_total"] == 0  # the WebSocket was never opened
    device = stack.wait_device(lambda d: d["work_on"] is True and d["device_target"] == 45, 3.0)
    assert device["mode"] == "on"
    wait_until(lambda: stack.heater_status()["temperature"] > 0, 5.0,
               what="temperature in Klipper")
    assert abs(stack.heater_status()["temperature"] - state["chamber_temp"]) < 3
    # Nothing of ours is retained on the command topic (Home Assistant shares it).
    assert stack.retained(f"panda_breath/{state['mqtt']['command_topic'].split('/')[1]}/command",
                          timeout=0.5) is None
    stack.set_target(0)
    stack.wait_sim(stock_off, timeout=1.0)


def test_stock_mqtt_uncommanded_heating_and_emergency_stop(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack("stock_mqtt")
    stack.wait_sim(stock_off)
    stack.sim.control("button", work_on=1, work_mode=2, set_temp=50)
    stack.wait_sim(stock_off, timeout=3.0, what="front-panel heating switched off")
    stack.wait_device(lambda d: d["uncommanded_heating_events"] >= 1, 3.0)
    stack.set_target(45)
    stack.wait_sim(stock_heating_at(45), timeout=1.5)
    stack.moonraker.post("/printer/emergency_stop")
    stack.wait_sim(stock_off, timeout=2.0, what="device off after M112")


def test_stock_mqtt_broker_restart_and_device_return(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack("stock_mqtt")
    stack.set_target(45)
    stack.wait_sim(stock_heating_at(45), timeout=2.0)
    before = stack.device()["reconnects"]
    stack.broker.restart()
    stack.wait_device(lambda d: d["reconnects"] > before and d["link"] == "connected", 10.0,
                      what="link back after the broker restart")
    stack.set_target(48)
    stack.wait_sim(stock_heating_at(48), timeout=2.0)

    stack.sim.kill()
    stack.wait_device(lambda d: d["link"] != "connected", 5.0, what="link down on the will")
    stack.sim.start()  # flash lost with the process: it boots off
    stack.wait_sim(stock_heating_at(48), timeout=6.0, what="48 resent to the returning device")


def test_stock_mqtt_silent_device_goes_down_and_is_resynced(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack("stock_mqtt")  # silence_timeout: 3
    stack.set_target(45)
    stack.wait_sim(stock_heating_at(45), timeout=2.0)
    before = stack.device()["reconnects"]
    # A hung device: its TCP session stays open (no will for ~22 s), it just
    # stops publishing its twice-a-second state.
    assert stack.sim.pid is not None
    os.kill(stack.sim.pid, signal.SIGSTOP)
    try:
        device = stack.wait_device(lambda d: d["link"] != "connected", 6.0,
                                   what="link down on silence")
        assert device["last_error"] == "device silent for 3 s"
    finally:
        os.kill(stack.sim.pid, signal.SIGCONT)
    resumed = time.time()
    stack.wait_device(lambda d: d["link"] == "connected" and d["reconnects"] > before, 5.0,
                      what="link back once the device talks again")
    stack.wait_sim(
        lambda s: {"target_temp": 45} in [f["payload"] for f in s["recent_frames"]
                                          if f["transport"] == "mqtt" and f["time"] > resumed],
        timeout=5.0, what="desired state resent after the silence",
    )


WATCHDOG_ARGS = (
    "--frame-interval", "1",
    # Models the example YAML's host watchdog (examples/esphome/panda_breath.yaml).
    "--esphome-host-topic", f"{INSTANCE}/moonraker/status",
    "--esphome-command-timeout", "3",
)


def test_esphome_heartbeat_feeds_the_host_watchdog_and_a_hung_host_starves_it(
    make_mqtt_stack,
) -> None:
    stack: MqttStack = make_mqtt_stack(
        "esphome", sim_args=WATCHDOG_ARGS, panda_options={"heartbeat_interval": 1}
    )
    stack.set_target(45)
    stack.wait_sim(esp_heating_at(45), timeout=2.0)
    time.sleep(4.0)  # longer than the watchdog's 3 s, with heartbeats only
    state = stack.sim.state()
    assert esp_heating_at(45)(state) and state["esphome"]["watchdog_trips"] == 0
    proc = stack.moonraker.proc
    assert proc is not None
    # A hung host: its broker session stays open (no will), it just goes quiet.
    proc.send_signal(signal.SIGSTOP)
    try:
        stack.wait_sim(esp_off, timeout=6.0, what="watchdog OFF without heartbeats")
    finally:
        proc.send_signal(signal.SIGCONT)
    # The host is back: the controller sees the device off and heats again.
    stack.wait_sim(esp_heating_at(45), timeout=8.0, what="heating again after the host recovered")


def test_moonraker_vanishing_leaves_its_will_and_the_device_stops(make_mqtt_stack) -> None:
    stack: MqttStack = make_mqtt_stack(
        "esphome", sim_args=WATCHDOG_ARGS, panda_options={"heartbeat_interval": 1}
    )
    stack.set_target(45)
    stack.wait_sim(esp_heating_at(45), timeout=2.0)
    proc = stack.moonraker.proc
    assert proc is not None
    proc.kill()  # no on_exit, no OFF command: only the broker's will is left
    proc.wait(5)
    stack.wait_sim(esp_off, timeout=2.0, what="device OFF on Moonraker's will")
    assert stack.sim.state()["esphome"]["watchdog_trips"] == 1
    assert json.loads(stack.retained(f"{INSTANCE}/moonraker/status") or "{}") == {
        "server": "offline"
    }


@pytest.mark.parametrize(
    ("mqtt_config", "problem"),
    [
        ("", "no [mqtt] section"),
        # Broken [mqtt]: Moonraker must keep running (our early load of the
        # component must not turn its own retry into a fatal error).
        ("[mqtt]\naddress: 127.0.0.1\nmqtt_protocol: bogus\n", "failed to load"),
    ],
)
def test_mqtt_firmware_without_usable_mqtt_is_a_warning(
    tmp_path: Path, mqtt_config: str, problem: str
) -> None:
    moonraker = Moonraker(
        tmp_path / "moonraker", tmp_path / "no-klippy.sock",
        extra_config=panda_mqtt_section("esphome") + mqtt_config,
    )
    moonraker.start()
    try:
        info = moonraker.get("/server/info?raw=true")
        text = "\n".join(info["warnings"])
        assert "[panda_breath]" in text and "option 'firmware'" in text and problem in text
        assert "panda_breath" not in info["failed_components"]
        assert moonraker.panda_status() == {}
    finally:
        moonraker.stop()
