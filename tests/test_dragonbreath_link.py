"""DragonBreathLink against the real DragonBreath simulator (HTTP, event stream, lease).

The listener records what the link tells it, like test_controller's
RecordingLink does the other way round; one test runs the real
DeviceController on top to show the desired state coming back after a reboot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sim_fixtures
from hypothesis import given
from hypothesis import strategies as st
from panda_breath.backoff import Backoff
from panda_breath.controller import DeviceController
from panda_breath.dragonbreath_lease import BEAT_RETRY_S, next_beat
from panda_breath.dragonbreath_link import DragonBreathLink
from panda_breath.dragonbreath_stream import POLLING, STREAM
from panda_breath.link import LINK_CONNECTED
from panda_breath.model import MODE_ON, DeviceReport
from sim_fixtures import eventually

make_sim = sim_fixtures.make_sim

TOKEN = "tok-3f9a-very-secret"


class RecordingListener:
    def __init__(self) -> None:
        self.ups = 0
        self.downs: list[str] = []
        self.reports: list[DeviceReport] = []
        self.refusals: list[tuple[float, str]] = []
        self.refused_requests: list[str] = []
        self.changes = 0

    def on_link_up(self) -> None:
        self.ups += 1

    def on_link_down(self, reason: str) -> None:
        self.downs.append(reason)

    def on_report(self, report: DeviceReport) -> None:
        self.reports.append(report)

    def on_link_changed(self) -> None:
        self.changes += 1

    def refused_target(self, target: float, reason: str) -> None:
        self.refusals.append((target, reason))

    def refused_request(self, reason: str) -> None:
        self.refused_requests.append(reason)

    def last(self) -> DeviceReport:
        return self.reports[-1]


Starter = Callable[..., Any]


@pytest.fixture
async def start_link() -> AsyncIterator[Starter]:
    running: list[tuple[DragonBreathLink, asyncio.Future[Any]]] = []

    async def start(sim: Any, listener: Any = None, **options: Any) -> DragonBreathLink:
        options.setdefault("silence_timeout", 2.0)
        options.setdefault("connect_timeout", 2.0)
        options.setdefault("backoff", Backoff(0.1, 0.5))
        link = DragonBreathLink(listener or RecordingListener(), "test", "127.0.0.1",
                                port=sim.port, **options)
        task = asyncio.ensure_future(link.run())
        running.append((link, task))
        await eventually(lambda: link.state == LINK_CONNECTED, timeout=5, what="link up")
        return link

    yield start
    for link, task in running:
        await link.close()
        try:
            await asyncio.wait_for(task, 5)
        except (asyncio.CancelledError, asyncio.TimeoutError):
            task.cancel()


async def dragon(make_sim: Any, **options: Any) -> Any:
    options.setdefault("frame_interval", 0.2)
    options.setdefault("comms_ms", 1500)
    options.setdefault("comms_ms_min", 500)
    options.setdefault("lease_check_interval", 0.1)
    return await make_sim(firmware="dragonbreath", **options)


def heating_under(link: DragonBreathLink, target: float) -> Callable[[Any], bool]:
    def check(sim: Any) -> bool:
        s = sim.state()
        lease = s["lease"]
        return (s["mode"] == "power_on" and s["requested_c"] == target and lease is not None
                and lease["owner"] == link.actor_id)
    return check


@contextlib.asynccontextmanager
async def controller_on_link(sim: Any) -> AsyncIterator[tuple[DeviceController, DragonBreathLink]]:
    """A real controller driving a running link to ``sim``, closed on the way out."""
    controller = DeviceController("dev", "chamber", 60.0, QuietRelay(), lambda: None)
    link = DragonBreathLink(controller, "dev", "127.0.0.1", port=sim.port,
                            silence_timeout=2.0, backoff=Backoff(0.1, 0.5))
    controller.link = link
    task = asyncio.ensure_future(link.run())
    try:
        yield controller, link
    finally:
        await link.close()
        await asyncio.wait_for(task, 5)


class QuietRelay:
    """A relay that drops everything (the controller's Klipper side is not under test)."""

    def submit(self, controller: Any, report: Any) -> None:
        pass

    def state_changed(self, controller: Any) -> None:
        pass

    def report_error(self, controller: Any, message: str) -> None:
        pass


async def test_connects_streams_and_reports_readings(make_sim, start_link):
    sim = await dragon(make_sim)
    sim.control("set_temps", {"chamber": "27.5"})
    link = await start_link(sim)
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    assert listener.ups == 1
    first = listener.reports[0]
    assert first.snapshot and first.boot_id == sim.state()["boot_id"] and first.revision == 1
    await eventually(lambda: link.stream.state == STREAM, what="event stream")
    count = len(listener.reports)
    await eventually(lambda: len(listener.reports) >= count + 3, what="telemetry reports")
    assert abs(listener.last().chamber_temp - 27.5) < 0.5
    info = link.describe()
    for key in ("stream", "lease_owned", "lease_expires_s", "source", "boot_id", "revision",
                "heartbeats_sent", "last_refusal", "comms_ms", "firmware_version"):
        assert key in info
    assert info["stream"] == STREAM and info["source"] == "boot" and info["revision"] == 1
    assert info["comms_ms"] == 1500 and info["firmware_version"] == "v1.1.11"
    assert sim.state()["streams"] == 1


async def test_power_on_and_off_reach_the_device(make_sim, start_link):
    sim = await dragon(make_sim, time_scale=60)
    link = await start_link(sim)
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    assert link.send_target(45.2)
    await eventually(lambda: heating_under(link, 45)(sim), what="device heating at 45")
    await eventually(lambda: link.lease.owned, what="lease owned")
    await eventually(lambda: listener.last().lease_owned and listener.last().mode == MODE_ON,
                     what="report of our lease")
    assert listener.last().source == "klipper"
    await eventually(lambda: sim.state()["heater_on"], what="SSR on")
    # The same target again: only heartbeats, no new lease (no revision churn).
    revision = sim.state()["revision"]
    assert link.send_target(45)
    await asyncio.sleep(0.5)
    assert sim.state()["revision"] == revision and link.lease.acquired == 1
    # A new target: a new power_on.
    assert link.send_target(50)
    await eventually(lambda: heating_under(link, 50)(sim), what="device heating at 50")
    assert link.send_target(0)
    await eventually(lambda: sim.state()["mode"] == "off", what="device off")
    assert sim.state()["lease"] is None and not sim.state()["fault_latched"]
    await eventually(lambda: not link.lease.owned, what="lease released")
    assert link.lease.losses == 0  # released, not lost
    assert link.last_error is None


async def test_heartbeats_keep_the_lease_for_a_compressed_hour(make_sim, start_link):
    # 720x: an hour of device time in 5 s; a 2 s lease renewed every 0.67 s.
    sim = await dragon(make_sim, time_scale=720, comms_ms=2000)
    link = await start_link(sim)
    assert link.send_target(45)
    await eventually(lambda: heating_under(link, 45)(sim), what="heating")
    start_model = sim.state()["model_time"]
    samples = 0
    while sim.state()["model_time"] - start_model < 3600:
        state = sim.state()
        assert not state["fault_latched"], state["fault_reason"]
        assert heating_under(link, 45)(sim)
        assert state["lease"]["expires_in"] > 0
        samples += 1
        await asyncio.sleep(0.1)
    assert samples >= 30
    assert link.lease.heartbeats_sent >= 5 and link.lease.heartbeat_failures == 0
    assert link.lease.acquired == 1 and link.lease.losses == 0
    assert sim.state()["counters"].get("heartbeats_refused", 0) == 0
    assert 43.0 < sim.state()["chamber_temp"] < 47.5  # it really heated, and regulates
    assert link.describe()["lease_expires_s"] is not None


@pytest.mark.parametrize("answer_delay", [0.0, 0.8])
async def test_heartbeats_reach_the_device_on_time_even_when_answers_are_slow(
    make_sim, start_link, answer_delay
):
    """Every gap the device sees is at most a third of comms_ms plus a round trip.

    comms_ms 1500 is the 10 s lease compressed 6.7 times (a beat every 0.5 s);
    an answer slower than the interval must not delay the next beat.
    """
    sim = await dragon(make_sim, comms_ms=1500)
    link = await start_link(sim)
    sim.control("slow_heartbeat_answers", {"seconds": str(answer_delay)})
    assert link.send_target(45)
    await eventually(lambda: heating_under(link, 45)(sim), what="heating")
    await eventually(lambda: len(sim.state()["lease"]["renewal_gaps"]) >= 8, timeout=8,
                     what="eight renewals")
    gaps = sim.state()["lease"]["renewal_gaps"]
    assert max(gaps) <= 1.5 / 3 + 0.1, gaps
    assert link.lease.losses == 0 and not sim.state()["fault_latched"]


@given(
    comms_ms=st.sampled_from([10000, 30000, 300000]) | st.integers(10000, 300000),
    answers=st.lists(st.tuples(st.floats(0.0, 60.0), st.booleans()), min_size=1, max_size=30),
)
def test_each_beat_is_timed_from_the_last_send_whatever_the_answers(comms_ms, answers):
    """The scheduling unit over the whole comms_ms range (compressed time: no clock runs).

    Beats go out when due; each answer comes back after any delay, or fails
    (a failure of the latest beat asks for a retry).  The next beat is never
    later than a third of comms_ms (at most 30 s) after the previous send,
    and a retry only ever brings it sooner.
    """
    interval = min(comms_ms / 3000.0, 30.0)
    sent_at, retry_at = 0.0, None
    for delay, ok in answers:
        due = next_beat(sent_at, retry_at, comms_ms)
        assert due - sent_at <= interval + 1e-9 and interval <= comms_ms / 3000.0
        regular = next_beat(sent_at, None, comms_ms)
        answered = sent_at + delay
        if not ok and answered < regular:  # the latest beat failed: retry soon
            retry_at = answered + min(BEAT_RETRY_S, interval / 3.0)
            assert next_beat(sent_at, retry_at, comms_ms) <= regular
        sent_at, retry_at = next_beat(sent_at, retry_at, comms_ms), None


async def test_a_killed_link_leaves_the_device_to_its_own_watchdog(make_sim):
    sim = await dragon(make_sim)
    link = DragonBreathLink(RecordingListener(), "doomed", "127.0.0.1", port=sim.port,
                            silence_timeout=2.0, backoff=Backoff(0.1, 0.5))
    task = asyncio.ensure_future(link.run())
    await eventually(lambda: link.state == LINK_CONNECTED, what="link up")
    link.send_target(45)
    await eventually(lambda: heating_under(link, 45)(sim), what="heating")
    await eventually(lambda: link.lease.heartbeats_sent >= 2, what="heartbeats")
    # Moonraker dies: its task is gone, no OFF is sent, no heartbeat follows.
    task.cancel()
    killed = time.monotonic()
    beats = sim.state()["counters"]["heartbeats_accepted"]
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: sim.state()["fault_latched"], timeout=4, what="watchdog trip")
    elapsed = time.monotonic() - killed
    # comms_ms (1.5 s) after the last renewal, plus the device's 0.1 s check cadence
    # and some slack for a loaded machine.
    assert elapsed <= 2.5, elapsed
    state = sim.state()
    assert state["mode"] == "off" and not state["heater_on"]
    assert state["fault_reason"] == "controller lease expired" and state["source"] == "watchdog"
    assert state["counters"]["heartbeats_accepted"] == beats
    assert state["counters"].get("commands_received") == 1  # the power_on; no OFF was sent


