"""Changes made at the device on every personality, reboots that lose the flash, a full device."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import sim_fixtures
from pbsim.faults import FAULT_KINDS, ScheduledFault
from sim_fixtures import collect, eventually, http_get, send, settle, ws_open
from websockets.exceptions import InvalidStatus
from websockets.protocol import State

make_sim = sim_fixtures.make_sim
broker = sim_fixtures.broker
probe_factory = sim_fixtures.probe_factory

BASE = "panda_breath/ACEBE68FE51C"
CLIMATE = "panda-breath/climate/chamber"



# -- button: a change made at the device ----------------------------------------------------
async def test_button_on_stock_mqtt_shows_in_the_state_stream(make_sim, broker, probe_factory):
    probe = probe_factory(broker, f"{BASE}/state")
    sim = await make_sim(firmware="v1.0.4", mqtt=broker.address, time_scale=60)
    await probe.wait(f"{BASE}/state", lambda p: json.loads(p)["work_on"] == "OFF")
    pressed = time.monotonic()
    result = sim.control("button", {"work_on": "1", "work_mode": "2", "set_temp": "50"})
    assert result["applied"] == ["work_mode", "set_temp", "work_on"]
    msg = await probe.wait(f"{BASE}/state", lambda p: json.loads(p)["work_on"] == "ON",
                           after=pressed)
    state = json.loads(msg.payload)
    assert state["mode"] == "power on" and state["target_temp"] == 50
    assert msg.at - pressed < 1.0  # the next ~2 Hz state, not a dedicated publish
    await eventually(lambda: sim.state()["heater_on"], what="heating after the button")
    assert sim.state()["mqtt"]["commands_received"] == 0
    sim.control("button", {"work_on": "0"})
    await probe.wait(f"{BASE}/state", lambda p: json.loads(p)["work_on"] == "OFF",
                     after=time.monotonic())


async def test_button_on_esphome_is_a_local_climate_change(make_sim, broker, probe_factory):
    sim = await make_sim(firmware="esphome", mqtt=broker.address, frame_interval=30)
    probe = probe_factory(broker, f"{CLIMATE}/#")
    await probe.wait(f"{CLIMATE}/mode/state", lambda p: p == "heat")
    pressed = time.monotonic()
    assert sim.control("button", {"work_on": "0"})["applied"] == ["work_on"]
    off = await probe.wait(f"{CLIMATE}/mode/state", lambda p: p == "off", after=pressed)
    assert off.at - pressed < 0.5  # published at once, not at the next interval
    await probe.wait(f"{CLIMATE}/action/state", lambda p: p == "off", after=pressed)
    assert not sim.state()["heater_on"]

    pressed = time.monotonic()
    result = sim.press_button(work_on=True, work_mode=2, set_temp=45)
    assert result == ["set_temp", "work_on"]  # ESPHome has no work_mode
    assert sim.state()["recent_frames"][-1]["ignored"] == {"work_mode": "ESPHome has no work_mode"}
    for topic, payload in (("target_temperature_low", "45.0"), ("target_temperature_high", "47.0"),
                           ("mode", "heat"), ("action", "heating")):
        await probe.wait(f"{CLIMATE}/{topic}/state", lambda p, want=payload: p == want,
                         after=pressed)
    state = sim.state()
    assert state["set_temp"] == 45 and state["work_on"] and state["heater_on"]
    assert state["flash"]["climate"] == {"mode": "heat", "low": 45.0, "high": 47.0}
    assert state["mqtt"]["commands_received"] == 0


async def test_esphome_button_survives_reboot(make_sim, broker):
    sim = await make_sim(firmware="esphome", mqtt=broker.address)
    sim.press_button(work_on=False, set_temp=35)
    assert sim.reboot(down=0.1)
    await sim.wait_up()
    assert sim.state()["esphome"]["mode"] == "off" and sim.state()["esphome"]["low"] == 35.0


# -- reboot with the flash erased -----------------------------------------------------------
async def test_reboot_wipe_boots_stock_with_factory_defaults(make_sim):
    sim = await make_sim(time_scale=60)
    sim.press_button(work_on=True, work_mode="on", set_temp=50)
    await eventually(lambda: sim.state()["heater_on"])
    status, body = await asyncio.to_thread(
        http_get, sim.base_url + "/sim/control?action=reboot&wipe=1&down=0.2")
    assert status == 200 and body["started"]
    await sim.wait_up()
    state = sim.state()
    assert (state["work_on"], state["mode"], state["set_temp"]) == (False, "auto", 40)
    assert state["flash"] == {} and state["counters"]["flash_wipes"] == 1
    await asyncio.sleep(0.3)
    assert not sim.state()["heater_on"]
    _, snap = await ws_open(sim)
    assert snap["settings"]["work_on"] == 0 and snap["settings"]["work_mode"] == 1


async def test_reboot_wipe_with_overrides_and_plain_reboot_keeps_flash(make_sim):
    sim = await make_sim()
    sim.press_button(work_on=True, set_temp=50)
    sim.control("reboot", {"down": "0.1", "wipe": "0"})
    await sim.wait_up()
    assert sim.state()["work_on"] and sim.state()["set_temp"] == 50
    sim.control("reboot", {"down": "0.1", "wipe": "true", "set_temp": "33"})
    await sim.wait_up()
    assert not sim.state()["work_on"] and sim.state()["set_temp"] == 33


async def test_reboot_wipe_esphome_boots_heat_as_with_nothing_saved(make_sim, broker):
    sim = await make_sim(firmware="esphome", mqtt=broker.address)
    sim.press_button(work_on=False, set_temp=30)
    sim.reboot(down=0.1, wipe=True)
    await sim.wait_up()
    esp = sim.state()["esphome"]
    assert (esp["mode"], esp["low"], esp["high"]) == ("heat", 40.0, 42.0)


def test_reboot_wipe_shorthand():
    assert FAULT_KINDS["reboot_wipe"] == ("reboot", {"wipe": True})
    assert ScheduledFault.parse("reboot_wipe:3@5").action() == ("reboot", {"wipe": True,
                                                                            "down": 3.0})


# -- phantom clients fill the device's client table -------------------------------------------
async def test_occupy_refuses_new_clients_and_keeps_open_ones(make_sim):
    sim = await make_sim(printer_frame_every=0)
    ws, _ = await ws_open(sim)
    result = sim.control("occupy", {"seconds": "0.8"})
    assert result["clients"] == 7 and sim.state()["occupied"] == 7
    with pytest.raises(Exception):  # noqa: B017 - closed at once, like a full device
        await ws_open(sim, timeout=1)
    assert sim.state()["connections_refused"] == 1
    assert len(await collect(ws, 0.3)) >= 2 and ws.state is State.OPEN  # still served
    await send(ws, {"settings": {"set_temp": 44}})
    await settle(sim, 1)
    assert sim.state()["set_temp"] == 44
    await eventually(lambda: sim.state()["occupied"] == 0, what="phantoms gone")
    late, _ = await ws_open(sim)
    assert sim.state()["clients"] == 2
    await asyncio.gather(ws.close(), late.close())


async def test_occupy_some_slots_and_http503_style(make_sim):
    sim = await make_sim(max_clients=3, refuse_style="http503")
    status, body = await asyncio.to_thread(
        http_get, sim.base_url + "/sim/control?action=occupy&clients=2&seconds=5")
    assert status == 200 and body["clients"] == 2
    ws, _ = await ws_open(sim)  # the one slot left
    with pytest.raises(InvalidStatus) as info:
        await ws_open(sim)
    assert info.value.response.status_code == 503
    assert sim.state()["occupied_remaining"] > 4
    await ws.close()


async def test_occupy_fault_schedule_and_esphome(make_sim):
    assert ScheduledFault.parse("occupy:2@0.1").action() == ("occupy", {"seconds": 2.0})
    sim = await make_sim(faults=["occupy:0.6@0"])
    await eventually(lambda: sim.state()["occupied"] == 7)
    with pytest.raises(Exception):  # noqa: B017
        await ws_open(sim, timeout=1)
    esp = await make_sim(firmware="esphome")
    with pytest.raises(ValueError, match="no WebSocket"):
        esp.control("occupy")
