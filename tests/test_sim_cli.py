"""The simulator as a process: ``scripts/panda_breath_sim.py`` driven through testbed.sim."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest
import sim_fixtures
from sim_fixtures import collect, ws_open
from testbed import SIMULATOR, ProcessError, python_executable, wait_until
from testbed.sim import SimProcess

broker = sim_fixtures.broker
probe_factory = sim_fixtures.probe_factory


def test_cli_starts_fast_and_serves_state(tmp_path):
    sim = SimProcess(tmp_path, firmware="v1.0.0", time_scale=30,
                     extra_args=["--frame-interval", "0.2"])
    started = time.monotonic()
    with sim:
        assert time.monotonic() - started < 1.5  # interpreter start + imports + listener
        state = sim.state()
        assert state["firmware"] == "v1.0.0" and state["time_scale"] == 30
        assert state["port"] == sim.port and state["up"]
        assert sim.control("button", work_on=True, work_mode=2, set_temp=45)["ok"]
        wait_until(lambda: sim.state()["heater_on"], 3, what="heating after a button press")
        with pytest.raises(ProcessError, match="HTTP 400"):
            sim.control("no_such_action")
    assert not sim.running
    assert "Panda Breath simulator (v1.0.0)" in sim.log_path.read_text()


async def test_cli_websocket_and_scheduled_faults(tmp_path):
    sim = SimProcess(tmp_path, extra_args=[
        "--frame-interval", "0.1", "--printer-frame-every", "0",
        "--boot-work-on", "true", "--boot-set-temp", "45", "--boot-work-mode", "on",
        "--fault", "silence:0.6@0.8", "--fault", "ptc_open@0.2",
    ])
    await asyncio.to_thread(sim.start)
    try:
        ws, snap = await ws_open(sim.ws_url)
        assert snap["settings"]["work_on"] == 1 and snap["settings"]["set_temp"] == 45
        messages = await collect(ws, 1.6)
        times = [t for t, _ in messages]
        assert max(b - a for a, b in zip(times, times[1:], strict=False)) > 0.45  # the silence
        faults = [json.loads(m)["settings"].get("ptc_sensor_status") for _, m in messages]
        assert 2 in faults
        state = await asyncio.to_thread(sim.state)
        assert state["sensor_faults"]["ptc_sensor_status"] == 2 and not state["heater_on"]
        await ws.close()
    finally:
        await asyncio.to_thread(sim.stop)


def test_cli_rejects_bad_arguments():
    for args in (["--firmware", "v9"], ["--fault", "explode@1"],
                 ["--firmware", "v1.0.3", "--mqtt", "127.0.0.1:1"]):
        result = subprocess.run([python_executable(), str(SIMULATOR), "--port", "0", *args],
                                capture_output=True, text=True, timeout=10)
        assert result.returncode == 2, (args, result.stderr)


def test_cli_esphome_over_mqtt_and_graceful_stop(tmp_path, broker, probe_factory):
    probe = probe_factory(broker, "panda-breath/#")
    sim = SimProcess(tmp_path, firmware="esphome", mqtt=broker,
                     extra_args=["--frame-interval", "0.3"]).start()
    try:
        probe.wait_sync("panda-breath/status", lambda p: p == "online")
        probe.wait_sync("panda-breath/sensor/chamber_temperature/state")
        probe.publish("panda-breath/climate/chamber/mode/command", "OFF")
        probe.wait_sync("panda-breath/climate/chamber/mode/state", lambda p: p == "off")
        assert sim.state()["esphome"]["mode"] == "off"
        stopped_at = time.monotonic()
        sim.stop()  # SIGTERM: ESPHome's shutdown message
        probe.wait_sync("panda-breath/status", lambda p: p == "offline", after=stopped_at)
    finally:
        sim.kill()
