"""The two MQTT protocols (ESPHome, stock v1.0.4), decoded and encoded without any I/O."""

from __future__ import annotations

import json

import pytest
from panda_breath.esphome_mqtt import NO_READING, EsphomeMqttProtocol
from panda_breath.model import MODE_AUTO, MODE_DRYING, MODE_OFF, MODE_ON, FrameError
from panda_breath.mqtt_common import Publish, is_topic_level, is_topic_prefix, parse_decimal
from panda_breath.stock_mqtt import StockMqttProtocol

P = "panda-breath"
CLIMATE = f"{P}/climate/chamber"


def esphome(**kwargs) -> EsphomeMqttProtocol:
    return EsphomeMqttProtocol(**kwargs)


# ESPHome: topics ---------------------------------------------------------------


def test_esphome_subscribes_availability_first_and_the_real_default_topics() -> None:
    topics = esphome().topics()
    assert topics[0] == f"{P}/status"
    assert set(topics) == {
        f"{P}/status",
        f"{CLIMATE}/mode/state",
        f"{CLIMATE}/action/state",
        f"{CLIMATE}/target_temperature_low/state",
        f"{CLIMATE}/target_temperature_high/state",
        f"{P}/sensor/chamber_temperature/state",
        f"{P}/sensor/ptc_element_temperature/state",
    }


def test_esphome_options_rename_topics_and_empty_sensor_uses_the_climate() -> None:
    proto = esphome(prefix="shop/pb", climate_id="box", chamber_sensor_id="", ptc_sensor_id="")
    topics = proto.topics()
    assert "shop/pb/climate/box/current_temperature/state" in topics
    assert not any("/sensor/" in t for t in topics)
    report = proto.decode("shop/pb/climate/box/current_temperature/state", b"41.2")
    assert report.chamber_temp == 41.2


# ESPHome: decode -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "online"), [(b"online", True), (b"offline", False), (b"OFFLINE\n", False)]
)
def test_esphome_status_is_availability(payload: bytes, online: bool) -> None:
    assert esphome().decode(f"{P}/status", payload).online is online


def test_esphome_chamber_reading_and_nan_fault() -> None:
    proto = esphome()
    report = proto.decode(f"{P}/sensor/chamber_temperature/state", b"38.4")
    assert report.chamber_temp == 38.4
    assert report.faults == {}
    report = proto.decode(f"{P}/sensor/chamber_temperature/state", b"nan")
    assert report.chamber_temp is None
    assert report.faults == {"chamber_sensor": NO_READING}
    assert "nan" in NO_READING
    # publish_nan_as_none spelling
    assert proto.decode(f"{P}/sensor/chamber_temperature/state", b"None").faults == {
        "chamber_sensor": NO_READING
    }


def test_esphome_one_sensor_recovering_does_not_clear_the_other_fault() -> None:
    proto = esphome()
    proto.decode(f"{P}/sensor/ptc_element_temperature/state", b"nan")
    report = proto.decode(f"{P}/sensor/chamber_temperature/state", b"30.0")
    assert report.faults == {"ptc_sensor": NO_READING}
    report = proto.decode(f"{P}/sensor/ptc_element_temperature/state", b"55.5")
    assert report.ptc_temp == 55.5
    assert report.faults == {}


def test_esphome_implausible_reading_is_a_fault_not_a_temperature() -> None:
    report = esphome().decode(f"{P}/sensor/chamber_temperature/state", b"400")
    assert report.chamber_temp is None
    assert "chamber_sensor" in (report.faults or {})


@pytest.mark.parametrize(
    ("word", "work_on", "mode"),
    [("heat", True, MODE_ON), ("off", False, MODE_OFF), ("HEAT", True, MODE_ON),
     ("heat_cool", True, MODE_AUTO), ("cool", False, "standby")],
)
def test_esphome_mode_state(word: str, work_on: bool, mode: str) -> None:
    report = esphome().decode(f"{CLIMATE}/mode/state", word.encode())
    assert (report.work_on, report.mode) == (work_on, mode)


