"""Hostile device->client frames on every personality, seen by real WebSocket and MQTT clients.

The simulator sends them so end-to-end tests can prove the bridge still obeys
TURN_OFF_HEATERS afterwards; here we prove what it sends, on which topics,
that the device itself is unchanged and that the next regular frame is normal.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest
import sim_fixtures
from panda_breath.websocket_client import connect
from pbsim.faults import FAULT_KINDS, ScheduledFault
from pbsim.hostile import HUGE_NUMBER, KINDS, NEW_KINDS
from sim_fixtures import collect, eventually, http_get, recv_json, ws_open
from websockets.protocol import State

make_sim = sim_fixtures.make_sim
broker = sim_fixtures.broker
probe_factory = sim_fixtures.probe_factory

BASE = "panda_breath/ACEBE68FE51C"
P = "panda-breath"
CLIMATE = f"{P}/climate/chamber"
ESPHOME_TOPICS = {
    f"{P}/sensor/chamber_temperature/state", f"{P}/sensor/ptc_element_temperature/state",
    f"{CLIMATE}/current_temperature/state", f"{CLIMATE}/target_temperature_low/state",
    f"{CLIMATE}/target_temperature_high/state", f"{CLIMATE}/mode/state",
    f"{CLIMATE}/action/state",
}


def strict_json(text: str) -> object:
    """Standard JSON: NaN and Infinity are not literals of it."""
    def reject(literal: str) -> None:
        raise ValueError(f"non-standard literal {literal}")

    return json.loads(text, parse_constant=reject)



async def recv_text(ws) -> str:
    return await asyncio.wait_for(ws.recv(), 3)


async def hostile_frames(sim, ws, kind: str, **params) -> list:
    """Run the ``malformed`` action and return exactly the frames it sent to ``ws``."""
    result = sim.control("malformed", {"kind": kind, **params})
    return [await asyncio.wait_for(ws.recv(), 3) for _ in range(result["sent"])]


@pytest.mark.parametrize("firmware", ["v1.0.0", "v1.0.3", "v1.0.4"])
async def test_new_kinds_over_websocket(make_sim, firmware):
    sim = await make_sim(firmware=firmware, frame_interval=30)
    ws, snap = await ws_open(sim)
    numeric = {k for k, v in snap["settings"].items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    assert {"warehouse_temper", "work_mode"} <= numeric

    (deep,) = await hostile_frames(sim, ws, "deep")
    assert deep == '{"settings":' + "[" * 5000 + "]" * 5000 + "}"
    (shallow,) = await hostile_frames(sim, ws, "deep", depth=40)
    assert strict_json(shallow) == {"settings": json.loads("[" * 40 + "]" * 40)}

    (huge,) = await hostile_frames(sim, ws, "huge_number")
    settings = strict_json(huge)["settings"]
    assert {k for k, v in settings.items() if v == HUGE_NUMBER} == numeric
    assert len(str(settings["warehouse_temper"])) == 400
    with pytest.raises(OverflowError):
        float(settings["warehouse_temper"])

    frames = await hostile_frames(sim, ws, "nonfinite")
    for frame, literal in zip(frames, ("NaN", "Infinity", "-Infinity"), strict=True):
        assert f'"warehouse_temper": {literal},' in frame
        settings = json.loads(frame)["settings"]
        assert {k for k, v in settings.items()
                if isinstance(v, float) and not math.isfinite(v)} == numeric
        with pytest.raises(ValueError, match="non-standard"):
            strict_json(frame)

    (strange,) = await hostile_frames(sim, ws, "unicode")
    keys = strict_json(strange)["settings"]
    t = "warehouse_temper"
    for key in ("\ud800", f"{t}\x00", f"\u202e{t}", f"{t}\u200b"):  # surrogate, NUL, RTL, ZWSP
        assert key in keys, key
    assert isinstance(keys["warehouse_temper"], str)
    assert float(keys["warehouse_temper"]) == 45  # Unicode digits a careless float() accepts

    roots = [strict_json(f) for f in await hostile_frames(sim, ws, "wrong_root")]
    assert [r for r in roots if isinstance(r, dict) and isinstance(r.get("settings"), dict)] == []
    assert {type(r).__name__ for r in roots} >= {"list", "int", "str", "NoneType", "bool", "dict"}

    assert ws.state is State.OPEN
    assert sim.state()["hostile_count"] == 1 + 1 + 1 + 3 + 1 + len(roots)
    await ws.close()


async def test_giant_frame_is_skipped_by_the_bridges_client(make_sim):
    sim = await make_sim(frame_interval=0.3, printer_frame_every=0)
    bridge_like = await connect("127.0.0.1", sim.port, "/ws", 2.0, "test", 1 << 20)
    messages: list[str | bytes] = []
    dropped: list[str] = []
    bridge_like.start(messages.append, dropped.append)
    await eventually(lambda: bool(messages))
    assert json.loads(messages[0])["settings"]["fw_version"] == "V1.0.3"
    ws, _ = await ws_open(sim)  # no limit: receives it whole
    sim.set_temperatures(chamber=30)
    assert sim.control("giant")["sent"] == 2
    while len(giant := await asyncio.wait_for(ws.recv(), 3)) < 1 << 20:
        pass  # a periodic frame queued before it
    assert len(giant) == 2 << 20 and json.loads(giant)["settings"]["warehouse_temper"] == 30
    assert await recv_json(ws) == {"settings": {"warehouse_temper": 30}}  # normal again
    # The bridge's client skipped it unread and stayed connected.
    await eventually(lambda: dropped == ["a message over 1024 KiB, skipped"])
    count = len(messages)
    await eventually(lambda: len(messages) > count)
    assert all(len(m) < 1 << 20 for m in messages)
    assert sim.state()["clients"] == 2 and "ws_client_close_1009" not in sim.state()["counters"]
    assert sim.state()["counters"]["hostile_giant"] == 2
    bridge_like.close()
    await ws.close()


async def test_all_sends_every_kind_and_state_is_unchanged(make_sim):
    sim = await make_sim(frame_interval=30)
    sim.press_button(work_on=True, work_mode="on", set_temp=45)
    before = {k: sim.state()[k] for k in ("work_on", "work_mode", "set_temp", "flash")}
    clients = [(await ws_open(sim))[0] for _ in range(2)]
    sent = sim.send_malformed("all", size=4096)
    assert sent % 2 == 0
    for ws in clients:
        got = [await asyncio.wait_for(ws.recv(), 3) for _ in range(sent // 2)]
        assert got[0] == '{"settings":{"warehouse_temper":'
        assert json.loads(got[1])["settings"]["warehouse_temper"] == "hot"
        assert len(got[2]) == 4096 and len(got[-1]) == 4096  # oversize ... giant
        assert isinstance(got[3], bytes)
        assert ws.state is State.OPEN
    state = sim.state()
    assert {k: state[k] for k in before} == before and state["frames_received"] == 0
    assert state["hostile_count"] == sent == state["counters"]["malformed_frames_sent"]
    assert all(state["counters"][f"hostile_{kind}"] >= 2 for kind in KINDS)
    assert sim.emit_temperature(33) and await recv_json(clients[0]) == {
        "settings": {"warehouse_temper": 33}}


async def test_kinds_are_fault_shorthands_and_http_actions(make_sim):
    for kind in NEW_KINDS:
        assert FAULT_KINDS[kind] == ("malformed", {"kind": kind})
        assert ScheduledFault.parse(f"{kind}@1").action() == ("malformed", {"kind": kind})
    sim = await make_sim(frame_interval=30, faults=["huge_number@0.1"])
    ws, _ = await ws_open(sim)
    frame = json.loads(await recv_text(ws))
    assert frame["settings"]["warehouse_temper"] == HUGE_NUMBER
    status, body = await asyncio.to_thread(
        http_get, sim.base_url + "/sim/control?action=malformed&kind=deep&depth=3&count=2")
    assert status == 200 and body["sent"] == 2 and body["hostile_count"] == 3
    assert [await recv_text(ws) for _ in range(2)] == ['{"settings":[[[]]]}'] * 2
    status, body = await asyncio.to_thread(
        http_get, sim.base_url + "/sim/control?action=malformed&kind=bogus")
    assert status == 400 and "bogus" in body["error"]


async def test_stock_mqtt_hostile_on_state_topic_and_ws(make_sim, broker, probe_factory):
    probe = probe_factory(broker, f"{BASE}/#")
    sim = await make_sim(firmware="v1.0.4", mqtt=broker.address, frame_interval=30)
    await probe.wait(f"{BASE}/state")
    ws, _ = await ws_open(sim)
    normal_keys = set(sim.smqtt.state())
    mark = time.monotonic()
    sent = sim.send_malformed("all")
    frames = [m for _, m in await collect(ws, 0.5)]
    state = sim.state()
    assert len(frames) == state["counters"]["malformed_frames_sent"]
    mqtt_sent = state["counters"]["malformed_mqtt_sent"]
    assert sent == len(frames) + mqtt_sent and state["hostile_count"] == sent

    def regular(payload: str) -> bool:
        try:
            data = strict_json(payload)
        except (ValueError, RecursionError):
            return False
        return (isinstance(data, dict) and set(data) == normal_keys
                and -50 < data["chamber_temp"] < 150)

    def hostile():
        return [m for m in probe.on(f"{BASE}/state") if m.at > mark and not regular(m.payload)]

    await eventually(lambda: len(hostile()) == mqtt_sent, what="every hostile state message")
    assert not any(m.retain for m in hostile())
    payloads = [m.payload for m in hostile()]
    assert '{"chamber_temp":' in payloads  # truncated
    assert '{"chamber_temp":' + "[" * 5000 + "]" * 5000 + "}" in payloads
    assert any(len(p) == 1 << 20 for p in payloads)  # giant: 1 MiB, above 16 KiB
    huge = [json.loads(p) for p in payloads if "9" * 400 in p]
    assert huge and huge[0]["chamber_temp"] == huge[0]["target_temp"] == HUGE_NUMBER
    assert {json.dumps(json.loads(p)["chamber_temp"]) for p in payloads if "Infinity" in p
            or "NaN" in p} >= {"NaN", "Infinity", "-Infinity"}
    msg = await probe.wait(f"{BASE}/state", after=hostile()[-1].at + 0.001)
    assert regular(msg.payload)  # the next state is normal again
    assert probe.last(f"{BASE}/availability") == "online"
    await ws.close()


async def test_esphome_hostile_on_sensor_and_climate_topics(make_sim, broker, probe_factory):
    # A long interval: no regular publish interleaves with the hostile ones.
    sim = await make_sim(firmware="esphome", mqtt=broker.address, frame_interval=30)
    probe = probe_factory(broker, f"{P}/#")
    await probe.wait(f"{P}/sensor/chamber_temperature/state")
    await asyncio.sleep(0.2)  # the retained states have all arrived
    before = dict(sim.state()["esphome"])
    mark = time.monotonic()
    sent = sim.send_malformed("all")
    assert sent == sim.state()["counters"]["malformed_mqtt_sent"] == sim.state()["hostile_count"]

    def hostile():
        return [m for m in probe.messages if m.at > mark]

    await eventually(lambda: len(hostile()) == sent, what="every hostile message")
    got = hostile()
    assert {m.topic for m in got} == ESPHOME_TOPICS
    chamber = [m.payload for m in got if m.topic == f"{P}/sensor/chamber_temperature/state"]
    assert {"9" * 400, "inf", "-inf", "nan", "hot", "[" * 5000 + "]" * 5000} <= set(chamber)
    assert "\uff14\uff15" in chamber and "\u0664\u0665" in chamber  # float() would take these
    assert any(len(p) == 1 << 20 and float(p) == pytest.approx(22, abs=3) for p in chamber)
    modes = [m.payload for m in got if m.topic == f"{CLIMATE}/mode/state"]
    assert "h\u0435at" in modes and "9" * 400 not in modes
    state = sim.state()["esphome"]
    assert {k: state[k] for k in ("mode", "low", "high")} == {
        k: before[k] for k in ("mode", "low", "high")}
    # Nothing hostile was retained: a late subscriber sees the real states.
    late = probe_factory(broker, f"{CLIMATE}/target_temperature_low/state",
                         f"{P}/sensor/chamber_temperature/state")
    assert (await late.wait(f"{CLIMATE}/target_temperature_low/state")).payload == "40.0"
    assert float((await late.wait(f"{P}/sensor/chamber_temperature/state")).payload) < 30
    # The next regular publish is normal again.
    sim.emit_temperature(25)
    await probe.wait(f"{P}/sensor/chamber_temperature/state", lambda p: p == "25.0",
                     after=got[-1].at)
    await probe.wait(f"{CLIMATE}/mode/state", lambda p: p == "heat", after=got[-1].at)


async def test_hostile_on_esphome_giant_size_param(make_sim, broker, probe_factory):
    sim = await make_sim(firmware="esphome", mqtt=broker.address, frame_interval=30)
    probe = probe_factory(broker, f"{P}/sensor/#")
    await eventually(lambda: sim.state()["mqtt"]["connected"])
    assert sim.control("giant", {"size": 20000})["sent"] == 5  # the numeric topics
    await probe.wait(f"{P}/sensor/chamber_temperature/state", lambda p: len(p) == 20000)
    late = probe_factory(broker, f"{P}/sensor/chamber_temperature/state")
    assert len((await late.wait(f"{P}/sensor/chamber_temperature/state")).payload) < 10
