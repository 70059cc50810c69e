"""A pytest plugin: the run fails if a real part it started is still alive at its end.

Each pytest process (the controller, or each xdist worker) gets an id of its
own in ``RUN_TAG`` at start; ``spawn`` copies it into each part's environment,
and processes a test starts (the demo, the fault suite) pass it on. At its end
each pytest process scans ``/proc`` for live parts with its id (a worker must
look before it exits, as its parts die with it), names them, kills them, and
the controller fails the run.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest

from .processes import RUN_TAG, kill_tagged, tagged_processes

#: Seconds a part may take to exit after its owner stopped it.
GRACE = 5.0
_KEY = "parts_left_running"
_found: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    os.environ[RUN_TAG] = uuid.uuid4().hex


def _left_running() -> list[str]:
    tag = os.environ[RUN_TAG]
    deadline = time.monotonic() + GRACE
    while (alive := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    kill_tagged(tag)
    return [f"pid {pid}: {cmdline[:200]}" for pid, cmdline in alive]


@pytest.hookimpl(optionalhook=True)  # an xdist hook
def pytest_testnodedown(node: Any, error: object) -> None:
    _found.extend(getattr(node, "workeroutput", {}).get(_KEY, []))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = _left_running()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput[_KEY] = left
        return
    _found.extend(left)
    if not _found:
        return
    message = "\n".join(["real parts started by this run were still alive at its end "
                         "(now killed):", *(f"  {line}" for line in _found)])
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "parts left running", red=True)
        reporter.write_line(message)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
