"""Fixtures that assemble the real stack (testbed.stack): nothing is mocked.

A part that is missing (no venv, no mosquitto) makes the test fail, never skip.
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
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
