"""Every input is survivable: whatever a device or broker sends, decoding gives a
DeviceReport whose numbers are finite, or raises FrameError, and nothing else.

Property tests (hypothesis) run derandomized with bounded examples, so CI is
deterministic; plain regression tests pin the frames that once escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, cast

import pytest
from decoder_settings import DECODERS
from hypothesis import given
from hypothesis import strategies as st
from panda_breath import esphome_mqtt, stock_mqtt, stock_ws
from panda_breath.config import FIRMWARES, drying_ranges
from panda_breath.drying import DryingError
from panda_breath.esphome_mqtt import EsphomeMqttProtocol
from panda_breath.model import DeviceReport, FrameError
from panda_breath.mqtt_common import _DECIMAL_RE, MAX_PAYLOAD_BYTES, parse_decimal
from panda_breath.power_devices import drying_request
from panda_breath.stock_mqtt import StockMqttProtocol

VERSIONS = [(1, 0, 0), (1, 0, 1), (1, 0, 2), (1, 0, 3), (1, 0, 4)]
NUMERIC_FIELDS = ("chamber_temp", "ptc_temp", "device_target", "drying_remaining_s")
SECRET = "hunter2-wifi-secret"

# The real key names, taken from the decoders so the tests follow them.
STOCK_WS_KEYS = sorted(
    {
        *stock_ws._TEMPERATURE_KEYS,
        *stock_ws._PTC_KEYS,
        *stock_ws._TARGET_KEYS_BY_PREFERENCE,
        *stock_ws._SENSOR_FIELDS,
        "ptc_heater_status",
        "work_on",
        "work_mode",
        "fw_version",
        "remaining_seconds",
        "drying_remaining_min",
    }
)
STOCK_MQTT_KEYS = sorted(
    {
        "chamber_temp",
        "ptc_temp",
        "work_on",
        "drying_running",
        "mode",
        "target_temp",
        "remaining_seconds",
        "drying_remaining_min",
        *stock_ws._SENSOR_FIELDS,
        "ptc_heater_status",
    }
)
ROOTS = ["settings", "sta", "wifi", "ap", "printer", "response"]
WORDS = sorted(
    {
        *stock_mqtt._MODES,
        *stock_mqtt._ON_OFF,
        *esphome_mqtt._MODES,
        *esphome_mqtt._ACTIONS,
        "online",
        "offline",
        "nan",
        "-nan",
        "None",
        "inf",
        "V1.0.3",
        "V1.0.0",
        "1.0.4",
        "1" * 5000 + ".0.0",
    }
)

# Numbers as Python values (json.dumps writes nan/inf as NaN/Infinity).
HUGE_INTS = st.integers(min_value=300, max_value=1200).map(lambda n: 10**n) | st.integers(
    min_value=300, max_value=1200
).map(lambda n: -(10**n))
NUMBERS = (
    st.integers()
    | HUGE_INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, 2, 3, 4, -1, 45, 45.5, 60, 121, 1e308, -1e308, 5e-324, 2**63])
)
#: Every code point, lone surrogates included.
CHARS = st.characters() | st.characters(categories=["Cs"])
TEXTS = st.text(CHARS, max_size=40) | st.sampled_from(WORDS)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXTS
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(STOCK_WS_KEYS + ROOTS) | TEXTS, children, max_size=5),
    max_leaves=25,
)
# Raw number literals only a hand-built string carries (JSON allows any digits).
LITERALS = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400", "-0", "0e0", "1" * 4400]
) | st.integers(min_value=17, max_value=2000).map(lambda n: "1" + "0" * n)


def _dumps(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)


def _utf8(text: str) -> bytes:
    """Lone surrogates become the invalid UTF-8 a broken device would send."""
    return text.encode("utf-8", "surrogatepass")


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "dict":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"settings":' * depth + "{}" + "}" * depth


def _finite_literal(literal: str) -> bool:
    try:
        return math.isfinite(float(literal))
    except OverflowError:
        return False


def check(decode: Callable[[], DeviceReport]) -> DeviceReport | None:
    """Decode; anything but a DeviceReport with finite numbers or a FrameError fails."""
    try:
        report = decode()
    except FrameError:
        return None
    assert isinstance(report, DeviceReport)
    for name in NUMERIC_FIELDS:
        value = getattr(report, name)
        if value is not None:
            assert isinstance(value, (int, float)) and not isinstance(value, bool), name
            assert math.isfinite(value), name
    assert all(isinstance(key, str) for key in report.rejected_fields)
    return report


# Stock WebSocket -------------------------------------------------------------------

version_param = pytest.mark.parametrize("version", VERSIONS, ids=lambda v: "v%d.%d.%d" % v)


@version_param
@DECODERS
@given(text=st.text(CHARS, max_size=200))
def test_stock_ws_any_text(version: tuple[int, int, int], text: str) -> None:
    check(lambda: stock_ws.decode_frame(text, version))


@version_param
@DECODERS
@given(data=st.binary(max_size=200))
def test_stock_ws_any_bytes(version: tuple[int, int, int], data: bytes) -> None:
    with pytest.raises(FrameError):
        stock_ws.decode_frame(data, version)


@version_param
@DECODERS
@given(value=JSON_VALUES, ascii_only=st.booleans())
def test_stock_ws_any_json_value(
    version: tuple[int, int, int], value: Any, ascii_only: bool
) -> None:
    check(lambda: stock_ws.decode_frame(_dumps(value, ascii_only), version))


@version_param
@DECODERS
@given(
    fields=st.dictionaries(st.sampled_from(STOCK_WS_KEYS), JSON_VALUES),
    roots=st.dictionaries(st.sampled_from(ROOTS[1:]), JSON_VALUES, max_size=3),
    ascii_only=st.booleans(),
)
def test_stock_ws_known_keys_with_any_values(
    version: tuple[int, int, int], fields: dict[str, Any], roots: dict[str, Any], ascii_only: bool
) -> None:
    frame = {**roots, "settings": fields}
    check(lambda: stock_ws.decode_frame(_dumps(frame, ascii_only), version))


@version_param
@DECODERS
@given(key=st.sampled_from(STOCK_WS_KEYS), literal=LITERALS)
def test_stock_ws_number_literals_at_every_key(
    version: tuple[int, int, int], key: str, literal: str
) -> None:
    frame = '{"settings":{"%s":%s}}' % (key, literal)
    report = check(lambda: stock_ws.decode_frame(frame, version))
    if report is not None and not _finite_literal(literal):
        # Non-finite or beyond float range: no key may use it.
        assert key in report.rejected_fields


@version_param
@DECODERS
@given(
    depth=st.integers(min_value=1, max_value=15000),
    kind=st.sampled_from(["list", "dict", "settings"]),
    key=st.sampled_from(STOCK_WS_KEYS),
)
def test_stock_ws_deep_nesting(
    version: tuple[int, int, int], depth: int, kind: str, key: str
) -> None:
    inner = _nested(depth, kind)
    for frame in ('{"settings":%s}' % inner, '{"settings":{"%s":%s}}' % (key, inner), inner):
        check(lambda: stock_ws.decode_frame(frame, version))  # noqa: B023 - called at once


@DECODERS
@given(padding=st.integers(min_value=0, max_value=2 * stock_ws.MAX_FRAME_CHARS))
def test_stock_ws_oversized(padding: int) -> None:
    frame = '{"settings":{"warehouse_temper":30}}' + " " * padding
    report = check(lambda: stock_ws.decode_frame(frame, stock_ws.DEFAULT_VERSION))
    assert (report is None) == (len(frame) > stock_ws.MAX_FRAME_CHARS)


@DECODERS
@given(
    fields=st.dictionaries(st.sampled_from(STOCK_WS_KEYS), JSON_VALUES),
    version=st.sampled_from(VERSIONS),
    garbage=st.sampled_from(["", "[" * 5000, ",", "}", "1" + "0" * 400, "\ud800"]),
)
def test_stock_ws_errors_never_carry_the_snapshot(
    fields: dict[str, Any], version: tuple[int, int, int], garbage: str
) -> None:
    frame = _dumps({"wifi": {"password": SECRET}, "settings": fields}, ascii_only=False)
    for text in (frame, frame[:-1] + garbage, garbage + frame):
        try:
            report = stock_ws.decode_frame(text, version)
        except FrameError as exc:
            assert SECRET not in str(exc)
            assert exc.__cause__ is None
        else:
            assert SECRET not in repr(report)


# Stock v1.0.4 MQTT -----------------------------------------------------------------

STOCK = StockMqttProtocol("a0b1c2d3e4f5")
STOCK_TOPICS = [STOCK.state_topic, STOCK.availability_topic, STOCK.command_topic, "other/topic"]
STOCK_STATES = st.dictionaries(
    st.sampled_from(STOCK_MQTT_KEYS) | TEXTS, JSON_VALUES | st.sampled_from(WORDS)
)


@DECODERS
@given(topic=st.sampled_from(STOCK_TOPICS) | TEXTS, data=st.binary(max_size=300))
def test_stock_mqtt_any_bytes(topic: str, data: bytes) -> None:
    check(lambda: STOCK.decode(topic, data))


@DECODERS
@given(topic=st.sampled_from(STOCK_TOPICS), text=TEXTS | st.text(CHARS, max_size=200))
def test_stock_mqtt_any_text(topic: str, text: str) -> None:
    check(lambda: STOCK.decode(topic, _utf8(text)))


@DECODERS
@given(value=JSON_VALUES | STOCK_STATES, ascii_only=st.booleans())
def test_stock_mqtt_any_state(value: Any, ascii_only: bool) -> None:
    payload = _utf8(_dumps(value, ascii_only))
    for topic in STOCK_TOPICS:
        check(lambda: STOCK.decode(topic, payload))  # noqa: B023 - called at once


@DECODERS
@given(
    key=st.sampled_from(STOCK_MQTT_KEYS),
    literal=LITERALS,
    depth=st.integers(min_value=1, max_value=8000),
)
def test_stock_mqtt_literals_and_nesting(key: str, literal: str, depth: int) -> None:
    for text in (
        '{"%s":%s}' % (key, literal),
        '{"%s":%s}' % (key, _nested(depth, "list")),
        _nested(depth, "dict"),
    ):
        check(lambda: STOCK.decode(STOCK.state_topic, text.encode()))  # noqa: B023


@DECODERS
@given(padding=st.integers(min_value=0, max_value=2 * MAX_PAYLOAD_BYTES))
def test_stock_mqtt_oversized(padding: int) -> None:
    payload = b'{"chamber_temp":30}' + b" " * padding
    report = check(lambda: STOCK.decode(STOCK.state_topic, payload))
    assert (report is None) == (len(payload) > MAX_PAYLOAD_BYTES)


# ESPHome MQTT ----------------------------------------------------------------------

ESPHOME_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "climate-sensor": {"chamber_sensor_id": "", "ptc_sensor_id": ""},
}
DECIMALS = (
    st.from_regex(_DECIMAL_RE, fullmatch=True)
    | st.sampled_from(["1" * 400, "1e999", "-1e999", "1e308", "4" * 20000, "nan", "None", "inf"])
    | NUMBERS.map(str)
)
ESPHOME_PAYLOADS = (
    st.binary(max_size=100)
    | TEXTS.map(_utf8)
    | DECIMALS.map(_utf8)
    | st.sampled_from(WORDS).map(lambda word: word.upper().encode())
)


def _esphome_messages(config: dict[str, Any]) -> st.SearchStrategy[list[tuple[str, bytes]]]:
    topics = EsphomeMqttProtocol(**config).topics()
    return st.lists(
        st.tuples(st.sampled_from(topics + ["panda-breath/other/state"]), ESPHOME_PAYLOADS),
        max_size=12,
    )


@pytest.mark.parametrize("config", list(ESPHOME_CONFIGS), ids=str)
@DECODERS
@given(data=st.data())
def test_esphome_any_message_sequence(config: str, data: st.DataObject) -> None:
    """Sequences, since the low set point is kept until the high one arrives."""
    proto = EsphomeMqttProtocol(**ESPHOME_CONFIGS[config])
    if data.draw(st.booleans(), label="encode first"):
        proto.encode(data.draw(st.floats(min_value=0.0, max_value=70.0), label="target"))
    for topic, payload in data.draw(_esphome_messages(ESPHOME_CONFIGS[config]), label="messages"):
        report = check(lambda: proto.decode(topic, payload))  # noqa: B023 - called at once
        if report is not None and report.faults:
            assert all("inf" not in text for text in report.faults.values())


@DECODERS
@given(topic_index=st.integers(min_value=0, max_value=6), text=DECIMALS)
def test_esphome_decimals_on_every_topic(topic_index: int, text: str) -> None:
    proto = EsphomeMqttProtocol()
    topics = proto.topics()
    topic = topics[topic_index % len(topics)]
    # The high set point reports only after a low one.
    proto.decode(proto.low_state_topic, b"44.0")
    check(lambda: proto.decode(topic, _utf8(text)))


@DECODERS
@given(text=DECIMALS | TEXTS)
def test_parse_decimal_is_finite_none_or_frame_error(text: str) -> None:
    try:
        value = parse_decimal(text)
    except FrameError:
        return
    assert value is None or math.isfinite(value)


# Regressions: frames that once escaped as other exceptions ---------------------------


def test_huge_int_reading_is_a_rejected_field_not_overflow_error() -> None:
    frame = '{"settings":{"warehouse_temper":1' + "0" * 400 + "}}"
    report = stock_ws.decode_frame(frame, (1, 0, 3))
    assert report.chamber_temp is None
    assert report.rejected_fields == ["warehouse_temper"]


def test_deeply_nested_frame_is_a_frame_error_not_recursion_error() -> None:
    frame = '{"settings":' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(FrameError) as caught:
        stock_ws.decode_frame(frame, (1, 0, 3))
    assert "[[" not in str(caught.value)


def test_version_with_thousands_of_digits_is_rejected_not_value_error() -> None:
    frame = '{"settings":{"fw_version":"' + "1" * 5000 + '.0.0","set_temp":40}}'
    report = stock_ws.decode_frame(frame, (1, 0, 3))
    assert report.firmware_version is None and report.device_target == 40
    assert report.rejected_fields == ["fw_version"]


def test_drying_minutes_that_overflow_seconds_are_rejected() -> None:
    report = stock_ws.decode_frame('{"settings":{"drying_remaining_min":1e307}}', (1, 0, 4))
    assert report.drying_remaining_s is None
    assert report.rejected_fields == ["drying_remaining_min"]


def test_stock_mqtt_huge_int_and_deep_nesting() -> None:
    huge = b'{"target_temp":1' + b"0" * 400 + b',"chamber_temp":30}'
    report = STOCK.decode(STOCK.state_topic, huge)
    assert report.device_target is None and report.chamber_temp == 30
    assert report.rejected_fields == ["target_temp"]
    with pytest.raises(FrameError):
        STOCK.decode(STOCK.state_topic, b"[" * 5000 + b"]" * 5000)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinity_never_become_readings_or_targets(literal: str) -> None:
    fields = ("warehouse_temper", "ptc_temp", "set_temp", "remaining_seconds")
    frame = '{"settings":{%s}}' % ",".join('"%s":%s' % (key, literal) for key in fields)
    report = stock_ws.decode_frame(frame, (1, 0, 3))
    assert (report.chamber_temp, report.ptc_temp) == (None, None)
    assert (report.device_target, report.drying_remaining_s) == (None, None)
    assert sorted(report.rejected_fields) == sorted(fields)
    state = '{"chamber_temp":%s,"target_temp":%s}' % (literal, literal)
    report = STOCK.decode(STOCK.state_topic, state.encode())
    assert report.chamber_temp is None and report.device_target is None
    assert sorted(report.rejected_fields) == ["chamber_temp", "target_temp"]


@pytest.mark.parametrize("text", ["1" * 400, "1e999", "-1e999"])
def test_esphome_decimals_beyond_float_range_are_frame_errors(text: str) -> None:
    proto = EsphomeMqttProtocol()
    for topic in (proto.chamber_topic, proto.low_state_topic, proto.high_state_topic):
        with pytest.raises(FrameError):
            proto.decode(topic, text.encode())


def test_decoder_bugs_become_frame_errors_naming_only_the_type() -> None:
    """The guard: an input no decoder expects (here: wrong Python types)."""
    with pytest.raises(FrameError, match=r"^undecodable frame \(TypeError\)$") as caught:
        stock_ws.decode_frame(cast(Any, 12345), (1, 0, 3))
    assert caught.value.__cause__ is None
    for decode in (STOCK.decode, EsphomeMqttProtocol().decode):
        with pytest.raises(FrameError, match=r"^undecodable frame \(\w+\)$"):
            decode(STOCK.state_topic, cast(Any, None))


# -- requests from Klipper macros (remote methods) ---------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6,
)


@DECODERS
@given(temperature=JSON_VALUES | st.integers(20, 80), hours=JSON_VALUES | st.integers(0, 100),
       firmware=st.sampled_from(FIRMWARES), device_max=st.sampled_from([45.0, 60.0, 70.0]))
def test_a_drying_request_is_a_valid_pair_or_a_drying_error(
    temperature: Any, hours: Any, firmware: str, device_max: float
) -> None:
    temps, hour_range = drying_ranges(firmware, device_max)
    try:
        t, h = drying_request(temperature, hours, temps, hour_range)
    except DryingError as exc:
        assert "must be a whole number" in str(exc)
        return
    assert temps[0] <= t <= min(temps[1], device_max) and type(t) is int
    assert hour_range[0] <= h <= hour_range[1] and type(h) is int
    stock = firmware != "dragonbreath"
    assert (temps, hour_range) == (((40, min(60, int(device_max))), (1, 99)) if stock
                                   else ((30, int(device_max)), (1, 12)))
