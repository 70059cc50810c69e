"""Fixtures that assemble the real stack (testbed.stack): nothing is mocked.

A part that is missing (no venv, no mosquitto) makes the test fail, never skip.
The quick tier (``scripts/test --quick``, marker ``quick``) is every test that
needs no real part: the files in ``QUICK_FILES`` less the tests that take a
broker or are marked ``parts``. It runs with real parts forbidden
(testbed.processes.NO_PARTS), so a test placed there wrongly fails at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testbed.stack import Stack, start_stack

#: Test files that take minutes: started first, so parallel workers (scripts/test)
#: are not left waiting for them at the end.
SLOW_FILES = ("test_faults_script.py", "test_e2e_chamber_sensor.py")


#: Files whose tests run in-process (protocols, decoders, links against in-process
#: simulators, the controller, regulation, the simulator's units, property tests).
QUICK_FILES = (
    "test_arbitration.py", "test_backoff.py", "test_config.py", "test_controller.py",
    "test_decoder_properties.py", "test_device_notices.py", "test_dragonbreath_link.py",
    "test_dragonbreath_protocol.py", "test_impair.py", "test_klipper_state.py",
    "test_link_given_up.py", "test_sim_sessions.py",
    "test_mqtt_protocols.py", "test_regulation.py", "test_resolve.py", "test_shape.py",
    "test_sim_controls.py", "test_sim_dragonbreath.py", "test_sim_faults.py",
    "test_sim_hostile.py", "test_sim_stock_ws.py", "test_stock_protocol.py",
    "test_stock_ws_link.py", "test_supervisor.py", "test_system_packages.py",
    "test_quick_tier.py", "test_stock_ws_session.py", "test_websocket_client.py",
    "test_websocket_protocol.py",
)  # fmt: skip


def _quick(item: pytest.Item) -> bool:
    return (item.path.name in QUICK_FILES and "broker" not in getattr(item, "fixturenames", ())
            and item.get_closest_marker("parts") is None)


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _quick(item):
            item.add_marker(pytest.mark.quick)
    items.sort(key=lambda item: item.path.name not in SLOW_FILES)  # stable: order kept


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start a stack (see testbed.stack.start_stack for the options); stopped after the test."""
    stacks: list[Stack] = []

    def build(firmware: str = "v1.0.3", **options: Any) -> Stack:
        stack = start_stack(tmp_path, firmware, **options)
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.stop()
