"""The desired-state logic of DeviceController, with a link that records what it is told.

The end-to-end tests show the same behaviour through the real stack; these
pin down timing-sensitive rules (coalescing, OFF first) that a real stack
cannot make deterministic.
"""

from __future__ import annotations

import asyncio
from typing import Any

from panda_breath.controller import DeviceController
from panda_breath.link import LINK_CONNECTED, DeviceLink
from panda_breath.model import DeviceReport
from panda_breath.pacing import COALESCE_S, CORRECTION_INTERVAL_S
from panda_breath.sync import SNAPSHOT_WAIT_S


class RecordingLink(DeviceLink):
    def __init__(self, listener: Any) -> None:
        super().__init__(listener, "recording")
        self.sent: list[float] = []

    async def run(self) -> None:  # pragma: no cover - not used
        pass

    async def close(self) -> None:  # pragma: no cover - not used
        pass

    def send_target(self, target: float) -> bool:
        self.sent.append(target)
        return True

    def connect(self, controller: DeviceController, snapshot: DeviceReport | None) -> None:
        self.state = LINK_CONNECTED
        controller.on_link_up()
        if snapshot is not None:
            controller.on_report(snapshot)


class NullRelay:
    def __init__(self) -> None:
        self.readings: list[float | None] = []
        self.errors: list[str] = []

    def submit(self, controller: DeviceController, report: DeviceReport) -> None:
        self.readings.append(report.chamber_temp)

    def state_changed(self, controller: DeviceController) -> None:
        pass

    def report_error(self, controller: DeviceController, message: str) -> None:
        self.errors.append(message)


def make_controller(
    max_target: float = 60.0, klipper_spoke: bool = True
) -> tuple[DeviceController, RecordingLink, NullRelay]:
    """A controller on a recording link; by default Klipper has already said "target 0"."""
    relay = NullRelay()
    controller = DeviceController("dev", "chamber", max_target, relay, lambda: None)
    link = RecordingLink(controller)
    controller.link = link
    if klipper_spoke:
        controller.adopt_klipper_target(0.0, None)
    return controller, link, relay


async def test_desired_state_is_sent_after_the_snapshot() -> None:
    controller, link, _ = make_controller()
    controller.set_target(45.0, "klipper")
    assert link.sent == []  # link down: nothing to send yet
    link.connect(controller, DeviceReport(snapshot=True, work_on=False, chamber_temp=25.0))
    assert link.sent == [45.0]


async def test_without_a_snapshot_the_state_is_sent_after_a_wait() -> None:
    controller, link, _ = make_controller()
    controller.set_target(40.0, "klipper")
    link.connect(controller, None)
    assert link.sent == []
    await asyncio.sleep(SNAPSHOT_WAIT_S + 0.1)
    assert link.sent == [40.0]


async def test_uncommanded_heating_in_snapshot_is_switched_off_and_counted() -> None:
    controller, link, _ = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=True, mode="on"))
    assert link.sent == [0.0]
    assert controller.arbitration.uncommanded_heating_events == 1
    assert controller.last_event == "uncommanded heating switched off"


async def test_rapid_changes_coalesce_but_off_goes_out_at_once() -> None:
    controller, link, _ = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    link.sent.clear()
    for target in (40.0, 41.0, 42.0, 43.0):
        controller.set_target(target, "klipper")
    assert link.sent == [40.0]  # the first goes at once, the rest wait
    controller.set_target(0.0, "klipper")
    assert link.sent == [40.0, 0.0]  # OFF is not queued behind ON
    await asyncio.sleep(COALESCE_S * 2)
    assert link.sent == [40.0, 0.0]  # the stale ON never follows
    controller.set_target(44.0, "klipper")
    controller.set_target(46.0, "klipper")
    await asyncio.sleep(COALESCE_S * 2)
    assert link.sent[2:] == [44.0, 46.0]  # leading write, then the latest


