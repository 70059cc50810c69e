"""v1.0.4 native MQTT through a real Mosquitto broker."""

from __future__ import annotations

import json
import time

import sim_fixtures
from sim_fixtures import eventually, json_payload, send, settle, ws_open
from testbed.sim import SimProcess

make_sim = sim_fixtures.make_sim
broker = sim_fixtures.broker
probe_factory = sim_fixtures.probe_factory

BASE = "panda_breath/ACEBE68FE51C"


async def test_state_availability_and_commands(make_sim, broker, probe_factory):
    probe = probe_factory(broker, f"{BASE}/#")
    sim = await make_sim(firmware="v1.0.4", mqtt=broker.address, time_scale=60)
    await probe.wait(f"{BASE}/availability", lambda p: p == "online")
    late = probe_factory(broker, f"{BASE}/availability")  # subscribes after the fact
    assert (await late.wait(f"{BASE}/availability")).retain
    await probe.wait(f"{BASE}/state")
    t0 = time.monotonic()
    await eventually(lambda: len([m for m in probe.on(f"{BASE}/state") if m.at > t0]) >= 3, 3)
    burst = [m for m in probe.on(f"{BASE}/state") if m.at > t0]
    rate = (len(burst) - 1) / (burst[-1].at - burst[0].at)
    assert 1.5 < rate < 2.6  # about twice a second
    state = json_payload(burst[-1].payload)
    for key in ("chamber_temp", "work_on", "mode", "target_temp", "filament_drying_mode",
                "filter_temp", "heater_temp", "custom_temp", "custom_timer", "drying_running",
                "drying_remaining_min"):
        assert key in state, key
    assert state["work_on"] == "OFF" and state["mode"] == "auto mode"

    probe.publish(f"{BASE}/command",
                  json.dumps({"work_on": "ON", "mode": "power on", "target_temp": 45}))
    await eventually(lambda: sim.state()["heater_on"], what="heating by MQTT command")
    after = time.monotonic()
    msg = await probe.wait(f"{BASE}/state", lambda p: json.loads(p)["work_on"] == "ON",
                           after=after)
    assert json.loads(msg.payload)["mode"] == "power on"
    assert json.loads(msg.payload)["target_temp"] == 45
    assert set(sim.state()["last_applied_at"]) >= {"work_on", "work_mode", "set_temp"}

    # WS spellings are not MQTT spellings: ignored and counted.
    probe.publish(f"{BASE}/command", json.dumps({"work_on": False, "set_temp": 30}))
    probe.publish(f"{BASE}/command", "not json")
    await eventually(lambda: sim.state()["mqtt"]["commands_ignored"] == 2)
    assert sim.state()["work_on"] is True and sim.state()["set_temp"] == 45
    probe.publish(f"{BASE}/command", json.dumps({"work_on": "OFF", "target_temp": 0}))
    await eventually(lambda: not sim.state()["work_on"])
    assert sim.state()["set_temp"] == 0


async def test_mqtt_state_reflects_ws_and_button_changes(make_sim, broker, probe_factory):
    probe = probe_factory(broker, f"{BASE}/state")
    sim = await make_sim(firmware="v1.0.4", mqtt=broker.address)
    await probe.wait(f"{BASE}/state")
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"set_temp": 51}})
    await settle(sim, 1)
    await probe.wait(f"{BASE}/state", lambda p: json.loads(p)["target_temp"] == 51)
    sim.press_button(work_mode="drying")
    await probe.wait(f"{BASE}/state", lambda p: json.loads(p)["mode"] == "filament drying")
    probe.publish(f"{BASE}/command", json.dumps({"custom_temp": 50, "drying_running": "ON"}))
    msg = await probe.wait(f"{BASE}/state", lambda p: json.loads(p)["drying_running"] == "ON")
    assert json.loads(msg.payload)["custom_temp"] == 50  # number writes apply at once
    assert json.loads(msg.payload)["drying_remaining_min"] > 0
    await ws.close()


async def test_broker_loss_reconnects(make_sim, broker, probe_factory):
    sim = await make_sim(firmware="v1.0.4", mqtt=broker.address)
    await eventually(lambda: sim.state()["mqtt"]["connected"])
    broker.restart()
    probe = probe_factory(broker, f"{BASE}/availability", f"{BASE}/state")
    await probe.wait(f"{BASE}/availability", lambda p: p == "online", timeout=6)
    await probe.wait(f"{BASE}/state")
    assert sim.state()["mqtt"]["connects"] >= 2


async def test_reboot_publishes_offline_then_online(make_sim, broker, probe_factory):
    probe = probe_factory(broker, f"{BASE}/availability")
    sim = await make_sim(firmware="v1.0.4", mqtt=broker.address)
    await probe.wait(f"{BASE}/availability", lambda p: p == "online")
    sim.reboot(down=0.3)
    offline = await probe.wait(f"{BASE}/availability", lambda p: p == "offline")
    await probe.wait(f"{BASE}/availability", lambda p: p == "online", after=offline.at)


def test_will_published_when_process_dies(tmp_path, broker, probe_factory):
    probe = probe_factory(broker, f"{BASE}/availability")
    sim = SimProcess(tmp_path, firmware="v1.0.4", mqtt=broker).start()
    try:
        probe.wait_sync(f"{BASE}/availability", lambda p: p == "online")
        assert sim.state()["mqtt"]["connected"]
        killed_at = time.monotonic()
        sim.kill()  # a power cut: no goodbye, the broker publishes the will
        probe.wait_sync(f"{BASE}/availability", lambda p: p == "offline", after=killed_at)
        late = probe_factory(broker, f"{BASE}/availability")
        assert late.wait_sync(f"{BASE}/availability").payload == "offline"  # retained
    finally:
        sim.kill()