async def test_stream_busy_polling_still_controls_it(make_sim, start_link):
    sim = await dragon(make_sim, time_scale=60)
    sim.control("occupy_streams", {"n": "2"})  # its dashboard and /diag hold both slots
    link = await start_link(sim)
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    await eventually(lambda: link.stream.refusals >= 1, what="503 busy")
    assert link.stream.state == POLLING and link.describe()["stream"] == POLLING
    count = len(listener.reports)
    await eventually(lambda: len(listener.reports) >= count + 2, what="polled reports")
    link.send_target(40)
    await eventually(lambda: heating_under(link, 40)(sim), what="heating while polling")
    await asyncio.sleep(2.0)  # more than one lease: the heartbeats keep it
    assert heating_under(link, 40)(sim) and not sim.state()["fault_latched"]
    assert link.stream.polls >= 2 and link.lease.heartbeats_sent >= 2
    link.send_target(0)
    await eventually(lambda: sim.state()["mode"] == "off", what="off while polling")
    sim.control("occupy_streams", {"n": "0"})
    await eventually(lambda: link.stream.state == STREAM, timeout=10, what="stream back")
    assert listener.downs == []


async def test_silent_stream_falls_back_to_polling(make_sim, start_link):
    sim = await dragon(make_sim)
    link = await start_link(sim, silence_timeout=2.0)  # stream silence: 1 s
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    await eventually(lambda: link.stream.state == STREAM, what="stream")
    sim.control("silence_stream", {"seconds": "4"})
    await eventually(lambda: link.stream.state == POLLING, timeout=3, what="polling")
    await eventually(lambda: sim.state()["streams"] == 0, what="silent stream closed by us")
    await eventually(lambda: link.stream.state == STREAM, timeout=10, what="stream again")
    assert listener.downs == [] and listener.ups == 1 and link.stream.polls >= 1


