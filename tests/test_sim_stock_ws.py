"""The simulator's stock WebSocket protocol, driven by a real ``websockets`` client.

For each firmware quirk: the quirk happens, and the correct way works.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import sim_fixtures
from panda_breath_sim import SECRET_AP_PASSWORD, SECRET_WIFI_PASSWORD
from sim_fixtures import collect, eventually, recv_json, send, settle, ws_open

make_sim = sim_fixtures.make_sim


async def test_snapshot_has_all_roots_and_clear_text_secrets(make_sim):
    sim = await make_sim(firmware="v1.0.3")
    ws, snap = await ws_open(sim)
    assert set(snap) == {"settings", "printer", "sta", "ap", "wifi"}
    s = snap["settings"]
    assert s["fw_version"] == "V1.0.3"
    for key in ("work_on", "work_mode", "set_temp", "filtertemp", "hotbedtemp", "custom_temp",
                "custom_timer", "isrunning", "remaining_seconds", "printer_type", "language",
                "warehouse_temper", "ptc_sensor_status", "warehouse_sensor_status",
                "ptc_heater_status"):
        assert key in s, key
    assert s["work_on"] == 0 and type(s["work_on"]) is int  # snapshots show int 0/1
    assert set(snap["printer"]) >= {"name", "host", "port", "state", "list"}
    assert set(snap["sta"]) >= {"ip", "hostname", "state"}
    assert snap["wifi"]["password"] == SECRET_WIFI_PASSWORD
    assert snap["ap"]["password"] == SECRET_AP_PASSWORD
    await ws.close()


async def test_snapshot_per_version(make_sim):
    v100 = await make_sim(firmware="v1.0.0")
    ws, snap = await ws_open(v100)
    assert snap["settings"]["fw_version"] == "V1.0.0"
    assert "temp" in snap["settings"] and "set_temp" not in snap["settings"]
    assert "printer_type" not in snap["settings"] and "ha" not in snap
    await ws.close()
    v104 = await make_sim(firmware="v1.0.4")
    ws, snap = await ws_open(v104)
    assert set(snap["ha"]) >= {"ip", "port", "user", "state"}
    assert snap["settings"]["chamber_temp"] == snap["settings"]["warehouse_temper"]
    await ws.close()


async def test_periodic_frames_whole_degrees_at_cadence(make_sim):
    sim = await make_sim(frame_interval=0.15, time_scale=300, printer_frame_every=3)
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"work_mode": 2}})
    await send(ws, {"settings": {"set_temp": 45}})
    await send(ws, {"settings": {"work_on": True}})
    frames = [(t, json.loads(m)) for t, m in await collect(ws, 1.6)]
    temps = [(t, f["settings"]) for t, f in frames if "settings" in f]
    assert len(temps) >= 8
    for _, settings in temps:
        assert set(settings) == {"warehouse_temper"}  # no work_on/work_mode by default
        assert type(settings["warehouse_temper"]) is int
    gaps = [b[0] - a[0] for a, b in zip(temps, temps[1:], strict=False)]
    assert 0.1 < sum(gaps) / len(gaps) < 0.2
    assert temps[-1][1]["warehouse_temper"] > temps[0][1]["warehouse_temper"]  # heating
    assert any(f == {"printer": {"state": 0}} for _, f in frames)
    await ws.close()


async def test_default_frame_interval_is_two_seconds():
    from panda_breath_sim import create_simulator

    assert create_simulator().frame_interval == 2.0
    assert create_simulator(firmware="esphome").frame_interval == 5.0


async def test_periodic_options_cal_temp_state_and_v104(make_sim):
    sim = await make_sim(firmware="v1.0.4", cal_temp=True, periodic_state=True,
                         printer_frame_every=0)
    ws, _ = await ws_open(sim)
    frame = await recv_json(ws)
    s = frame["settings"]
    assert {"warehouse_temper", "chamber_temp", "cal_warehouse_temp", "work_on",
            "work_mode"} <= set(s)
    assert isinstance(s["cal_warehouse_temp"], float)
    assert round(s["cal_warehouse_temp"], 1) == s["cal_warehouse_temp"]
    await ws.close()
    only = await make_sim(firmware="v1.0.4", chamber_temp_only=True, printer_frame_every=0)
    ws, _ = await ws_open(only)
    assert set((await recv_json(ws))["settings"]) == {"chamber_temp"}
    await ws.close()


async def test_v103_work_on_integer_ignored_boolean_accepted(make_sim):
    sim = await make_sim(firmware="v1.0.3")
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"work_on": 1}})
    await settle(sim, 1)
    state = sim.state()
    assert state["work_on"] is False and state["frames_ignored"] == 1
    assert "JSON boolean" in state["recent_frames"][-1]["ignored"]["work_on"]
    await send(ws, {"settings": {"work_on": True}})
    await settle(sim, 2)
    assert sim.state()["work_on"] is True
    await ws.close()


async def test_v101_accepts_integer_work_on(make_sim):
    sim = await make_sim(firmware="v1.0.1")
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"work_on": 1}})
    await settle(sim, 1)
    assert sim.state()["work_on"] is True
    await ws.close()


@pytest.mark.parametrize(
    ("firmware", "works", "ignored"),
    [("v1.0.0", "temp", "set_temp"), ("v1.0.1", "set_temp", "temp"),
     ("v1.0.3", "set_temp", "temp")],
)
async def test_target_key_per_version(make_sim, firmware, works, ignored):
    sim = await make_sim(firmware=firmware)
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {ignored: 50}})
    await settle(sim, 1)
    assert sim.state()["set_temp"] == 40
    assert ignored in sim.state()["recent_frames"][-1]["ignored"]
    await send(ws, {"settings": {works: 50}})
    await settle(sim, 2)
    assert sim.state()["set_temp"] == 50
    assert "set_temp" in sim.state()["last_applied_at"]
    await ws.close()


async def test_target_clamped_to_device_range(make_sim):
    sim = await make_sim()
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"set_temp": 85}})
    await settle(sim, 1)
    assert sim.state()["set_temp"] == 60
    await send(ws, {"settings": {"set_temp": -4}})
    await settle(sim, 2)
    assert sim.state()["set_temp"] == 0
    await ws.close()


async def test_v100_mode_numbers_are_mirrored(make_sim):
    old = await make_sim(firmware="v1.0.0")
    ws, _ = await ws_open(old)
    await send(ws, {"settings": {"work_mode": 3}})
    await settle(old, 1)
    assert old.state()["mode"] == "auto" and old.state()["work_mode"] == 3
    await send(ws, {"settings": {"work_mode": 1}})
    await settle(old, 2)
    assert old.state()["mode"] == "drying"
    await ws.close()
    new = await make_sim(firmware="v1.0.3")
    ws, _ = await ws_open(new)
    await send(ws, {"settings": {"work_mode": 3}})
    await settle(new, 1)
    assert new.state()["mode"] == "drying"
    await send(ws, {"settings": {"work_mode": 7}})
    await settle(new, 2)
    assert new.state()["mode"] == "drying" and new.state()["frames_ignored"] == 1
    await ws.close()


async def test_v103_multi_key_frame_applies_only_first_key(make_sim):
    sim = await make_sim(firmware="v1.0.3")
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"work_mode": 2, "set_temp": 45, "work_on": True}})
    await settle(sim, 1)
    state = sim.state()
    assert state["work_mode"] == 2 and state["set_temp"] == 40 and state["work_on"] is False
    assert state["keys_ignored"] == 2 and state["recent_frames"][-1]["status"] == "partial"
    for key, value in (("set_temp", 45), ("work_on", True)):  # the correct way: one key a frame
        await send(ws, {"settings": {key: value}})
    await settle(sim, 3)
    assert sim.state()["set_temp"] == 45 and sim.state()["work_on"] is True
    await ws.close()


async def test_multi_key_frames_flag_and_older_builds_apply_all(make_sim):
    for sim in (await make_sim(firmware="v1.0.3", multi_key_frames=True),
                await make_sim(firmware="v1.0.2")):
        ws, _ = await ws_open(sim)
        await send(ws, {"settings": {"work_mode": 2, "set_temp": 45, "work_on": True}})
        await settle(sim, 1)
        state = sim.state()
        assert (state["work_mode"], state["set_temp"], state["work_on"]) == (2, 45, True)
        await ws.close()


async def test_v104_ws_aliases_and_flag(make_sim):
    sim = await make_sim(firmware="v1.0.4")
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"target_temp": 47}})
    await settle(sim, 1)
    assert sim.state()["set_temp"] == 47
    await ws.close()
    strict = await make_sim(firmware="v1.0.4", ws_aliases=False)
    ws, _ = await ws_open(strict)
    await send(ws, {"settings": {"target_temp": 47}})
    await settle(strict, 1)
    assert strict.state()["set_temp"] == 40
    await ws.close()
    old = await make_sim(firmware="v1.0.3")
    ws, _ = await ws_open(old)
    await send(ws, {"settings": {"target_temp": 47}})
    await settle(old, 1)
    assert old.state()["recent_frames"][-1]["ignored"] == {"target_temp": "unknown key"}
    await ws.close()


async def test_v103_drying_values_need_commit(make_sim):
    sim = await make_sim(firmware="v1.0.3")
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"filament_temp": 50}})
    await send(ws, {"settings": {"filament_timer": 3}})
    await settle(sim, 2)
    await ws.close()
    ws, snap = await ws_open(sim)  # the only way to re-read: reconnect
    assert (snap["settings"]["custom_temp"], snap["settings"]["custom_timer"]) == (55, 12)
    await send(ws, {"settings": {"filament_temp": 50}})
    await send(ws, {"settings": {"filament_timer": 3}})
    await send(ws, {"settings": {"filament_drying_mode": 3}})
    await settle(sim, 5)
    await ws.close()
    ws, snap = await ws_open(sim)
    assert (snap["settings"]["custom_temp"], snap["settings"]["custom_timer"]) == (50, 3)
    assert snap["settings"]["filament_drying_mode"] == 3
    assert "custom_temp" in sim.state()["last_applied_at"]
    await ws.close()


async def test_v102_drying_values_apply_directly(make_sim):
    sim = await make_sim(firmware="v1.0.2")
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"filament_temp": 50}})
    await send(ws, {"settings": {"filament_drying_mode": 3}})
    await settle(sim, 2)
    assert sim.state()["custom_temp"] == 50
    assert sim.state()["recent_frames"][-1]["status"] == "ignored"  # no such key before v1.0.3
    await ws.close()


async def test_drying_runs_on_scaled_clock_and_stops(make_sim):
    sim = await make_sim(firmware="v1.0.3", time_scale=3600)
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"filament_timer": 1}})
    await send(ws, {"settings": {"filament_drying_mode": 3}})
    await send(ws, {"settings": {"isrunning": 1}})
    await settle(sim, 3)
    state = sim.state()
    assert state["drying"]["running"] and state["work_on"] and state["mode"] == "drying"
    assert 0 < state["drying"]["remaining_seconds"] <= 3600
    assert state["heating_target"] == 55
    await eventually(lambda: not sim.state()["drying"]["running"], 3, "drying to finish")
    assert sim.state()["work_on"] is False and sim.state()["heater_on"] is False
    await ws.close()


async def test_work_on_false_and_isrunning_zero_stop_drying(make_sim):
    sim = await make_sim(firmware="v1.0.3")
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"isrunning": 1}})
    await send(ws, {"settings": {"work_on": False}})
    await settle(sim, 2)
    assert not sim.state()["drying"]["running"]
    await send(ws, {"settings": {"isrunning": 1}})
    await send(ws, {"settings": {"isrunning": 0}})
    await settle(sim, 4)
    assert not sim.state()["drying"]["running"]
    await ws.close()


async def test_no_push_to_other_clients_and_no_ack(make_sim):
    sim = await make_sim(printer_frame_every=0)
    writer, _ = await ws_open(sim)
    reader, _ = await ws_open(sim)
    await send(writer, {"settings": {"set_temp": 52}})
    await send(writer, {"query": 1})
    await send(writer, {"get_settings": 1})
    for ws in (writer, reader):
        for _, message in await collect(ws, 0.5):
            assert json.loads(message) == {"settings": {"warehouse_temper": 22}}
    state = sim.state()
    assert state["set_temp"] == 52 and state["frames_ignored"] == 2
    assert "no-op" in state["recent_frames"][-1]["ignored"]["get_settings"]
    _, snap = await ws_open(sim)  # a new snapshot is the way to see it
    assert snap["settings"]["set_temp"] == 52
    await asyncio.gather(writer.close(), reader.close())


async def test_unknown_and_malformed_client_frames_are_counted(make_sim):
    sim = await make_sim()
    ws, _ = await ws_open(sim)
    await ws.send("{not json")
    await ws.send(b"\x01\x02")
    await send(ws, [1, 2])
    await send(ws, {"bogus": {"x": 1}})
    await send(ws, {"settings": {"no_such_key": 1, }})
    await send(ws, {"settings": {"warehouse_temper": 99}})
    await settle(sim, 6)
    reasons = [f.get("reason") or next(iter(f["ignored"].values()))
               for f in sim.state()["recent_frames"]]
    assert reasons == ["malformed JSON", "binary frame", "not a JSON object", "unknown root",
                       "unknown key", "read-only field"]
    assert sim.state()["frames_ignored"] == 6
    await ws.close()


async def test_admin_responses(make_sim):
    sim = await make_sim(firmware="v1.0.3", printer_frame_every=0)
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"printer_type": 2}})
    messages = [json.loads(m) for _, m in await collect(ws, 0.4)]
    assert {"response": {"type": "printer_type", "ok": 1}} in messages
    assert sim.state()["printer_type"] == 2
    await ws.close()


async def test_eighth_client_is_refused(make_sim):
    sim = await make_sim()
    clients = [(await ws_open(sim))[0] for _ in range(7)]
    with pytest.raises(Exception):  # noqa: B017 - the TCP connection is closed at once
        await ws_open(sim, timeout=1.0)
    state = sim.state()
    assert state["clients"] == 7 and state["connections_refused"] == 1
    await clients[0].close()
    await eventually(lambda: sim.state()["clients"] == 6)
    extra, _ = await ws_open(sim)
    await asyncio.gather(extra.close(), *(c.close() for c in clients[1:]))


async def test_always_on_heats_with_hysteresis(make_sim):
    sim = await make_sim(time_scale=600)
    ws, _ = await ws_open(sim)
    for key, value in (("work_mode", 2), ("set_temp", 35), ("work_on", True)):
        await send(ws, {"settings": {key: value}})
    await eventually(lambda: sim.state()["heater_on"], what="relay on")
    assert sim.state()["fan_on"]
    await eventually(lambda: sim.state()["chamber_temp"] > 35.4, 6, "chamber at target")
    await eventually(lambda: not sim.state()["heater_on"], 2, "relay off at the band top")
    await eventually(lambda: sim.state()["heater_on"], 6, "relay back on below the band")
    assert 34 < sim.state()["chamber_temp"] < 36.5
    assert sim.state()["ptc_temp"] > sim.state()["chamber_temp"]
    await ws.close()


async def test_auto_mode_idles_without_printer(make_sim):
    sim = await make_sim(time_scale=60)
    ws, _ = await ws_open(sim)
    await send(ws, {"settings": {"work_mode": 1}})
    await send(ws, {"settings": {"work_on": True}})
    await settle(sim, 2)
    await asyncio.sleep(0.3)
    assert not sim.state()["heater_on"] and sim.state()["heating_target"] is None
    sim.set_printer(state=3, bed_target=100)
    await eventually(lambda: sim.state()["heater_on"], what="auto heating with a bed target")
    await ws.close()


async def test_push_changes_flag(make_sim):
    sim = await make_sim(push_changes=True, printer_frame_every=0, frame_interval=5)
    writer, _ = await ws_open(sim)
    reader, _ = await ws_open(sim)
    await send(writer, {"settings": {"set_temp": 52}})
    assert await recv_json(reader) == {"settings": {"set_temp": 52}}
    sim.press_button(work_on=True)
    assert await recv_json(reader) == {"settings": {"work_on": 1}}
    assert await recv_json(writer) == {"settings": {"work_on": 1}}
    await asyncio.gather(writer.close(), reader.close())


async def test_sensor_fault_readings_and_swapped_codes(make_sim):
    ui = await make_sim(printer_frame_every=0)
    ui.sensor_fault("warehouse", 1)
    assert ui.state()["reported_chamber_temp"] == 127  # 1 = short: a shorted NTC reads hot
    swapped = await make_sim(swap_sensor_codes=True)
    swapped.sensor_fault("warehouse", 1)
    assert swapped.state()["reported_chamber_temp"] == -40
