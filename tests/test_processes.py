"""No real part outlives what started it (testbed.processes, testbed.leaks).

Parts are plain ``sleep`` processes here: what is under test is how they are
started and found, not what they run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
from testbed import ROOT, wait_until
from testbed.processes import NO_PARTS, PART_TAG, RUN_TAG, PartsForbidden, kill_tagged, spawn
from testbed.processes import tagged_processes as tagged

#: A program that starts one part with spawn() from a thread that then ends, says
#: its pid, and waits to be killed.
STARTER = """
import subprocess, sys, threading, time
from testbed.processes import spawn
started = threading.Thread(target=lambda: spawn(["sleep", "600"], stdout=subprocess.DEVNULL))
started.start(); started.join()
print("started", flush=True)
time.sleep(600)
"""


@pytest.fixture
def tag(monkeypatch: pytest.MonkeyPatch) -> str:
    """A run id of this test's own, so that only its parts are counted (and cleaned up)."""
    fresh = uuid.uuid4().hex
    monkeypatch.setenv(RUN_TAG, fresh)
    monkeypatch.delenv(NO_PARTS, raising=False)
    yield fresh
    kill_tagged(fresh)


def test_a_part_carries_the_run_tag_in_its_own_session(tag: str) -> None:
    part = spawn(["sleep", "600"], stdout=subprocess.DEVNULL)
    try:
        assert [pid for pid, _ in tagged(tag)] == [part.pid]
        assert os.getsid(part.pid) == part.pid
    finally:
        part.kill()
        part.wait()
    assert tagged(tag) == []


def test_parts_die_with_their_starter_even_on_sigkill(tag: str) -> None:
    # The part is forked for a thread that ends at once: it must outlive that
    # thread (PDEATHSIG follows the forking thread) yet die with the process.
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "scripts")},
    )  # fmt: skip
    try:
        assert starter.stdout is not None and starter.stdout.readline() == "started\n"
        wait_until(lambda: len(tagged(tag)) == 1, 5.0, what="the part")
        threading.Event().wait(0.5)
        assert len(tagged(tag)) == 1, "the part died with the thread that started it"
        starter.send_signal(signal.SIGKILL)
        starter.wait(5)
        wait_until(lambda: tagged(tag) == [], 5.0, what="the part to die with its starter")
    finally:
        starter.kill()
        starter.wait()


def test_the_quick_tier_may_not_start_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_PARTS, "1")
    with pytest.raises(PartsForbidden, match="quick"):
        spawn(["sleep", "600"])


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_that_leaves_a_part_running_fails_and_names_it(tmp_path: Path, workers: int) -> None:
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent("""
        import subprocess
        from testbed.processes import spawn

        def test_leaves_a_part():
            spawn(["sleep", "600"], stdout=subprocess.DEVNULL)

        def test_stops_its_part():
            part = spawn(["sleep", "601"], stdout=subprocess.DEVNULL)
            part.kill()
            part.wait()
    """))
    env = {k: v for k, v in os.environ.items() if k not in (RUN_TAG, PART_TAG, NO_PARTS)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "testbed.leaks", "-p", "no:cacheprovider",
         "-n", str(workers), "test_leaky.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**env, "PYTHONPATH": str(ROOT / "scripts")},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert "sleep 600" in done.stdout and "sleep 601" not in done.stdout
    # And it killed what it found.
    assert not [line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                 text=True).stdout.splitlines()
                if line.strip() == "sleep 600"]