async def test_targets_are_clamped_to_the_device_and_heater_limits() -> None:
    controller, link, _ = make_controller(max_target=60.0)
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    assert controller.set_target(75.0, "klipper") == 60.0
    controller.max_target = 50.0  # the heater's max_temp, learned from Klipper
    await asyncio.sleep(COALESCE_S * 1.5)
    assert controller.set_target(55.0, "klipper") == 50.0


async def test_sensor_fault_keeps_the_device_off_until_it_clears() -> None:
    controller, link, relay = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    controller.set_target(45.0, "klipper")
    link.sent.clear()
    controller.on_report(DeviceReport(faults={"chamber_sensor": "open circuit"}))
    assert link.sent[-1] == 0.0
    assert relay.readings == []  # no reading goes to Klipper, so its stale check acts
    controller.on_report(DeviceReport(faults={}, chamber_temp=30.0))
    assert link.sent[-1] == 45.0
    assert relay.readings == [30.0]


async def test_a_reply_older_than_the_latest_change_does_not_override_it() -> None:
    controller, link, _ = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    seen = controller.target_version
    controller.set_target(45.0, "klipper")
    controller.adopt_klipper_target(0.0, seen)  # reply computed before the change
    assert controller.target == 45.0
    controller.adopt_klipper_target(0.0, controller.target_version)
    assert controller.target == 0.0


async def test_force_off_always_writes_even_when_target_is_already_zero() -> None:
    controller, link, _ = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    link.sent.clear()
    controller.force_off("Klipper shutdown")
    assert link.sent == [0.0]
    assert controller.last_event == "off: Klipper shutdown"


async def test_after_a_moonraker_restart_a_heating_device_waits_for_klippers_word() -> None:
    # Moonraker restarted mid-print: the device heats as Klipper asked, but
    # the component does not know Klipper's target yet.
    controller, link, _ = make_controller(klipper_spoke=False)
    link.connect(controller, DeviceReport(snapshot=True, work_on=True, mode="on",
                                          device_target=45.0))
    await asyncio.sleep(SNAPSHOT_WAIT_S + 0.1)
    assert link.sent == []  # no OFF on a guess
    controller.adopt_klipper_target(45.0, None)  # the status subscription answers
    assert link.sent == [45.0]
    assert controller.arbitration.uncommanded_heating_events == 0


async def test_without_a_word_from_klipper_the_target_counts_as_zero() -> None:
    controller, link, _ = make_controller(klipper_spoke=False)
    link.connect(controller, DeviceReport(snapshot=True, work_on=True, mode="on"))
    assert link.sent == []
    controller.assume_off_if_unknown()  # the start-up grace is over
    assert link.sent == [0.0]
    assert controller.arbitration.uncommanded_heating_events == 1
    controller.assume_off_if_unknown()  # only once
    assert link.sent == [0.0]


async def test_the_same_target_set_again_is_written_again() -> None:
    # Heating at 45, switched off at the front panel (stock WS reports
    # nothing): Klipper setting 45 again must reach the device.
    controller, link, _ = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    link.sent.clear()
    controller.set_target(45.0, "klipper")
    await asyncio.sleep(COALESCE_S * 1.5)
    controller.set_target(45.0, "klipper")
    assert link.sent == [45.0, 45.0]


async def test_a_link_that_reports_settings_is_not_reasserted() -> None:
    controller, link, _ = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    await asyncio.sleep(0.35)
    assert link.sent == [0.0]


async def test_a_change_at_the_device_is_undone_at_once_and_reported() -> None:
    controller, link, _ = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    controller.set_target(45.0, "klipper")
    link.sent.clear()
    controller.on_report(DeviceReport(snapshot=True, work_on=True, mode="on", device_target=38.0))
    assert link.sent == [45.0]
    change = controller.arbitration.last_outside_change
    assert change is not None and change["changed"] == {"device_target": 38.0}
    assert "while connected" in change["by"]
    # A second contradiction within the pacing interval is delayed, not dropped.
    controller.on_report(DeviceReport(snapshot=True, work_on=False, mode="on",
                                      device_target=45.0))
    assert link.sent == [45.0]
    await asyncio.sleep(CORRECTION_INTERVAL_S + 0.1)
    assert link.sent == [45.0, 45.0]
    assert controller.arbitration.outside_changes == 2


