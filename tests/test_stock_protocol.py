"""The stock WebSocket protocol, decoded and encoded without any I/O."""

from __future__ import annotations

import json

import pytest
from panda_breath import stock_ws
from panda_breath.model import DeviceReport, FrameError, clamp_target, device_degrees

V100 = (1, 0, 0)
V103 = (1, 0, 3)

SNAPSHOT_V103 = {
    "settings": {
        "fw_version": "V1.0.3",
        "work_on": 1,
        "work_mode": 2,
        "set_temp": 45,
        "warehouse_temper": 31,
        "filtertemp": 30,
        "hotbedtemp": 80,
    },
    "printer": {"name": "", "state": 0},
    "sta": {"ip": "192.0.2.7", "hostname": "PandaBreath"},
    "wifi": {"ssid": "home", "password": "hunter2"},
    "ap": {"ssid": "Panda_Breath_01", "password": "987654321"},
}


def test_snapshot_decodes_state_and_version_without_keeping_secrets() -> None:
    report = stock_ws.decode_frame(json.dumps(SNAPSHOT_V103), stock_ws.DEFAULT_VERSION)
    assert report.snapshot
    assert report.firmware_version == "V1.0.3"
    assert report.work_on is True
    assert report.mode == "on"
    assert report.device_target == 45
    assert report.chamber_temp == 31
    assert "hunter2" not in repr(report) and "987654321" not in repr(report)


def test_v100_snapshot_uses_its_own_mode_numbers() -> None:
    frame = {"settings": {"fw_version": "V1.0.0", "work_on": True, "work_mode": 3, "temp": 50}}
    report = stock_ws.decode_frame(json.dumps(frame), V103)
    assert report.mode == "auto"  # 3 is Auto on V1.0.0, Drying later
    assert report.device_target == 50


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"warehouse_temper": 38}, 38.0),
        ({"chamber_temp": 38.5, "warehouse_temper": 38}, 38.5),
        ({"cal_warehouse_temp": 37.9, "warehouse_temper": 38}, 37.9),
    ],
)
def test_temperature_source_preference(settings: dict[str, float], expected: float) -> None:
    report = stock_ws.decode_frame(json.dumps({"settings": settings}), V103)
    assert report.chamber_temp == expected
    assert not report.snapshot


@pytest.mark.parametrize(
    "text",
    ["{not json", "[1, 2]", '"text"', "x" * (stock_ws.MAX_FRAME_CHARS + 1), b"\x00\x01"],
)
def test_unusable_frames_raise_frame_error(text: str | bytes) -> None:
    with pytest.raises(FrameError):
        stock_ws.decode_frame(text, V103)


def test_wrong_types_are_rejected_field_by_field() -> None:
    frame = {"settings": {"warehouse_temper": "hot", "work_on": "yes", "set_temp": 44}}
    report = stock_ws.decode_frame(json.dumps(frame), V103)
    assert report.chamber_temp is None and report.work_on is None
    assert report.device_target == 44
    assert sorted(report.rejected_fields) == ["warehouse_temper", "work_on"]


def test_nan_and_absurd_readings_are_not_temperatures() -> None:
    text = '{"settings": {"warehouse_temper": NaN, "ptc_temp": 900}}'
    report = stock_ws.decode_frame(text, V103)
    assert report.chamber_temp is None and report.ptc_temp is None
    assert set(report.rejected_fields) == {"warehouse_temper", "ptc_temp"}


def test_sensor_fault_codes_hide_the_reading() -> None:
    frame = {"settings": {"warehouse_temper": 150, "warehouse_sensor_status": 2}}
    report = stock_ws.decode_frame(json.dumps(frame), V103)
    assert report.faults == {"chamber_sensor": "open circuit"}
    assert report.chamber_temp is None
    clear = stock_ws.decode_frame('{"settings": {"warehouse_sensor_status": 0}}', V103)
    assert clear.faults == {}


def test_other_roots_are_not_settings() -> None:
    report = stock_ws.decode_frame('{"response": {"type": "set_hostname", "ok": 1}}', V103)
    assert report == DeviceReport()


def test_heating_sequence_is_one_key_per_frame_in_web_ui_order() -> None:
    assert stock_ws.command_sequence(45.0, V103) == [
        ("work_mode", 2), ("set_temp", 45), ("work_on", True),
    ]
    assert stock_ws.command_sequence(45.0, V100) == [
        ("work_mode", 2), ("temp", 45), ("work_on", True),
    ]
    frame = json.loads(stock_ws.encode_settings("work_on", True))
    assert frame == {"settings": {"work_on": True}}


def test_off_is_a_single_boolean_work_on_false() -> None:
    assert stock_ws.command_sequence(0.0, V103) == [("work_on", False)]
    assert stock_ws.encode_settings("work_on", False) == '{"settings":{"work_on":false}}'


def test_targets_are_clamped_and_rounded_to_whole_degrees() -> None:
    assert clamp_target(75.0, 60.0) == 60.0
    assert clamp_target(-3.0, 60.0) == 0.0
    assert clamp_target(float("nan"), 60.0) == 0.0
    assert device_degrees(45.5) == 46
    assert device_degrees(0.2) == 1
    assert device_degrees(0.0) == 0


def test_version_parsing() -> None:
    assert stock_ws.parse_version("V1.0.4") == (1, 0, 4)
    assert stock_ws.parse_version("firmware 1.0.2-beta") == (1, 0, 2)
    assert stock_ws.parse_version(104) is None
    assert stock_ws.target_key((1, 0, 0)) == "temp"
    assert stock_ws.target_key((1, 0, 4)) == "set_temp"