@pytest.mark.parametrize(("word", "on"), [("heating", True), ("idle", False), ("off", False)])
def test_esphome_action_state_is_the_relay(word: str, on: bool) -> None:
    assert esphome().decode(f"{CLIMATE}/action/state", word.encode()).heater_on is on


def test_esphome_set_points_report_the_midpoint_with_the_high_one() -> None:
    proto = esphome()
    assert proto.decode(f"{CLIMATE}/target_temperature_low/state", b"44.0").device_target is None
    report = proto.decode(f"{CLIMATE}/target_temperature_high/state", b"46.0")
    assert report.device_target == 45.0


def test_esphome_set_points_we_sent_read_back_as_our_target_even_at_the_ceiling() -> None:
    proto = esphome(band=2.0, max_target=60.0)
    proto.encode(59.3)  # band shifted to 58..60
    proto.decode(f"{CLIMATE}/target_temperature_low/state", b"58.0")
    report = proto.decode(f"{CLIMATE}/target_temperature_high/state", b"60.0")
    assert report.device_target == 59.3


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (f"{P}/sensor/chamber_temperature/state", b"\xff\xfe"),
        (f"{P}/sensor/chamber_temperature/state", b"warm"),
        (f"{P}/sensor/chamber_temperature/state", b"inf"),
        (f"{P}/sensor/chamber_temperature/state", b"1_000"),
        (f"{P}/sensor/chamber_temperature/state", b"4" * 20000),
        (f"{P}/status", b"maybe"),
        (f"{CLIMATE}/mode/state", b"toast"),
        (f"{CLIMATE}/action/state", b"unknown"),
        (f"{P}/climate/other/mode/state", b"heat"),
    ],
)
def test_esphome_unusable_payloads_raise_frame_error(topic: str, payload: bytes) -> None:
    with pytest.raises(FrameError):
        esphome().decode(topic, payload)


# ESPHome: encode -----------------------------------------------------------------


def test_esphome_heat_is_heartbeat_band_then_mode_never_retained() -> None:
    publishes = esphome().encode(45.0)
    assert publishes == [
        Publish(f"{P}/host/heartbeat", "45"),
        Publish(f"{CLIMATE}/target_temperature_low/command", "44.5"),
        Publish(f"{CLIMATE}/target_temperature_high/command", "45.5"),
        Publish(f"{CLIMATE}/mode/command", "HEAT"),
    ]
    assert not any(p.retain for p in publishes)
    # Never the earlier project's wrong topics.
    assert not any(p.topic.endswith("/set") for p in publishes)


def test_esphome_off_is_mode_off_only() -> None:
    assert esphome().encode(0.0) == [Publish(f"{CLIMATE}/mode/command", "OFF")]


@pytest.mark.parametrize(
    ("target", "band", "limit", "low", "high"),
    [
        (45.25, 1.0, 60.0, 44.75, 45.75),
        (60.0, 1.0, 60.0, 59.0, 60.0),  # shifted down, not cut
        (59.8, 2.0, 60.0, 58.0, 60.0),
        (70.0, 1.0, 70.0, 69.0, 70.0),  # the 70 °C patch
        (0.3, 1.0, 60.0, 0.0, 0.8),
    ],
)
def test_esphome_band_never_passes_the_device_ceiling(
    target: float, band: float, limit: float, low: float, high: float
) -> None:
    assert esphome(band=band, max_target=limit).band_for(target) == (low, high)


def test_esphome_heartbeat_carries_the_target() -> None:
    assert esphome().heartbeat(42.5) == Publish(f"{P}/host/heartbeat", "42.5")


# Stock v1.0.4 ----------------------------------------------------------------------

ID = "ACEBE68FE51C"
STATE = {
    "chamber_temp": 31,
    "work_on": "ON",
    "mode": "power on",
    "target_temp": 45,
    "filament_drying_mode": "pla",
    "filter_temp": 30,
    "heater_temp": 80,
    "custom_temp": 55,
    "custom_timer": 12,
    "drying_running": "OFF",
    "drying_remaining_min": 0,
    "printer_sn": "",
    "printer_bind": "OFF",
    "printer_ip": "192.0.2.9",
    "printer_name": "",
}


