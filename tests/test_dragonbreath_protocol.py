"""The DragonBreath API v2 protocol without I/O: decoding, commands, errors, the SSE parser.

Property tests (hypothesis, derandomized, bounded) check that every decoder is
a guarded boundary (any input gives a report or FrameError, never anything
else) and that the SSE parser gives the same events for any chunking of a
stream while its memory stays bounded.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from decoder_settings import DECODERS
from hypothesis import given
from hypothesis import strategies as st
from panda_breath import dragonbreath as db
from panda_breath import sse
from panda_breath.model import MODE_DRYING, MODE_OFF, MODE_ON, DeviceReport, FrameError

ACTOR = "moonraker-abc123"
LEASE_ID = "0123456789abcdef0123456789abcdef"
SECRET = "correct-horse-battery"


def state(**changes: Any) -> dict[str, Any]:
    """A full A.5 snapshot (as the simulator and the reference have it), with changes."""
    base: dict[str, Any] = {
        "api_version": 2,
        "device_id": "dragonbreath-a1b2c3",
        "boot_id": "5f" * 16,
        "firmware": "v1.1.11",
        "state_revision": 7,
        "mode": "power_on",
        "source": "klipper",
        "target": {"requested_c": 45, "effective_c": 45, "maximum_c": 70},
        "config": {"max": 70, "max_abs": 70, "comms_ms": 30000},
        "heater": {"demand": True, "output": True},
        "fan": {"requested_percent": 0, "effective_percent": 100, "reason": "heater"},
        "sensors": {
            "chamber": {"temperature_c": 31.4, "status": "ok"},
            "ptc": {"temperature_c": 88.2, "status": "ok"},
        },
        "environment": {"control_source": "klipper", "moonraker_connected": True},
        "drying": {"active": False, "remaining_seconds": 0},
        "params": {"manual_target_c": 45},
        "control": {"lease": {"active": True, "owner": ACTOR, "expires_in_ms": 25000}},
        "safety": {"fault_latched": False, "inhibited": False, "reason": None},
    }
    for path, value in changes.items():
        node = base
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return base


# Decoding the state ------------------------------------------------------------------


def test_full_state_decodes_into_a_report() -> None:
    report = db.decode_state(json.dumps(state()), ACTOR)
    assert report.snapshot
    assert report.chamber_temp == 31.4 and report.ptc_temp == 88.2
    assert report.mode == MODE_ON and report.work_on is True
    assert report.device_target == 45 and report.device_max_target == 70
    assert report.heater_on is True
    assert report.revision == 7 and report.boot_id == "5f" * 16
    assert report.source == "klipper" and report.fan_reason == "heater"
    assert report.firmware_version == "v1.1.11"
    assert report.lease_owned is True and report.lease_expires_s == 25.0
    assert report.comms_ms == 30000
    assert report.faults == {} and report.fault_latched is False
    assert report.drying is False and report.drying_remaining_s == 0
    assert report.rejected_fields == []


def test_bytes_and_mappings_decode_alike() -> None:
    text = json.dumps(state())
    assert db.decode_state(text.encode(), ACTOR) == db.decode_state(state(), ACTOR)


def test_lease_of_another_actor_is_not_ours() -> None:
    report = db.decode_state(state(control__lease__owner="web-dashboard", source="web"), ACTOR)
    assert report.lease_owned is False
    report = db.decode_state(state(control__lease={"active": False, "owner": None,
                                                   "expires_in_ms": 0}), ACTOR)
    assert report.lease_owned is False and report.lease_expires_s == 0.0
    # Without an actor we cannot say whose an active lease is.
    assert db.decode_state(state()).lease_owned is None


def test_latched_fault_and_inhibit_are_faults() -> None:
    report = db.decode_state(state(mode="off", safety={
        "fault_latched": True, "inhibited": False, "reason": "controller lease expired"}))
    assert report.fault_latched is True
    assert report.fault_reason == "controller lease expired"
    assert report.faults == {"safety": "controller lease expired"}
    assert report.work_on is False and report.mode == MODE_OFF
    report = db.decode_state(state(safety={
        "fault_latched": True, "inhibited": True, "reason": "task watchdog unavailable"}))
    assert report.faults == {"safety": "inhibited until reboot: task watchdog unavailable"}
    report = db.decode_state(state(safety={"fault_latched": True, "inhibited": False,
                                           "reason": None}))
    assert report.faults == {"safety": "fault latched"} and report.fault_reason is None


def test_sensor_statuses() -> None:
    report = db.decode_state(state(sensors={
        "chamber": {"temperature_c": None, "status": "open"},
        "ptc": {"temperature_c": 40.0, "status": "short"},
    }))
    assert report.chamber_temp is None and report.ptc_temp is None
    assert report.faults == {"chamber_sensor": "open circuit", "ptc_sensor": "short circuit"}
    # Not sampled yet after boot: no reading, no fault (assumption in the module).
    report = db.decode_state(state(sensors__chamber={"temperature_c": None, "status": "uninit"}))
    assert report.chamber_temp is None and report.faults == {}
    # An unknown status fails closed.
    report = db.decode_state(state(sensors__ptc={"temperature_c": 50, "status": "melted"}))
    assert report.faults == {"ptc_sensor": "status melted"}
    assert "sensors.ptc.status" in report.rejected_fields


def test_drying_state() -> None:
    report = db.decode_state(state(mode="drying", drying={"active": True,
                                                          "remaining_seconds": 3599}))
    assert report.mode == MODE_DRYING and report.drying is True
    assert report.drying_remaining_s == 3599


def test_filtration_state_and_command() -> None:
    assert db.decode_state(state(fan__requested_percent=100)).filter_requested is True
    assert db.decode_state(state(fan__requested_percent=0)).filter_requested is False
    for bad in (101, -1, "100", True, None, float("nan")):
        report = db.decode_state(state(fan__requested_percent=bad))
        assert report.filter_requested is None
        assert "fan.requested_percent" in report.rejected_fields
    on = body_of(db.filter_command(True, ACTOR, "r6"))
    assert on["command"] == {"name": "filter", "percent": 100}
    assert "expected_revision" not in on  # revision-free on the device
    assert body_of(db.filter_command(False, ACTOR, "r7"))["command"]["percent"] == 0


def test_malformed_fields_are_rejected_not_fatal() -> None:
    report = db.decode_state(state(
        mode="warp", state_revision=True, boot_id="", source=5,
        target__effective_c="45", heater__output=1, config__comms_ms=-1,
        sensors__chamber__temperature_c=999.0,
        drying__remaining_seconds=-5, control__lease__active="yes",
    ), ACTOR)
    assert report.mode is None and report.work_on is None
    assert report.revision is None and report.boot_id is None and report.source is None
    assert report.device_target is None and report.heater_on is None
    assert report.chamber_temp is None and report.comms_ms is None
    assert set(report.rejected_fields) >= {
        "mode", "state_revision", "boot_id", "source", "target.effective_c", "heater.output",
        "config.comms_ms", "sensors.chamber.temperature_c", "drying.remaining_seconds",
        "control.lease.active",
    }


@pytest.mark.parametrize("text", [
    "", "null", "[]", "42", '"state"', "{", "<!doctype html>", '{"api_version": 3}',
    "[" * 100000 + "]" * 100000, '{"a":' * 5000 + "1" + "}" * 5000,
])
def test_unusable_documents_are_frame_errors(text: str) -> None:
    with pytest.raises(FrameError):
        db.decode_state(text)


def test_oversized_and_non_utf8_documents() -> None:
    with pytest.raises(FrameError, match="oversized"):
        db.decode_state("{" + " " * db.MAX_DOCUMENT_BYTES + "}")
    with pytest.raises(FrameError, match="UTF-8"):
        db.decode_state(b'{"mode": "\xff"}')


# Info ----------------------------------------------------------------------------------


def test_info() -> None:
    info = db.decode_info(json.dumps({
        "api_version": 2, "device_id": "dragonbreath-a1b2c3", "boot_id": "ab" * 16,
        "firmware": "v1.1.11", "project": "dragonbreath",
        "ui": {"schema": 1, "product": "dragonbreath", "display_name": "DragonBreath"},
        "capabilities": ["power_on", "auto", "drying", "lease_heartbeat", "sse", 5],
    }))
    assert info.device_id == "dragonbreath-a1b2c3" and info.boot_id == "ab" * 16
    assert info.product == "dragonbreath"
    assert info.capabilities == ("power_on", "auto", "drying", "lease_heartbeat", "sse")
    for bad in ("<html>stock firmware</html>", '{"api_version": 1}', '{"api_version": true}',
                "{}", b"\xff"):
        with pytest.raises(FrameError):
            db.decode_info(bad)


# Responses and errors --------------------------------------------------------------------


def response(**body: Any) -> bytes:
    return json.dumps(body).encode()


def test_power_on_success_carries_the_lease() -> None:
    result = db.decode_response(
        200, response(ok=True, request_id="r", lease_id=LEASE_ID, state=state()), ACTOR)
    assert result.ok and result.lease_id == LEASE_ID
    assert result.state is not None and result.state.lease_owned is True
    assert LEASE_ID not in repr(result) and LEASE_ID not in result.describe()


@pytest.mark.parametrize("status,error,kind", [
    (409, "revision_conflict", db.REVISION_CONFLICT),
    (503, "busy", db.BUSY),
    (403, "auth_failed", db.AUTH),
    (400, "invalid_command", db.BAD_REQUEST),
    (400, "unsupported_api_version", db.BAD_REQUEST),
    (409, "fault_latched", db.FAULT_LATCHED),
    (409, "inhibited", db.FAULT_LATCHED),
    (409, "stale_lease", db.STALE_LEASE),
    (409, "heater_busy", db.CONFLICT),
    (500, "persist_failed", db.SERVER_ERROR),
])
def test_error_codes(status: int, error: str, kind: str) -> None:
    result = db.decode_response(status, response(ok=False, error=error, message="x",
                                                 state=state(state_revision=9)), ACTOR)
    assert result.kind == kind and result.error == error and not result.ok
    assert result.state is not None and result.state.revision == 9
    assert result.describe() == "HTTP %d %s" % (status, error)


@pytest.mark.parametrize("status,kind", [
    (400, db.BAD_REQUEST), (401, db.AUTH), (403, db.AUTH), (409, db.CONFLICT),
    (503, db.BUSY), (502, db.SERVER_ERROR), (404, db.UNEXPECTED),
])
def test_error_statuses_without_a_json_body(status: int, kind: str) -> None:
    for body in (None, b"", b"<html>proxy error</html>", b"\xff\xfe"):
        result = db.decode_response(status, body)
        assert result.kind == kind and result.error is None


def test_unusable_success_bodies_are_frame_errors() -> None:
    for body in (None, b"", b"not json", b"[1]"):
        with pytest.raises(FrameError):
            db.decode_response(200, body)
    for status in (0, 99, 600, True):
        with pytest.raises(FrameError):
            db.decode_response(status, b"{}")  # type: ignore[arg-type]
    assert db.decode_response(200, response(ok=False, error="x")).kind == db.UNEXPECTED


def test_heartbeat_and_settings_responses() -> None:
    beat = db.decode_response(200, response(ok=True, expires_in_ms=30000, state_revision=4))
    assert beat.ok and beat.expires_in_ms == 30000 and beat.state_revision == 4
    stale = db.decode_response(409, response(ok=False, error="stale_lease"))
    assert stale.kind == db.STALE_LEASE
    applied = db.decode_response(200, response(max=70, comms_ms=30000, comms_ms_min=10000))
    assert applied.ok and applied.comms_ms == 30000


def test_error_text_never_quotes_the_device_message() -> None:
    result = db.decode_response(403, response(ok=False, error="auth_failed",
                                              message="token %s is wrong" % SECRET))
    assert SECRET not in result.describe() and SECRET not in repr(result)
    assert db.redact("sent %s twice" % SECRET, SECRET) == "sent *** twice"
    assert db.redact("nothing", None, "") == "nothing"


# Commands --------------------------------------------------------------------------------


def body_of(text: str) -> dict[str, Any]:
    return json.loads(text)


def test_power_on_command() -> None:
    body = body_of(db.power_on_command(45.4, 7, ACTOR, "req-1"))
    assert body == {
        "api_version": 2, "request_id": "req-1", "expected_revision": 7,
        "actor": {"kind": "klipper", "id": ACTOR},
        "command": {"name": "power_on", "target_c": 45},
    }
    assert body_of(db.power_on_command(75, 1, ACTOR, "r"))["command"]["target_c"] == 70
    for target in (29.4, 1, 0, -5):
        with pytest.raises(db.TargetRefused):
            db.power_on_command(target, 7, ACTOR, "r")
    for revision in (-1, 2**32 - 1, True, 1.5, None):
        with pytest.raises(ValueError):
            db.power_on_command(45, revision, ACTOR, "r")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        db.power_on_command(45, 1, "x" * 32, "r")


def test_refusal_for_target() -> None:
    assert db.refusal_for_target(0) is None and db.refusal_for_target(30) is None
    assert "30" in (db.refusal_for_target(29.9) or "")


def test_off_clear_fault_drying_heartbeat_settings() -> None:
    off = body_of(db.off_command(ACTOR, "r2"))
    assert off["command"] == {"name": "off"} and "expected_revision" not in off
    clear = body_of(db.clear_fault_command(3, ACTOR, "r3"))
    assert clear["command"] == {"name": "clear_fault"} and clear["expected_revision"] == 3
    dry = body_of(db.drying_start_command(55, 8, 4, ACTOR, "r4"))
    assert dry["command"] == {"name": "drying_start", "target_c": 55, "hours": 8}
    for temp, hours in ((29, 4), (71, 4), (55, 0), (55, 13), (55, True)):
        with pytest.raises(db.TargetRefused):
            db.drying_start_command(temp, hours, 4, ACTOR, "r")  # type: ignore[arg-type]
    assert body_of(db.heartbeat_body(LEASE_ID)) == {"api_version": 2, "lease_id": LEASE_ID}
    with pytest.raises(ValueError):
        db.heartbeat_body("short")
    assert db.comms_ms_query(30) == "comms_ms=30000"
    assert db.comms_ms_query(10) == "comms_ms=10000"
    for bad in (9.9, 301, float("nan"), True):
        with pytest.raises(ValueError):
            db.comms_ms_query(bad)


def test_ids_and_headers() -> None:
    actor = db.new_actor_id()
    assert 0 < len(actor) <= 31 and actor != db.new_actor_id()
    assert len(db.new_request_id()) == 32
    headers = db.request_headers(SECRET)
    assert headers["X-DragonBreath-Auth"] == SECRET
    assert headers["Content-Type"] == "application/json"


def test_token_validation_never_quotes_the_token() -> None:
    assert db.validate_token("web") == "web"
    for bad in ("", "x" * 65, SECRET + "\r\nX-Evil: 1", "ümlaut" + SECRET, None, 5):
        with pytest.raises(ValueError) as caught:
            db.validate_token(bad)
        assert SECRET not in str(caught.value)


def test_heartbeat_interval() -> None:
    assert db.heartbeat_interval(300_000) == 30.0  # never above 30 s
    assert db.heartbeat_interval(30_000) == 10.0  # a third of comms_ms
    assert db.heartbeat_interval(10_000) == pytest.approx(10 / 3)
    assert db.heartbeat_interval(None) == pytest.approx(10 / 3)  # unknown: the tightest
    assert db.heartbeat_interval(100) == db.MIN_HEARTBEAT_INTERVAL_S


# SSE parser -------------------------------------------------------------------------------


def test_sse_basic_events() -> None:
    parser = sse.SseParser()
    events = parser.feed(
        b"event: state\nid: 3\ndata: {\"a\":1}\n\n"
        b": a comment\n"
        b"event: telemetry\r\ndata: x\r\ndata:y\r\n\r\n"
        b"data: plain\rretry: 2500\r\r"
    )
    assert [(e.event, e.data, e.id) for e in events] == [
        ("state", '{"a":1}', "3"),
        ("telemetry", "x\ny", "3"),  # the id persists, as the spec says
        ("message", "plain", "3"),
    ]
    assert parser.retry_ms == 2500


def test_sse_partial_lines_and_split_crlf() -> None:
    parser = sse.SseParser()
    assert parser.feed(b"event: st") == []
    assert parser.feed(b"ate\r") == []
    assert parser.feed(b"\ndata: 1") == []
    assert parser.feed(b"2\r") == []
    events = parser.feed(b"\n\r\n")
    assert [(e.event, e.data) for e in events] == [("state", "12")]
    # A bare CR ends a line too; an LF after it in the next chunk is not a blank line.
    assert parser.feed(b"data: a\r") == []
    assert [e.data for e in parser.feed(b"\n\n")] == ["a"]


def test_sse_events_without_data_are_not_dispatched() -> None:
    parser = sse.SseParser()
    assert parser.feed(b"event: state\n\nid: 4\n\n: hi\n\n") == []
    assert parser.last_id == "4"


def test_sse_overlong_line_is_dropped_and_counted_with_its_event() -> None:
    parser = sse.SseParser(max_line=100, max_event=300)
    events = parser.feed(b"event: state\ndata: " + b"x" * 500)
    assert events == [] and parser.buffered() <= 100
    for _ in range(100):  # the rest of the giant line, never kept
        assert parser.feed(b"y" * 1000) == [] and parser.buffered() <= 100
    events = parser.feed(b"\n\nevent: state\ndata: ok\n\n")
    assert [e.data for e in events] == ["ok"]
    assert parser.lines_dropped == 1 and parser.events_dropped == 1


def test_sse_overlong_event_is_dropped() -> None:
    parser = sse.SseParser(max_line=100, max_event=250)
    events = parser.feed(b"data: " + b"a" * 90 + b"\n" + (b"data: " + b"b" * 90 + b"\n") * 3
                         + b"\ndata: fine\n\n")
    assert [e.data for e in events] == ["fine"]
    assert parser.events_dropped == 1 and parser.buffered() == 0


def test_sse_bom_and_invalid_utf8() -> None:
    parser = sse.SseParser()
    events = parser.feed(b"\xef\xbb\xbfdata: \xff\n\n")
    assert len(events) == 1 and events[0].data == "\ufffd"


# Properties ---------------------------------------------------------------------------

NUMERIC = ("chamber_temp", "ptc_temp", "device_target", "drying_remaining_s",
           "lease_expires_s", "device_max_target")


def check(decode: Any) -> DeviceReport | None:
    try:
        report = decode()
    except FrameError:
        return None
    assert isinstance(report, DeviceReport)
    for name in NUMERIC:
        value = getattr(report, name)
        if value is not None:
            assert isinstance(value, (int, float)) and not isinstance(value, bool)
            assert math.isfinite(value), name
    for name in ("revision", "comms_ms"):
        value = getattr(report, name)
        assert value is None or (isinstance(value, int) and not isinstance(value, bool))
    for name in ("boot_id", "source", "fault_reason", "fan_reason", "firmware_version"):
        value = getattr(report, name)
        assert value is None or (isinstance(value, str) and value.isprintable())
    assert report.faults is None or all(
        isinstance(k, str) and isinstance(v, str) for k, v in report.faults.items())
    assert all(isinstance(key, str) for key in report.rejected_fields)
    return report


NUMBERS = (
    st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=300, max_value=900).map(lambda n: 10**n)
    | st.sampled_from([0, 1, -1, 30, 45.5, 2**32, 2**32 - 1, 1e308])
)
CHARS = st.characters() | st.characters(categories=["Cs"])
WORDS = st.sampled_from([
    "off", "power_on", "auto", "drying", "ok", "open", "short", "uninit", "klipper", "web",
    "button", "watchdog", ACTOR, "controller lease expired", "", "\x00", "\u202e",
])
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(CHARS, max_size=30) | WORDS
KEYS = st.sampled_from(sorted({
    *state().keys(), "effective_c", "maximum_c", "output", "reason", "chamber", "ptc",
    "temperature_c", "status", "active", "remaining_seconds", "comms_ms", "lease", "owner",
    "expires_in_ms", "fault_latched", "inhibited", "lease_id", "ok", "error",
})) | st.text(CHARS, max_size=10)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=30,
)
PATHS = [
    ("mode",), ("state_revision",), ("boot_id",), ("source",), ("firmware",), ("api_version",),
    ("target",), ("target", "effective_c"), ("target", "maximum_c"), ("heater",),
    ("heater", "output"), ("fan", "reason"), ("fan", "requested_percent"),
    ("sensors",), ("sensors", "chamber"),
    ("sensors", "chamber", "temperature_c"), ("sensors", "ptc", "status"),
    ("drying", "active"), ("drying", "remaining_seconds"), ("config", "comms_ms"),
    ("control",), ("control", "lease"), ("control", "lease", "owner"),
    ("control", "lease", "expires_in_ms"), ("safety",), ("safety", "reason"),
    ("safety", "fault_latched"),
]


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


@DECODERS
@given(data=st.binary(max_size=300))
def test_any_bytes_give_a_report_or_frame_error(data: bytes) -> None:
    check(lambda: db.decode_state(data, ACTOR))
    try:
        db.decode_info(data)
    except FrameError:
        pass
    for status in (200, 409, 503):
        try:
            result = db.decode_response(status, data, ACTOR)
        except FrameError:
            continue
        assert isinstance(result, db.CommandResult)


@DECODERS
@given(text=st.text(CHARS, max_size=300))
def test_any_text_gives_a_report_or_frame_error(text: str) -> None:
    check(lambda: db.decode_state(text, ACTOR))


@DECODERS
@given(value=JSON_VALUES)
def test_any_json_value_gives_a_report_or_frame_error(value: Any) -> None:
    check(lambda: db.decode_state(_dumps(value), ACTOR))
    if isinstance(value, dict):
        check(lambda: db.decode_state(value, ACTOR))


@DECODERS
@given(path=st.sampled_from(PATHS), value=JSON_VALUES)
def test_any_value_at_any_known_place(path: tuple[str, ...], value: Any) -> None:
    document = copy.deepcopy(state())
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    report = check(lambda: db.decode_state(_dumps(document), ACTOR))
    if report is not None and path == ("mode",) and not (
        isinstance(value, str) and value in db._MODES
    ):
        assert report.mode is None


@DECODERS
@given(status=st.integers(min_value=-5, max_value=700), value=JSON_VALUES)
def test_any_response_gives_a_result_or_frame_error(status: int, value: Any) -> None:
    for body in (_dumps(value).encode(), _dumps({"ok": False, "error": value,
                                                 "state": value}).encode()):
        try:
            result = db.decode_response(status, body, ACTOR)
        except FrameError:
            continue
        assert isinstance(result, db.CommandResult)
        assert result.lease_id is None or len(result.lease_id) == 32
        if result.state is not None:
            check(lambda r=result.state: r)


STREAM = (
    b"\xef\xbb\xbfevent: state\r\nid: 1\r\ndata: {\"state_revision\":1}\r\n\r\n"
    b": keep-alive comment\n"
    b"event: telemetry\ndata: line one\ndata: line two\n\n"
    b"data: cr only\r\r"
    b"event: state\nid: 2\ndata: " + b"z" * 200 + b"\n\n"
    b"retry: 1000\nevent: telemetry\ndata: {}\n\n"
)


@DECODERS
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_sse_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    whole = sse.SseParser(max_line=150)
    expected = whole.feed(STREAM)
    assert [e.event for e in expected] == ["state", "telemetry", "message", "telemetry"]
    parser = sse.SseParser(max_line=150)
    events = []
    points = sorted(set(cuts))
    start = 0
    for point in points + [len(STREAM)]:
        events.extend(parser.feed(STREAM[start:point]))
        start = point
    assert events == expected
    assert parser.lines_dropped == whole.lines_dropped == 1


@DECODERS
@given(chunks=st.lists(st.binary(max_size=400), max_size=30))
def test_sse_any_bytes_never_raise_and_stay_bounded(chunks: list[bytes]) -> None:
    parser = sse.SseParser(max_line=64, max_event=256)
    for chunk in chunks:
        for event in parser.feed(chunk):
            assert isinstance(event.data, str) and len(event.data) <= 256
        assert parser.buffered() <= 64 + 256