async def test_a_failed_session_task_starts_a_new_session(make_sim, start_link):
    """A bug in the heartbeats (or the writer) must not leave a session without them."""
    sim = await dragon(make_sim)
    link = await start_link(sim)
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    beat = link.lease._beat
    failed: list[bool] = []

    async def broken_once(lease_id: str, sent_at: float) -> None:
        if not failed:
            failed.append(True)
            raise RuntimeError("a bug")
        await beat(lease_id, sent_at)

    link.lease._beat = broken_once  # type: ignore[method-assign]
    link.send_target(45)
    await eventually(lambda: listener.downs, timeout=5, what="the broken session ended")
    assert listener.downs == ["internal error: heartbeats failed (RuntimeError)"]
    await eventually(lambda: listener.ups == 2, timeout=5, what="a new session")
    link.send_target(45)  # what the controller does on on_link_up
    await eventually(lambda: link.lease.heartbeats_sent >= 2, timeout=5, what="heartbeats again")
    assert heating_under(link, 45)(sim)


async def test_reboot_is_a_new_link_up(make_sim, start_link):
    sim = await dragon(make_sim)
    link = await start_link(sim)
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    link.send_target(45)
    await eventually(lambda: heating_under(link, 45)(sim), what="heating")
    old_boot = link.boot_id
    sim.control("reboot", {"down": "0.3"})
    await eventually(lambda: listener.ups == 2, timeout=5, what="on_link_up after the reboot")
    assert link.boot_id == sim.state()["boot_id"] != old_boot
    assert link.reboots_seen == 1 and not link.lease.owned and link.revision == 1
    assert listener.downs == []  # back within silence_timeout: the same session
    assert link.lease.losses == 0  # a reboot ends the lease; nobody took it
    assert sim.state()["mode"] == "off"
    link.send_target(45)  # what the controller does on on_link_up
    await eventually(lambda: heating_under(link, 45)(sim), what="heating again")


