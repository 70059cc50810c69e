"""The stock WebSocket link's own duties: it takes its writes as done and repeats them.

The device reports no settings while connected, so the link echoes what it
wrote to the controller and writes the desired state again every
``reassert_interval``; the end-to-end tests show the same against the simulator.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from panda_breath import drying, stock_ws
from panda_breath.backoff import Backoff
from panda_breath.controller import DeviceController
from panda_breath.link import LINK_CONNECTED
from panda_breath.model import DeviceReport
from panda_breath.stock_ws_link import StockWebSocketLink
from panda_breath.user_requests import UserRequests
from test_controller import NullRelay


class RecordingStockLink(StockWebSocketLink):
    """The real link with its socket replaced by a list of the frames' contents."""

    def __init__(self, listener: Any, reassert_interval: float) -> None:
        super().__init__(listener, "stock", "pb.local", 80, connect_timeout=1.0,
                         silence_timeout=10.0, backoff=Backoff(first=0.1, cap=1.0),
                         reassert_interval=reassert_interval)
        self.writes: list[list[tuple[str, Any]]] = []

    def _write(self, writes: list[tuple[str, Any]]) -> bool:
        if self.state != LINK_CONNECTED:
            return False
        self.writes.append(writes)
        return True


def make_stock(reassert_interval: float) -> tuple[DeviceController, RecordingStockLink]:
    controller = DeviceController("dev", "chamber", 60.0, NullRelay(), lambda: None)
    link = RecordingStockLink(controller, reassert_interval)
    controller.link = link
    controller.adopt_klipper_target(0.0, None)
    link.state = LINK_CONNECTED
    controller.on_link_up()
    controller.on_report(DeviceReport(snapshot=True, work_on=False))
    return controller, link


def targets(link: RecordingStockLink, *values: float) -> list[list[tuple[str, Any]]]:
    return [stock_ws.command_sequence(value, link.version) for value in values]


async def test_a_link_without_settings_reports_gets_the_state_reasserted() -> None:
    controller, link = make_stock(reassert_interval=0.2)
    controller.set_target(45.0, "klipper")
    await asyncio.sleep(0.5)
    assert link.writes[:3] == targets(link, 0.0, 45.0, 45.0)
    assert link.reasserts >= 1
    link.state = "disconnected"
    controller.on_link_down("test")
    count = len(link.writes)
    await asyncio.sleep(0.5)
    assert len(link.writes) == count  # nothing is re-asserted while the link is down


async def test_a_write_is_taken_as_done() -> None:
    controller, link = make_stock(reassert_interval=20.0)
    controller.set_target(44.6, "klipper")
    assert (controller.work_on, controller.mode, controller.device_target) == (True, "on", 45.0)
    assert controller.describe()["reasserts"] == 0
    controller.set_target(0.0, "klipper")
    assert (controller.work_on, controller.device_target) == (False, 45.0)


async def test_a_drying_run_is_not_restarted_and_ends_when_its_time_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(drying, "DRYING_SETTLE_S", 0.0)  # the settling is long over by then
    controller, link = make_stock(reassert_interval=0.1)
    UserRequests(controller).start_drying(50, 1)
    assert controller.drying is not None and controller.mode == "drying"
    writes = len(link.writes)
    await asyncio.sleep(0.35)
    assert len(link.writes) == writes  # re-sending the start would restart its countdown
    link._drying_until = 0.0  # its hour is over
    await asyncio.sleep(0.15)
    assert controller.drying is None and controller.last_event == "drying ended"
    assert link.writes[writes:][:1] == targets(link, 0.0)
