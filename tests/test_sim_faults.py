"""Fault injection, reboot/flash persistence and the HTTP endpoints of the in-process simulator."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import sim_fixtures
from sim_fixtures import collect, eventually, http_get, recv_json, send, settle, ws_open
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

make_sim = sim_fixtures.make_sim


async def heat(ws, target: int = 45) -> None:
    for key, value in (("work_mode", 2), ("set_temp", target), ("work_on", True)):
        await send(ws, {"settings": {key: value}})



async def test_silence_keeps_socket_open_and_commands_apply(make_sim):
    sim = await make_sim()
    ws, _ = await ws_open(sim)
    await recv_json(ws)
    sim.silence(0.8)
    started = time.monotonic()
    await send(ws, {"settings": {"set_temp": 50}})
    first = await asyncio.wait_for(ws.recv(), 3)
    assert time.monotonic() - started > 0.7  # nothing arrived during the silence
    assert "warehouse_temper" in json.loads(first)["settings"]
    assert ws.state is State.OPEN
    assert sim.state()["set_temp"] == 50 and sim.state()["silent"] is False
    await ws.close()


async def test_silence_can_also_withhold_snapshots(make_sim):
    sim = await make_sim()
    sim.silence(0.5, snapshots=True)
    ws = await connect(sim.ws_url)
    assert await collect(ws, 0.3) == []
    assert sim.state()["silent"] is True
    await ws.close()


async def test_drop_all_connections(make_sim):
    sim = await make_sim()
    clients = [(await ws_open(sim))[0] for _ in range(3)]
    assert sim.drop_connections() == 3
    for ws in clients:
        with pytest.raises(ConnectionClosed):
            for _ in range(50):
                await asyncio.wait_for(ws.recv(), 2)
    await eventually(lambda: sim.state()["clients"] == 0)
    ws, _ = await ws_open(sim)  # reconnecting works at once
    await ws.close()


async def test_refuse_connections_for_a_while(make_sim):
    sim = await make_sim()
    sim.refuse(0.5)
    with pytest.raises(Exception):  # noqa: B017 - closed without an HTTP answer
        await ws_open(sim, timeout=1)
    assert sim.state()["connections_refused"] == 1 and sim.state()["refusing"]
    await asyncio.sleep(0.5)
    ws, _ = await ws_open(sim)
    await ws.close()


async def test_refuse_style_http503(make_sim):
    from websockets.exceptions import InvalidStatus

    sim = await make_sim(refuse_style="http503")
    sim.refuse(1)
    with pytest.raises(InvalidStatus) as info:
        await ws_open(sim)
    assert info.value.response.status_code == 503


async def test_reboot_resumes_heating_from_flash_without_command(make_sim):
    sim = await make_sim(time_scale=60)
    ws, _ = await ws_open(sim)
    await heat(ws)
    await eventually(lambda: sim.state()["heater_on"], what="heating")
    assert sim.reboot(down=0.4)
    with pytest.raises(ConnectionClosed):
        for _ in range(50):
            await asyncio.wait_for(ws.recv(), 2)
    state = sim.state()
    assert not state["up"] and not state["heater_on"] and state["refusing"]
    with pytest.raises(Exception):  # noqa: B017 - down: connections refused
        await ws_open(sim, timeout=1)
    await sim.wait_up()
    assert sim.state()["boot_count"] == 2
    await eventually(lambda: sim.state()["heater_on"], what="heating resumed with no command")
    ws, snap = await ws_open(sim)
    assert snap["settings"]["work_on"] == 1 and snap["settings"]["set_temp"] == 45
    assert sim.state()["frames_received"] == 3  # nobody asked it to heat after the boot
    await ws.close()


async def test_reboot_with_flash_overrides_and_reset_frame(make_sim):
    sim = await make_sim(time_scale=60)
    sim.reboot(down=0.1, work_on=True, set_temp=50, work_mode="on")
    await sim.wait_up()
    await eventually(lambda: sim.state()["heater_on"])
    assert sim.state()["set_temp"] == 50
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"reset": 1}})
    await eventually(lambda: sim.state()["boot_count"] == 3, what="reset reboots")


async def test_boot_options_start_as_power_cycled_with_saved_heat(make_sim):
    sim = await make_sim(time_scale=60, boot_work_on=True, boot_set_temp=45, boot_work_mode="on")
    await eventually(lambda: sim.state()["heater_on"], what="heating at boot")
    _, snap = await ws_open(sim)
    assert snap["settings"]["work_on"] == 1 and snap["settings"]["work_mode"] == 2


async def test_state_file_persists_across_processes(make_sim, tmp_path):
    path = tmp_path / "flash.json"
    first = await make_sim(state_file=str(path))
    ws, _ = await ws_open(first)
    await heat(ws, 48)
    await settle(first, 3)
    await ws.close()
    await first.stop()
    saved = json.loads(path.read_text())
    assert saved["work_on"] is True and saved["set_temp"] == 48
    second = await make_sim(state_file=str(path), time_scale=60)
    assert second.state()["set_temp"] == 48
    await eventually(lambda: second.state()["heater_on"])


async def test_factory_reset_clears_flash(make_sim):
    sim = await make_sim()
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"set_temp": 55}})
    await send(ws, {"settings": {"factory_reset": 1}})
    assert await recv_json(ws) == {"response": {"type": "factory_reset", "ok": 1}}
    await eventually(lambda: sim.state()["boot_count"] == 2)
    assert sim.state()["set_temp"] == 40


async def test_malformed_frames_reach_every_client(make_sim):
    sim = await make_sim(frame_interval=5)
    clients = [(await ws_open(sim))[0] for _ in range(2)]
    assert sum(sim.send_malformed(kind) for kind in ("json", "types", "oversize", "binary")) == 8
    for ws in clients:
        got = [await asyncio.wait_for(ws.recv(), 2) for _ in range(4)]
        assert got[0] == '{"settings":{"warehouse_temper":'
        assert json.loads(got[1])["settings"]["warehouse_temper"] == "hot"
        assert len(got[2]) == 65536 and json.loads(got[2])["settings"]
        assert isinstance(got[3], bytes)
        assert ws.state is State.OPEN
    await asyncio.gather(*(c.close() for c in clients))


async def test_sensor_fault_stops_heating_and_shows_in_frames(make_sim):
    sim = await make_sim(time_scale=60, printer_frame_every=0)
    ws, _ = await ws_open(sim)
    await heat(ws)
    await eventually(lambda: sim.state()["heater_on"])
    sim.sensor_fault("ptc", 1)
    assert not sim.state()["heater_on"] or await eventually(lambda: not sim.state()["heater_on"])
    frames = [json.loads(m)["settings"] for _, m in await collect(ws, 0.35)]
    assert {"ptc_sensor_status": 1, "warehouse_sensor_status": 0, "ptc_heater_status": 0} in frames
    assert any(f.get("ptc_sensor_status") == 1 and "warehouse_temper" in f for f in frames)
    _, snap = await ws_open(sim)
    assert snap["settings"]["ptc_sensor_status"] == 1
    await asyncio.sleep(0.2)
    assert not sim.state()["heater_on"]
    sim.sensor_fault("warehouse", 2)
    frames = [json.loads(m)["settings"] for _, m in await collect(ws, 0.3)]
    assert any(f.get("warehouse_temper") == -40 for f in frames)  # an open NTC reads cold
    sim.clear_faults()
    await eventually(lambda: sim.state()["heater_on"], what="heating after the fault clears")


async def test_timed_sensor_fault_clears_itself(make_sim):
    sim = await make_sim()
    sim.sensor_fault("heater", 3, seconds=0.2)
    assert sim.state()["sensor_faults"]["ptc_heater_status"] == 3
    await eventually(lambda: not sim.state()["fault_active"])


async def test_button_press_is_local_and_not_pushed(make_sim):
    sim = await make_sim(time_scale=60, printer_frame_every=0)
    ws, _ = await ws_open(sim)
    sim.press_button(work_on=True, work_mode="on", set_temp=50)
    for _, message in await collect(ws, 0.4):
        assert set(json.loads(message)["settings"]) == {"warehouse_temper"}
    state = sim.state()
    assert state["work_on"] and state["set_temp"] == 50 and state["frames_received"] == 0
    assert state["recent_frames"][-1]["transport"] == "button"
    await eventually(lambda: sim.state()["heater_on"])
    _, snap = await ws_open(sim)
    assert snap["settings"]["work_on"] == 1 and snap["settings"]["set_temp"] == 50


async def test_heating_raises_chamber_at_time_scale(make_sim):
    sim = await make_sim(time_scale=600, frame_interval=0.2)
    ws, snap = await ws_open(sim)
    start = snap["settings"]["warehouse_temper"]
    await heat(ws, 45)
    await eventually(lambda: sim.state()["chamber_temp"] > 40, 5, "chamber above 40 °C")
    frames = [json.loads(m)["settings"]["warehouse_temper"] for _, m in await collect(ws, 0.5)
              if "settings" in json.loads(m)]
    assert max(frames) >= 40 > start
    await ws.close()


async def test_realistic_warmup_constants():
    """22 -> 45 °C takes 15-25 model minutes with the heater on (checked without waiting)."""
    from pbsim.thermal import ThermalModel

    model = ThermalModel()
    seconds = 0
    while model.chamber < 45 and seconds < 3600:
        model.step(1.0, relay_on=True, fan_on=True)
        seconds += 1
    assert 15 * 60 <= seconds <= 25 * 60


async def test_http_state_and_control(make_sim):
    sim = await make_sim()
    status, state = await asyncio.to_thread(http_get, sim.base_url + "/sim/state")
    assert status == 200
    for key in ("firmware", "work_on", "work_mode", "set_temp", "chamber_temp", "ptc_temp",
                "heater_on", "clients", "frames_received", "frames_ignored",
                "connections_total", "connections_refused", "frames_sent", "silent", "drying",
                "sensor_faults", "uptime", "time_scale", "recent_frames", "last_applied_at"):
        assert key in state, key
    url = sim.base_url + "/sim/control?action="
    status, body = await asyncio.to_thread(http_get, url + "silence&seconds=1")
    assert status == 200 and body["ok"] and sim.state()["silent"]
    status, body = await asyncio.to_thread(http_get, url + "ptc_short&seconds=5")
    assert sim.state()["sensor_faults"]["ptc_sensor_status"] == 1
    status, body = await asyncio.to_thread(http_get, url + "button&set_temp=33&work_on=1")
    assert body["applied"] == ["set_temp", "work_on"] and sim.state()["set_temp"] == 33
    status, body = await asyncio.to_thread(http_get, url + "set_temps&chamber=50")
    assert sim.state()["chamber_temp"] == pytest.approx(50, abs=0.5)
    status, body = await asyncio.to_thread(http_get, url + "nonsense")
    assert status == 400 and not body["ok"]
    status, body = await asyncio.to_thread(http_get, sim.base_url + "/nowhere")
    assert status == 404


async def test_emit_temperature_reports_at_once(make_sim):
    sim = await make_sim(frame_interval=5)
    ws, _ = await ws_open(sim)
    result = sim.control("emit_temperature", {"value": "33"})
    frame = await recv_json(ws, 1)
    assert frame == {"settings": {"warehouse_temper": 33}}
    assert 0 <= time.time() - result["sent_at"] < 1
    await ws.close()


async def test_recent_frames_time_and_last_applied_for_latency(make_sim):
    sim = await make_sim()
    ws, _ = await ws_open(sim)
    sent_at = time.time()
    await send(ws, {"settings": {"set_temp": 44}})
    await settle(sim, 1)
    state = sim.state()
    applied_at = state["last_applied_at"]["set_temp"]
    assert 0 <= applied_at - sent_at < 0.5
    assert state["recent_frames"][-1]["time"] == applied_at
    assert state["recent_frames"][-1]["payload"] == {"settings": {"set_temp": 44}}
    await ws.close()
