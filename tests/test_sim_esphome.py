"""The ESPHome build over a real Mosquitto broker: ESPHome's real topics, and the wrong ones."""

from __future__ import annotations

import asyncio
import time

import pytest
import sim_fixtures
from sim_fixtures import eventually
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

make_sim = sim_fixtures.make_sim
broker = sim_fixtures.broker
probe_factory = sim_fixtures.probe_factory

P = "panda-breath"
CLIMATE = f"{P}/climate/chamber"


async def esphome(make_sim, broker, **options):
    options.setdefault("frame_interval", 0.2)
    sim = await make_sim(firmware="esphome", mqtt=broker.address, **options)
    await eventually(lambda: sim.state()["mqtt"]["connected"], what="ESPHome MQTT link")
    return sim


async def test_topics_birth_and_boot_defaults(make_sim, broker, probe_factory):
    sim = await esphome(make_sim, broker)
    probe = probe_factory(broker, f"{P}/#")  # late subscriber: everything below is retained
    assert (await probe.wait(f"{P}/status")).payload == "online"
    assert (await probe.wait(f"{P}/status")).retain
    assert (await probe.wait(f"{CLIMATE}/mode/state")).payload == "heat"  # nothing saved: HEAT
    assert (await probe.wait(f"{CLIMATE}/target_temperature_low/state")).payload == "40.0"
    assert (await probe.wait(f"{CLIMATE}/target_temperature_high/state")).payload == "42.0"
    assert (await probe.wait(f"{CLIMATE}/action/state")).payload == "heating"
    assert (await probe.wait(f"{CLIMATE}/current_temperature/state")).payload == "22.0"
    assert (await probe.wait(f"{P}/sensor/chamber_temperature/state")).payload == "22.0"
    float((await probe.wait(f"{P}/sensor/ptc_element_temperature/state")).payload)
    assert (await probe.wait(f"{P}/switch/ptc_heater_relay/state")).payload == "ON"
    assert (await probe.wait(f"{P}/fan/fan/state")).payload == "OFF"  # on_boot: fan off
    assert sim.state()["heater_on"] and sim.state()["work_mode"] is None


async def test_mode_and_set_point_commands(make_sim, broker, probe_factory):
    sim = await esphome(make_sim, broker)
    probe = probe_factory(broker, f"{CLIMATE}/#")
    probe.publish(f"{CLIMATE}/mode/command", "OFF")
    await probe.wait(f"{CLIMATE}/mode/state", lambda p: p == "off")
    await probe.wait(f"{CLIMATE}/action/state", lambda p: p == "off")
    assert not sim.state()["heater_on"]
    for word in ("cool", "auto", "warm"):  # unsupported or unknown: ignored
        probe.publish(f"{CLIMATE}/mode/command", word)
    probe.publish(f"{CLIMATE}/target_temperature_low/command", "abc")
    await eventually(lambda: sim.state()["mqtt"]["commands_ignored"] == 4)
    assert sim.state()["esphome"]["mode"] == "off"
    probe.publish(f"{CLIMATE}/target_temperature_high/command", "47")
    probe.publish(f"{CLIMATE}/target_temperature_low/command", "45.5")
    probe.publish(f"{CLIMATE}/mode/command", "Heat")  # case-insensitive
    await probe.wait(f"{CLIMATE}/target_temperature_low/state", lambda p: p == "45.5")
    await probe.wait(f"{CLIMATE}/target_temperature_high/state", lambda p: p == "47.0")
    await probe.wait(f"{CLIMATE}/action/state", lambda p: p == "heating")
    assert sim.state()["heater_on"]
    assert set(sim.state()["last_applied_at"]) >= {
        "mode", "target_temperature_low", "target_temperature_high"}