async def test_the_controller_resends_after_a_reboot(make_sim):
    sim = await dragon(make_sim)

    async with controller_on_link(sim) as (controller, link):
        controller.set_target(42.0, "klipper")
        await eventually(lambda: heating_under(link, 42)(sim), timeout=5, what="heating")
        sim.control("reboot", {"down": "0.3"})
        await eventually(lambda: link.reboots_seen == 1, timeout=5, what="reboot seen")
        await eventually(lambda: heating_under(link, 42)(sim), timeout=5,
                         what="desired state resent after the reboot")
        controller.force_off("test over")
        await eventually(lambda: sim.state()["mode"] == "off", what="off")
        assert await link.flush(2.0)


async def test_revision_conflict_is_reread_and_decided(make_sim, start_link):
    sim = await dragon(make_sim)
    link = await start_link(sim)
    sim.control("slow", {"seconds": "0.5"})
    link.send_target(45)
    await eventually(lambda: sim.state()["counters"].get("delayed_requests"),
                     what="power_on at the device")
    # While our power_on is being handled, the web UI toggles the filter: a new revision.
    sim.control("take_over", {"source": "web", "mode": "filter"})
    await eventually(lambda: link.commands.revision_conflicts == 1, timeout=3, what="conflict")
    await eventually(lambda: heating_under(link, 45)(sim), timeout=5,
                     what="power_on with the re-read revision")
    sim.control("slow", {"seconds": "0"})
    # The device holds our lease before its (slowed) answer reaches the link.
    await eventually(lambda: link.lease.acquired == 1, timeout=3, what="the lease taken")
    assert link.commands.revision_conflicts == 1
    conflicts = sim.state()["counters"]["error_revision_conflict"]
    assert conflicts == 1  # decided once on fresh state, never retried blind


