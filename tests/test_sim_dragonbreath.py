"""The DragonBreath personality over real HTTP and a real event stream (reference Part D.2)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import sim_fixtures
from panda_breath import dragonbreath as db
from panda_breath import sse
from pbsim.dragonbreath_api import state_json
from pbsim.hostile import KINDS
from sim_fixtures import eventually
from testbed.sim import SimProcess
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

make_sim = sim_fixtures.make_sim

ME = "moonraker-test01"
TOKEN = "s3cret-token"


async def dragon(make_sim, **options: Any):
    options.setdefault("frame_interval", 0.2)
    return await make_sim(firmware="dragonbreath", **options)


async def api(sim, method: str, path: str, body: Any = None, token: str | None = "web",
              raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers[db.AUTH_HEADER] = token
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    if method == "POST" and data is None:
        data = b""
    request = HTTPRequest(sim.base_url + path, method=method, body=data, headers=headers,
                          request_timeout=5)
    response = await AsyncHTTPClient(force_instance=True).fetch(request, raise_error=False)
    text = response.body or b""
    try:
        return response.code, json.loads(text)
    except ValueError:
        return response.code, text.decode("utf-8", "replace")


def command(name: str, revision: int | None = None, actor: str = ME, request_id: str | None = None,
            kind: str = "klipper", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "api_version": 2, "request_id": request_id or "req-%d" % time.monotonic_ns(),
        "actor": {"kind": kind, "id": actor}, "command": {"name": name, **fields},
    }
    if revision is not None:
        body["expected_revision"] = revision
    return body


async def get_state(sim) -> dict[str, Any]:
    status, body = await api(sim, "GET", "/api/v2/state")
    assert status == 200
    return body


async def power_on(sim, target: float = 45, actor: str = ME) -> tuple[int, Any]:
    revision = (await get_state(sim))["state_revision"]
    return await api(sim, "POST", "/api/v2/command",
                     command("power_on", revision, actor=actor, target_c=target))


class Stream:
    """A raw event-stream client: HTTP head, then chunked events fed to the SSE parser."""

    def __init__(self) -> None:
        self.events: list[sse.SseEvent] = []
        self.status: int | None = None
        self.body = b""
        self.parser = sse.SseParser()
        self.task: asyncio.Task[Any] | None = None
        self.closed = False

    async def open(self, sim) -> Stream:
        reader, self.writer = await asyncio.open_connection(sim.host, sim.port)
        self.writer.write(b"GET /api/v2/events HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        self.status = int(head.split(b" ")[1])
        if self.status != 200:
            self.body = await reader.read()
            self.closed = True
            return self
        self.task = asyncio.ensure_future(self._read(reader))
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                if size == 0:
                    break
                chunk = await reader.readexactly(size + 2)
                self.events.extend(self.parser.feed(chunk[:-2]))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self.closed = True

    def states(self) -> list[dict[str, Any]]:
        return [json.loads(e.data) for e in self.events]

    def close(self) -> None:
        self.writer.close()
        if self.task is not None:
            self.task.cancel()


async def test_info_state_health_and_the_spa_catch_all(make_sim):
    sim = await dragon(make_sim)
    status, info = await api(sim, "GET", "/api/v2/info")
    assert status == 200 and info["api_version"] == 2 and info["project"] == "dragonbreath"
    assert len(info["boot_id"]) == 32 and "sse" in info["capabilities"]
    state = await get_state(sim)
    assert state["boot_id"] == info["boot_id"] and state["state_revision"] == 1
    assert state["mode"] == "off" and state["source"] == "boot"
    assert state["sensors"]["chamber"] == {"temperature_c": 22.0, "status": "ok"}
    assert state["control"]["lease"] == {"active": False, "owner": None, "expires_in_ms": 0}
    assert state["config"]["comms_ms"] == 300000
    report = db.decode_state(json.dumps(state), ME)
    assert report.rejected_fields == [] and report.faults == {}
    status, health = await api(sim, "GET", "/api/v2/health")
    assert status == 200 and health["boot_id"] == info["boot_id"]
    status, page = await api(sim, "GET", "/ws")  # stock's path: the dashboard's HTML, 200
    assert status == 200 and "<title>DragonBreath" in page


async def test_auth_any_value_or_exact_token(make_sim):
    sim = await dragon(make_sim)
    status, body = await api(sim, "POST", "/api/v2/command", command("off"), token=None)
    assert status == 403 and body["error"] == "auth_failed" and "state" in body
    assert (await api(sim, "POST", "/api/v2/command", command("off"), token="anything"))[0] == 200
    strict = await dragon(make_sim, token=TOKEN)
    assert (await api(strict, "POST", "/api/v2/command", command("off")))[0] == 403
    assert (await api(strict, "POST", "/api/v2/command", command("off"), token=TOKEN))[0] == 200
    assert (await api(strict, "POST", "/api/v2/command", command("off"),
                      token=TOKEN + "x"))[0] == 403
    assert TOKEN not in json.dumps(strict.state())


async def test_power_on_lease_revision_and_heat(make_sim):
    sim = await dragon(make_sim, time_scale=60)
    status, body = await power_on(sim, 45)
    assert status == 200 and body["ok"]
    assert len(body["lease_id"]) == 32 and all(c in "0123456789abcdef" for c in body["lease_id"])
    state = body["state"]
    assert state["mode"] == "power_on" and state["source"] == "klipper"
    assert state["state_revision"] == 2 and state["target"]["effective_c"] == 45
    assert state["control"]["lease"]["owner"] == ME and state["control"]["lease"]["active"]
    assert body["lease_id"] not in json.dumps(state)  # the lease id is never in the state
    await eventually(lambda: sim.state()["heater_on"], what="SSR on")
    # Temperatures and time do not bump the revision.
    await asyncio.sleep(0.5)
    assert (await get_state(sim))["state_revision"] == 2
    # Above the ceiling: clamped.
    status, body = await power_on(sim, 75)
    assert status == 200 and body["state"]["target"]["requested_c"] == 70


async def test_validation(make_sim):
    sim = await dragon(make_sim)
    rev = (await get_state(sim))["state_revision"]
    cases = [
        (command("power_on", rev, target_c=29), 400, "invalid_command"),
        (command("power_on", None, target_c=45), 400, "invalid_command"),
        (command("power_on", rev, target_c="45"), 400, "invalid_command"),
        ({**command("power_on", rev, target_c=45), "api_version": 1}, 400,
         "unsupported_api_version"),
        (command("drying_start", rev, target_c=50, hours=2.5), 400, "invalid_command"),
        (command("drying_start", rev, target_c=50, hours=13), 400, "invalid_command"),
        (command("power_on", rev, actor="x" * 32, target_c=45), 400, "invalid_command"),
        (command("warp", rev), 400, "invalid_command"),
    ]
    for body, status, error in cases:
        got_status, got = await api(sim, "POST", "/api/v2/command", body)
        assert (got_status, got["error"]) == (status, error), body
    status, got = await api(sim, "POST", "/api/v2/command", raw=b"{not json")
    assert (status, got["error"]) == (400, "invalid_command")
    status, got = await api(sim, "POST", "/api/v2/command", raw=b"{" + b" " * 2000 + b"}")
    assert (status, got["error"]) == (400, "invalid_command")
    assert (await get_state(sim))["state_revision"] == rev  # nothing changed


async def test_revision_conflict_and_replay_cache(make_sim):
    sim = await dragon(make_sim)
    first = command("power_on", 1, request_id="intent-1", target_c=45)
    status, answer = await api(sim, "POST", "/api/v2/command", first)
    assert status == 200
    # The same request again while its revision is current: the original answer.
    status, again = await api(sim, "POST", "/api/v2/command", first)
    assert status == 200 and again["lease_id"] == answer["lease_id"]
    # A stale expected_revision: 409, with the state to decide on.
    status, body = await api(sim, "POST", "/api/v2/command",
                             command("power_on", 1, target_c=50))
    assert status == 409 and body["error"] == "revision_conflict"
    assert body["state"]["state_revision"] == 2
    # off needs no revision; after it, reusing the old request id is a conflict.
    assert (await api(sim, "POST", "/api/v2/command", command("off", 1)))[0] == 200
    status, body = await api(sim, "POST", "/api/v2/command", first)
    assert status == 409 and body["error"] == "revision_conflict"
    assert sim.state()["counters"]["error_revision_conflict"] == 2


async def test_heartbeats_renew_and_expiry_latches_a_persisted_fault(make_sim):
    sim = await dragon(make_sim, comms_ms=1000, comms_ms_min=500, lease_check_interval=0.1)
    status, body = await power_on(sim, 45)
    lease = body["lease_id"]
    for _ in range(6):  # 1.8 s of renewals, well past one TTL
        await asyncio.sleep(0.3)
        status, beat = await api(sim, "POST", "/api/v2/heartbeat",
                                 {"api_version": 2, "lease_id": lease})
        assert status == 200 and beat["expires_in_ms"] == 1000
        assert beat["state_revision"] == 2  # heartbeats never bump the revision
    status, beat = await api(sim, "POST", "/api/v2/heartbeat",
                             {"api_version": 2, "lease_id": "0" * 32})
    assert (status, beat["error"]) == (409, "stale_lease")
    status, beat = await api(sim, "POST", "/api/v2/heartbeat", {"api_version": 2,
                                                                "lease_id": "abc"})
    assert status == 400
    # Renewals stop: off within comms_ms (+ the check cadence), fault latched.
    stopped = time.monotonic()
    await eventually(lambda: sim.state()["fault_latched"], timeout=3, what="lease expiry")
    assert time.monotonic() - stopped < 1.0 + 0.3
    state = await get_state(sim)
    assert state["mode"] == "off" and state["source"] == "watchdog"
    assert state["safety"] == {"fault_latched": True, "inhibited": False,
                               "reason": "controller lease expired"}
    assert state["fan"]["reason"] == "fault" and not state["control"]["lease"]["active"]
    assert (await api(sim, "POST", "/api/v2/heartbeat",
                      {"api_version": 2, "lease_id": lease}))[0] == 409
    status, body = await power_on(sim, 45)
    assert (status, body["error"]) == (409, "fault_latched")
    # The latch survives a reboot, as the canonical code string.
    old_boot = state["boot_id"]
    sim.control("reboot", {"down": 0.2})
    await sim.wait_up()
    state = await get_state(sim)
    assert state["boot_id"] != old_boot and state["state_revision"] == 1
    assert state["safety"]["fault_latched"] and state["safety"]["reason"] == "safety trip"
    # clear_fault needs the current revision.
    status, body = await api(sim, "POST", "/api/v2/command", command("clear_fault"))
    assert status == 400
    status, body = await api(sim, "POST", "/api/v2/command", command("clear_fault", 99))
    assert (status, body["error"]) == (409, "revision_conflict")
    status, body = await api(sim, "POST", "/api/v2/command", command("clear_fault", 1))
    assert status == 200 and not body["state"]["safety"]["fault_latched"]
    assert body["state"]["mode"] == "off"
    status, body = await power_on(sim, 45)
    assert status == 200  # a fresh power_on (new lease) works again


async def test_event_stream_state_telemetry_and_two_slots(make_sim):
    sim = await dragon(make_sim, frame_interval=0.2)
    one = await Stream().open(sim)
    two = await Stream().open(sim)
    three = await Stream().open(sim)
    assert one.status == 200 and two.status == 200
    assert three.status == 503
    refused = json.loads(three.body)
    assert refused["error"] == "busy" and refused["state"]["api_version"] == 2
    await eventually(lambda: len(one.events) >= 3, what="telemetry")
    assert one.events[0].event == "state" and one.events[0].id == "1"
    assert {e.event for e in one.events[1:]} == {"telemetry"}
    await power_on(sim, 40)
    await eventually(lambda: any(e.event == "state" and e.id == "2" for e in one.events),
                     what="state event on the revision change")
    state = [json.loads(e.data) for e in one.events if e.id == "2"][0]
    assert state["mode"] == "power_on"
    # A slot frees when a client goes away.
    two.close()
    await eventually(lambda: sim.state()["streams"] == 1, what="slot freed")
    again = await Stream().open(sim)
    assert again.status == 200
    one.close()
    again.close()


async def test_occupied_silenced_and_dropped_streams(make_sim):
    sim = await dragon(make_sim, frame_interval=0.1)
    sim.control("occupy_streams", {"n": "2"})
    assert (await Stream().open(sim)).status == 503
    sim.control("occupy_streams", {"n": "1", "seconds": "5"})
    stream = await Stream().open(sim)
    assert stream.status == 200
    await eventually(lambda: len(stream.events) >= 2, what="events")
    sim.control("silence_stream", {"seconds": "0.6"})
    await asyncio.sleep(0.1)
    count = len(stream.events)
    await asyncio.sleep(0.4)
    assert len(stream.events) == count and not stream.closed  # half-open: open, silent
    await eventually(lambda: len(stream.events) > count, what="events after the silence")
    assert sim.control("drop_streams")["dropped"] == 1
    await eventually(lambda: stream.closed, what="dropped stream")


async def test_hostile_events_keep_the_streams_framing(make_sim):
    sim = await dragon(make_sim, frame_interval=0.2)
    stream = await Stream().open(sim)
    stream.parser = sse.SseParser(max_line=4 << 20, max_event=4 << 20)  # see them all
    await eventually(lambda: len(stream.events) >= 1, what="the first event")
    for kind in KINDS:
        before = len(stream.events)
        sent = sim.control("malformed", {"kind": kind})["sent"]
        assert sent >= 1, kind
        wanted = before + sent
        await eventually(lambda w=wanted: len(stream.events) >= w, what=kind)
        hostile = [e.data for e in stream.events[before:wanted]]
        assert all(e.event == "telemetry" for e in stream.events[before:]), kind
        assert all(data != json.dumps(state_json(sim.device)) for data in hostile), kind
    # Still one stream, framed as before: the next telemetry event is a state.
    count = len(stream.events)
    await eventually(lambda: len(stream.events) > count, what="normal telemetry")
    assert json.loads(stream.events[-1].data)["api_version"] == 2
    assert sim.state()["counters"]["hostile_count"] >= len(KINDS)
    stream.close()


async def test_other_controllers_take_over(make_sim):
    sim = await dragon(make_sim)
    await power_on(sim, 45)
    # A web filter toggle changes source and revision, never the lease.
    sim.control("take_over", {"source": "web", "mode": "filter"})
    state = await get_state(sim)
    assert state["source"] == "web" and state["control"]["lease"]["owner"] == ME
    # The web dashboard powers on: our lease is gone, the dashboard's renews itself.
    sim.control("take_over", {"source": "web", "target": "55"})
    state = await get_state(sim)
    assert state["mode"] == "power_on" and state["target"]["requested_c"] == 55
    assert state["control"]["lease"]["owner"] == "web-dashboard"
    # A button press toggles: off, then on at the remembered manual target, without lease.
    sim.control("take_over", {"source": "button"})
    state = await get_state(sim)
    assert state["mode"] == "off" and state["source"] == "button"
    sim.control("take_over", {"source": "button"})
    state = await get_state(sim)
    assert state["mode"] == "power_on" and not state["control"]["lease"]["active"]
    sim.control("take_over", {"source": "ha", "target": "50"})
    state = await get_state(sim)
    assert state["source"] == "ha" and state["control"]["lease"]["owner"] == "ha"
    # Held 2 s: panic-off, latched in RAM only (a reboot clears it).
    sim.control("button_long_press")
    state = await get_state(sim)
    assert state["mode"] == "off" and state["safety"]["reason"] == "button panic-off"
    sim.control("reboot", {"down": 0.1})
    await sim.wait_up()
    assert not (await get_state(sim))["safety"]["fault_latched"]
    with pytest.raises(KeyError):
        sim.control("no_such_action")
    with pytest.raises(ValueError):
        sim.control("take_over", {"source": "martian"})


async def test_faults_on_demand(make_sim):
    sim = await dragon(make_sim, time_scale=30)
    await power_on(sim, 45)
    sim.control("sensor_fault", {"sensor": "chamber", "code": "2"})
    await eventually(lambda: sim.state()["fault_latched"], what="sensor trip while armed")
    state = await get_state(sim)
    assert state["safety"]["reason"] == "chamber sensor fault"
    assert state["sensors"]["chamber"] == {"temperature_c": None, "status": "open"}
    sim.control("sensor_fault", {"sensor": "chamber", "code": "0"})
    rev = (await get_state(sim))["state_revision"]
    assert (await api(sim, "POST", "/api/v2/command", command("clear_fault", rev)))[0] == 200
    assert sim.control("fault", {"reason": "chamber_overtemp"})["reason"] == "chamber over-temp"
    state = await get_state(sim)
    assert state["safety"]["fault_latched"] and state["source"] == "safety"
    assert sim.state()["flash"]["fault_latch"] is True
    sim.control("set_temps", {"chamber": "25"})
    sim.control("clear_fault")  # a long press of Power while faulted
    sim.control("fault", {"reason": "inhibit"})
    rev = (await get_state(sim))["state_revision"]
    status, body = await api(sim, "POST", "/api/v2/command", command("clear_fault", rev))
    assert (status, body["error"]) == (409, "inhibited")


async def test_persist_failed_clear(make_sim):
    sim = await dragon(make_sim, persist_fail=True)
    sim.control("fault", {"reason": "lease_expired"})
    rev = (await get_state(sim))["state_revision"]
    status, body = await api(sim, "POST", "/api/v2/command", command("clear_fault", rev))
    assert (status, body["error"]) == (500, "persist_failed")
    assert (await get_state(sim))["safety"]["fault_latched"]


async def test_drying_counts_down_to_off(make_sim):
    sim = await dragon(make_sim, time_scale=3600)  # an hour per second
    rev = (await get_state(sim))["state_revision"]
    status, body = await api(sim, "POST", "/api/v2/command",
                             command("drying_start", rev, target_c=55, hours=1))
    assert status == 200 and "lease_id" not in body
    state = body["state"]
    assert state["mode"] == "drying" and state["drying"]["active"]
    assert 0 < state["drying"]["remaining_seconds"] <= 3600
    await eventually(lambda: sim.state()["mode"] == "off", timeout=4, what="end of drying")
    state = await get_state(sim)
    assert state["source"] == "watchdog" and not state["safety"]["fault_latched"]
    assert not state["drying"]["active"]


async def test_settings_comms_ms_and_filter(make_sim):
    sim = await dragon(make_sim)
    status, body = await api(sim, "POST", "/settings", raw=b"comms_ms=30000", token=None)
    assert status == 403
    status, body = await api(sim, "POST", "/settings", raw=b"comms_ms=30000", token="web")
    assert status == 200 and body["comms_ms"] == 30000
    assert (await get_state(sim))["config"]["comms_ms"] == 30000
    status, body = await api(sim, "POST", "/settings?comms_ms=1", raw=b"", token="web")
    assert body["comms_ms"] == 10000  # clamped to the device's range
    assert (await api(sim, "POST", "/settings", raw=b"nothing=1"))[0] == 400
    await power_on(sim, 45)
    status, body = await api(sim, "POST", "/api/v2/command", command("filter", percent=100))
    assert (status, body["error"]) == (409, "heater_busy")
    assert (await api(sim, "POST", "/api/v2/command", command("filter", percent=0)))[0] == 200


async def test_reboot_drops_streams_and_refuses_while_down(make_sim):
    sim = await dragon(make_sim)
    stream = await Stream().open(sim)
    boot = (await get_state(sim))["boot_id"]
    sim.control("reboot", {"down": "0.5"})
    await eventually(lambda: stream.closed, what="stream reset")
    with pytest.raises(Exception):  # noqa: B017 - reset or refused, whichever comes
        await asyncio.wait_for(Stream().open(sim), 1)
    await sim.wait_up()
    state = await get_state(sim)
    assert state["boot_id"] != boot and state["state_revision"] == 1 and state["mode"] == "off"


@pytest.mark.parts
def test_cli_serves_dragonbreath(tmp_path):
    sim = SimProcess(tmp_path, firmware="dragonbreath",
                     extra_args=["--db-token", TOKEN, "--db-comms-ms", "20000"])
    with sim:
        state = sim.state()
        assert state["firmware"] == "dragonbreath" and state["comms_ms"] == 20000
        assert sim.control("take_over", source="button")["mode"] == "power_on"
        import urllib.request

        with urllib.request.urlopen(sim.base_url + "/api/v2/info", timeout=2) as resp:
            assert json.loads(resp.read())["api_version"] == 2
    assert TOKEN not in sim.log_path.read_text()