async def test_a_state_found_on_reconnect_is_reported_as_such() -> None:
    controller, link, _ = make_controller()
    controller.set_target(45.0, "klipper")
    link.connect(controller, DeviceReport(snapshot=True, work_on=True, mode="on",
                                          device_target=30.0))
    assert link.sent == [45.0]
    change = controller.arbitration.last_outside_change
    assert change is not None and change["changed"] == {"device_target": 30.0}
    assert "(re)connecting" in change["by"]


async def test_printer_sensor_readings_that_are_not_finite_numbers_are_ignored() -> None:
    relay = NullRelay()
    controller = DeviceController("dev", "chamber", 60.0, relay, lambda: None,
                                  chamber_sensor="temperature_sensor chamber",
                                  regulation_interval=5.0)
    link = RecordingLink(controller)
    controller.link = link
    controller.adopt_klipper_target(0.0, None)
    link.connect(controller, DeviceReport(snapshot=True, work_on=False, chamber_temp=30.0))
    controller.set_target(40.0, "klipper")
    for value in (float("nan"), float("inf"), "40", None, True, [40], 10**400):
        controller.on_printer_reading(value)
    assert controller.chamber.printer_temp is None
    controller.on_printer_reading(35.5)
    assert controller.chamber.printer_temp == 35.5
    assert controller.set_point() == 40.0


async def test_a_target_the_device_cannot_take_is_reported_once_per_target() -> None:
    controller, link, relay = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    controller.set_target(40.0, "klipper")
    for _ in range(3):  # the link reports the same refusal on every retry
        controller.refused_target(40.0, "the device refused target 40 °C (heater_busy)")
    assert relay.errors == ["the device refused target 40 °C (heater_busy)"]
    controller.set_target(42.0, "klipper")
    controller.refused_target(42.0, "the device refused target 42 °C (heater_busy)")
    assert len(relay.errors) == 2


async def test_a_target_while_the_device_reports_a_fault_is_reported() -> None:
    controller, link, relay = make_controller()
    link.connect(controller, DeviceReport(snapshot=True, work_on=False))
    controller.on_report(DeviceReport(faults={"ptc": "sensor open"}))
    controller.set_target(40.0, "klipper")
    assert relay.errors == [
        "target 40 not applied: the device reports ptc: sensor open; the device stays off "
        "until the fault clears"
    ]
    assert link.sent[-1] == 0.0


async def test_a_request_waits_for_the_first_state_and_no_longer() -> None:
    """A request made as the link comes up goes on the moment the connection is
    synced, and at once when the link drops instead (user_requests.first_state)."""
    from panda_breath.user_requests import UserRequests

    controller, link, _ = make_controller()
    requests = UserRequests(controller)
    loop = asyncio.get_running_loop()
    link.connect(controller, None)  # up, no snapshot yet: not synced
    waiting = asyncio.ensure_future(requests.first_state())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    began = loop.time()
    controller.on_report(DeviceReport(snapshot=True, work_on=False, chamber_temp=25.0))
    await asyncio.wait_for(waiting, 1.0)
    assert controller.sync.synced and loop.time() - began < 0.01

    link.state = "disconnected"
    controller.on_link_down("gone")
    link.connect(controller, None)
    waiting = asyncio.ensure_future(requests.first_state())
    await asyncio.sleep(0.01)
    began = loop.time()
    link.state = "disconnected"
    controller.on_link_down("gone")
    await asyncio.wait_for(waiting, 1.0)
    assert loop.time() - began < 0.01