async def test_take_over_is_reported_as_a_lost_lease(make_sim, start_link):
    sim = await dragon(make_sim)
    link = await start_link(sim)
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    link.send_target(45)
    await eventually(lambda: heating_under(link, 45)(sim), what="heating")
    sim.control("take_over", {"source": "web", "target": "55"})
    await eventually(lambda: link.lease.losses, timeout=3, what="lease lost")
    assert not link.lease.owned and link.lease.losses == 1
    assert listener.last().source == "web" and listener.last().lease_owned is False
    assert listener.last().device_target == 55
    # The device's own dashboard holds its lease now; no fault from our missing heartbeats.
    await asyncio.sleep(2.0)
    assert not sim.state()["fault_latched"]


async def test_refused_targets_are_reported(make_sim, start_link):
    sim = await dragon(make_sim)
    link = await start_link(sim)
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    link.send_target(45)
    await eventually(lambda: heating_under(link, 45)(sim), what="heating")
    assert link.send_target(25)
    assert link.commands.last_refusal is not None and "30" in link.commands.last_refusal
    assert listener.refusals and listener.refusals[-1][0] == 25
    await eventually(lambda: sim.state()["mode"] == "off", what="fail safe: off")
    # A latched fault refuses heat: reported, nothing sent.
    sim.control("fault", {"reason": "chamber_overtemp"})
    await eventually(lambda: listener.last().fault_latched, what="fault reported")
    assert listener.last().faults == {"safety": "chamber over-temp"}
    sent = sim.state()["counters"].get("commands_received", 0)
    link.send_target(45)
    await eventually(lambda: len(listener.refusals) == 2, what="second refusal")
    assert "latched" in listener.refusals[-1][1]
    assert sim.state()["counters"].get("commands_received", 0) == sent
    # An explicit clear works with the current revision; heat is then accepted again.
    sim.control("set_temps", {"chamber": "25"})
    assert link.clear_fault()
    await eventually(lambda: not sim.state()["fault_latched"], what="cleared")
    link.send_target(45)
    await eventually(lambda: heating_under(link, 45)(sim), what="heating after the clear")
    assert link.commands.last_refusal is None


async def test_lease_timeout_sets_comms_ms(make_sim, start_link):
    sim = await dragon(make_sim, comms_ms=300000)
    link = await start_link(sim, lease_timeout=12)
    await eventually(lambda: sim.state()["comms_ms"] == 12000, what="comms_ms set")
    await eventually(lambda: link.lease.comms_ms == 12000, what="link knows")
    with pytest.raises(ValueError):
        DragonBreathLink(RecordingListener(), "x", "127.0.0.1", lease_timeout=5)


async def test_lease_timeout_is_applied_again_at_once_after_a_wiping_reboot(
    make_sim, start_link
):
    sim = await dragon(make_sim, comms_ms=300000)
    link = await start_link(sim, lease_timeout=12)
    await eventually(lambda: sim.state()["comms_ms"] == 12000, what="comms_ms set")
    sim.control("reboot", {"down": "0.2", "wipe": "1"})  # back at its 300 s default
    await eventually(lambda: link.reboots_seen == 1, timeout=5, what="the reboot seen")
    # Not after the 30 s settings retry pause: the watchdog must be short again.
    await eventually(lambda: sim.state()["comms_ms"] == 12000, timeout=3,
                     what="comms_ms set again")


async def test_over_long_events_are_counted_while_the_stream_stays_open(make_sim, start_link):
    sim = await dragon(make_sim)
    link = await start_link(sim)
    await eventually(lambda: link.describe()["stream"] == "stream", what="streaming")
    sim.control("malformed", {"kind": "oversize"})  # 64 KiB: beyond the line limit
    await eventually(lambda: link.frames_dropped == 1, timeout=3, what="counted at once")
    assert link.describe()["stream"] == "stream" and link.state == LINK_CONNECTED


async def test_drying(make_sim, start_link):
    sim = await dragon(make_sim, time_scale=60)
    link = await start_link(sim)
    assert link.supports_drying and link.send_drying(55, 24)  # 24 h: DragonBreath runs 12
    await eventually(lambda: sim.state()["mode"] == "drying", what="drying")
    assert sim.state()["drying"]["target"] == 55
    assert 11 * 3600 < sim.state()["drying"]["remaining_seconds"] <= 12 * 3600
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    await eventually(lambda: listener.last().drying is True, what="drying reported")
    link.send_target(0)
    await eventually(lambda: sim.state()["mode"] == "off", what="drying stopped")