async def test_wrong_topics_of_the_earlier_project_are_ignored(make_sim, broker, probe_factory):
    sim = await esphome(make_sim, broker)
    probe = probe_factory(broker, f"{CLIMATE}/mode/state")
    await probe.wait(f"{CLIMATE}/mode/state", lambda p: p == "heat")
    probe.publish(f"{CLIMATE}/mode/set", "off")
    probe.publish(f"{CLIMATE}/target_temperature/set", "30.0")
    probe.publish(f"{CLIMATE}/target_temperature/command", "30.0")
    probe.publish(f"{P}/fan/fan/speed/set", "50")
    probe.publish(f"{P}/fan/fan/command", "turn_on")
    await eventually(lambda: sim.state()["mqtt"]["commands_ignored"] == 5)
    frames = sim.state()["recent_frames"][-5:]
    assert all(f["status"] == "ignored" for f in frames)
    assert frames[0]["reason"] == "ESPHome does not subscribe to this topic"
    state = sim.state()["esphome"]
    assert state["mode"] == "heat" and state["low"] == 40.0 and not state["fan"]
    probe.publish(f"{P}/fan/fan/command", "on")  # the right spelling works
    await eventually(lambda: sim.state()["esphome"]["fan"])


async def test_relay_switch_and_nan_sensor(make_sim, broker, probe_factory):
    sim = await esphome(make_sim, broker, time_scale=20)
    probe = probe_factory(broker, f"{P}/#")
    probe.publish(f"{P}/switch/ptc_heater_relay/command", "TOGGLE")
    await probe.wait(f"{P}/switch/ptc_heater_relay/state", lambda p: p == "OFF")
    sim.sensor_fault("warehouse", 2)
    await probe.wait(f"{P}/sensor/chamber_temperature/state", lambda p: p == "nan")
    await probe.wait(f"{CLIMATE}/action/state", lambda p: p == "off")
    before = len(probe.on(f"{CLIMATE}/current_temperature/state"))
    await asyncio.sleep(0.5)
    assert len(probe.on(f"{CLIMATE}/current_temperature/state")) == before  # not sent while NaN


async def test_overheated_element_trips_climate_off_without_fan(make_sim, broker, probe_factory):
    """The YAML does not tie the fan to the climate: heating with the fan off trips at 90 °C."""
    sim = await esphome(make_sim, broker, time_scale=60)
    probe = probe_factory(broker, f"{CLIMATE}/mode/state")
    await probe.wait(f"{CLIMATE}/mode/state", lambda p: p == "off", timeout=5)
    assert sim.state()["esphome"]["safety_trips"] == 1 and not sim.state()["heater_on"]


async def test_restores_mode_and_set_points_after_reboot(make_sim, broker, probe_factory):
    sim = await esphome(make_sim, broker, time_scale=5, esphome_fan_with_heat=True)
    probe = probe_factory(broker, f"{P}/#")
    probe.publish(f"{CLIMATE}/target_temperature_low/command", "30")
    probe.publish(f"{CLIMATE}/mode/command", "off")
    await eventually(lambda: sim.state()["esphome"]["mode"] == "off")
    assert sim.reboot(down=0.2)
    offline = await probe.wait(f"{P}/status", lambda p: p == "offline")
    await probe.wait(f"{P}/status", lambda p: p == "online", after=offline.at)
    state = sim.state()["esphome"]
    assert state["mode"] == "off" and state["low"] == 30.0 and not state["relay"]
    sim.reboot(down=0.1, mode="heat", low=50, high=52)
    await sim.wait_up()
    await eventually(lambda: sim.state()["heater_on"], what="restored HEAT heats at boot")
    assert sim.state()["esphome"]["fan"]  # --esphome-fan-with-heat


async def test_host_watchdog_options(make_sim, broker, probe_factory):
    sim = await esphome(make_sim, broker, esphome_host_topic="moonraker/status",
                        esphome_command_timeout=0.6)
    probe = probe_factory(broker, f"{CLIMATE}/mode/state")
    probe.publish("moonraker/status", "offline")
    await eventually(lambda: sim.state()["esphome"]["mode"] == "off", what="host offline")
    probe.publish(f"{CLIMATE}/mode/command", "heat")
    t0 = time.monotonic()
    await eventually(lambda: sim.state()["esphome"]["mode"] == "heat")
    await eventually(lambda: sim.state()["esphome"]["mode"] == "off", 3, "command timeout")
    assert time.monotonic() - t0 > 0.5
    assert sim.state()["esphome"]["watchdog_trips"] == 2


async def test_no_websocket_but_http_works(make_sim):
    sim = await make_sim(firmware="esphome")
    with pytest.raises(InvalidStatus) as info:
        await connect(f"ws://127.0.0.1:{sim.port}/ws", open_timeout=2)
    assert info.value.response.status_code == 404
    assert sim.state()["firmware"] == "esphome"