def stock(**kwargs) -> StockMqttProtocol:
    return StockMqttProtocol(ID, **kwargs)


def test_stock_topics_availability_first() -> None:
    assert stock().topics() == [
        f"panda_breath/{ID}/availability",
        f"panda_breath/{ID}/state",
    ]
    assert stock(prefix="pb").command_topic == f"pb/{ID}/command"


def test_stock_state_is_a_full_snapshot() -> None:
    report = stock().decode(f"panda_breath/{ID}/state", json.dumps(STATE).encode())
    assert report.snapshot
    assert report.chamber_temp == 31
    assert report.work_on is True
    assert report.mode == MODE_ON
    assert report.device_target == 45
    assert report.drying_remaining_s == 0
    assert report.rejected_fields == []
    assert "192.0.2.9" not in repr(report)


@pytest.mark.parametrize(
    ("changes", "work_on", "mode"),
    [
        ({"work_on": "OFF"}, False, MODE_ON),
        ({"mode": "auto mode"}, True, MODE_AUTO),
        ({"work_on": "OFF", "mode": "filament drying", "drying_running": "ON"}, True, MODE_DRYING),
    ],
)
def test_stock_state_modes(changes: dict, work_on: bool, mode: str) -> None:
    report = stock().decode(f"panda_breath/{ID}/state", json.dumps({**STATE, **changes}).encode())
    assert (report.work_on, report.mode) == (work_on, mode)
    assert report.is_heating_enabled() is work_on


def test_stock_state_bad_fields_are_rejected_not_guessed() -> None:
    bad = {**STATE, "chamber_temp": "hot", "work_on": 1, "mode": "turbo", "target_temp": 500}
    report = stock().decode(f"panda_breath/{ID}/state", json.dumps(bad).encode())
    assert report.chamber_temp is None and report.work_on is None and report.mode is None
    assert sorted(report.rejected_fields) == ["chamber_temp", "mode", "target_temp", "work_on"]


def test_stock_availability() -> None:
    assert stock().decode(f"panda_breath/{ID}/availability", b"offline").online is False
    assert stock().decode(f"panda_breath/{ID}/availability", b"online").online is True


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("state", b"{not json"),
        ("state", b"[1, 2]"),
        ("state", b"\xc3\x28"),
        ("availability", b"1"),
        ("command", b"{}"),
    ],
)
def test_stock_unusable_payloads_raise_frame_error(topic: str, payload: bytes) -> None:
    with pytest.raises(FrameError):
        stock().decode(f"panda_breath/{ID}/{topic}", payload)


def test_stock_heat_is_one_key_per_message_in_web_ui_order() -> None:
    publishes = stock().encode(45.4)
    assert [json.loads(p.payload) for p in publishes] == [
        {"mode": "power on"},
        {"target_temp": 45},
        {"work_on": "ON"},
    ]
    assert {p.topic for p in publishes} == {f"panda_breath/{ID}/command"}
    assert not any(p.retain for p in publishes)
    assert isinstance(json.loads(publishes[1].payload)["target_temp"], int)


def test_stock_off_is_work_on_off_only_and_target_is_capped() -> None:
    assert [json.loads(p.payload) for p in stock().encode(0)] == [{"work_on": "OFF"}]
    assert json.loads(stock(max_target=60.0).encode(75.0)[1].payload) == {"target_temp": 60}
    assert stock().heartbeat(45.0) is None


# Shared helpers ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ok"), [("panda-breath", True), ("a/b", True), ("a//b", False),
                                          ("a/+", False), ("#", False), ("a b", False),
                                          ("", False)])
def test_topic_prefix_validation(text: str, ok: bool) -> None:
    assert is_topic_prefix(text) is ok


def test_topic_level_validation() -> None:
    assert is_topic_level("chamber_temperature")
    assert not is_topic_level("a/b")


def test_parse_decimal() -> None:
    assert parse_decimal("-5") == -5.0
    assert parse_decimal("1e2") == 100.0
    assert parse_decimal("NaN") is None
    with pytest.raises(FrameError):
        parse_decimal("12abc")