async def test_filtration_on_and_off_and_refused_while_heating(make_sim, start_link):
    sim = await dragon(make_sim)
    link = await start_link(sim)
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    assert link.supports_filter and link.send_filter(True)
    await eventually(lambda: sim.state()["filter_percent"] == 100, what="filter on")
    await eventually(lambda: listener.last().filter_requested is True, what="filter reported")
    assert sim.state()["fan_reason"] == "requested" and sim.state()["mode"] == "off"
    assert link.send_filter(False)
    await eventually(lambda: sim.state()["filter_percent"] == 0, what="filter off")
    await eventually(lambda: listener.last().filter_requested is False, what="off reported")
    # The blower serves the heater while it heats: the device refuses (409
    # heater_busy) and the refusal reaches the listener.
    link.send_target(45)
    await eventually(lambda: heating_under(link, 45)(sim), what="heating")
    assert link.send_filter(True)
    await eventually(lambda: listener.refused_requests, what="the refusal")
    assert "filter on not applied" in listener.refused_requests[0]
    assert "heat" in listener.refused_requests[0]
    assert sim.state()["filter_percent"] == 0
    assert heating_under(link, 45)(sim)  # the heat went on untouched


async def test_device_gone_is_a_link_down_and_back(make_sim, start_link):
    sim = await dragon(make_sim)
    link = await start_link(sim, silence_timeout=1.0)
    listener: RecordingListener = link.listener  # type: ignore[assignment]
    sim.control("refuse", {"seconds": "2.5"})
    sim.control("drop_streams")
    await eventually(lambda: listener.downs, timeout=4, what="link down")
    assert "silent" in listener.downs[0]
    assert not link.send_target(45)  # nothing is sent while down
    await eventually(lambda: listener.ups == 2, timeout=8, what="link up again")
    assert link.reconnects == 1


async def test_token_never_in_logs_or_status(make_sim, start_link, caplog):
    caplog.set_level(logging.DEBUG)
    sim = await dragon(make_sim, token=TOKEN)
    link = await start_link(sim, token=TOKEN)
    link.send_target(45)
    await eventually(lambda: heating_under(link, 45)(sim), what="heating with the token")
    await eventually(lambda: link.lease.heartbeats_sent >= 2, what="heartbeats with the token")
    lease_id = link.lease._id
    assert lease_id is not None
    link.send_target(0)
    await eventually(lambda: sim.state()["mode"] == "off", what="off")
    # A wrong token: refused, reported, and the report does not quote either token.
    wrong = "wrong-" + TOKEN[::-1]
    bad = await start_link(sim, token=wrong)
    bad_listener: RecordingListener = bad.listener  # type: ignore[assignment]
    bad.send_target(45)
    await eventually(lambda: bad_listener.refusals, what="auth refusal")
    assert "token" in bad_listener.refusals[0][1]
    assert sim.state()["counters"]["auth_failures"] >= 1
    text = caplog.text + json.dumps(link.describe()) + json.dumps(bad.describe())
    text += " ".join(reason for _, reason in bad_listener.refusals)
    for secret in (TOKEN, wrong, lease_id):
        assert secret not in text
    assert "auth" in caplog.text or bad.last_refusal
    with pytest.raises(ValueError) as caught:
        DragonBreathLink(RecordingListener(), "x", "h", token=TOKEN + "\n")
    assert TOKEN not in str(caught.value)


async def test_a_latched_fault_costs_one_off_not_one_per_report(make_sim):
    """The controller writes OFF on every report showing a fault; the device is
    already off at the revision our OFF produced, so the link sends it once."""
    sim = await dragon(make_sim)

    async with controller_on_link(sim) as (controller, link):
        controller.set_target(45.0, "klipper")
        await eventually(lambda: heating_under(link, 45)(sim), timeout=5, what="heating")
        sim.control("fault", {"reason": "chamber_overtemp"})
        await eventually(lambda: controller.faults, what="fault seen by the controller")
        await asyncio.sleep(0.5)
        sent = sim.state()["counters"]["commands_received"]
        reports = link.frames_received
        await asyncio.sleep(1.5)
        assert link.frames_received >= reports + 5  # telemetry kept coming
        assert sim.state()["counters"]["commands_received"] == sent
        assert link.commands.offs_skipped >= 5
        assert sim.state()["mode"] == "off" and sim.state()["fault_latched"]
