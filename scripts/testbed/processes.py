"""How every real part is started: no part outlives the process that started it.

``spawn`` runs a part in its own session (a terminal's Ctrl-C reaches only the
caller, which stops the parts in order) and asks the kernel to SIGKILL it when
its starter dies, even by SIGKILL (``PR_SET_PDEATHSIG``). That signal fires
when the *thread* that forked the part ends, so every part is forked by one
thread that lives as long as the process. Each part carries ``PART_TAG`` in its
environment: a test run finds what it left running by scanning ``/proc``.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

#: Set by a test run (testbed.leaks) to a fresh id; ``spawn`` copies it to ``PART_TAG``.
#: A test may give a process it starts ``RUN.SUFFIX``: that process's parts are
#: then both the run's and its own.
RUN_TAG = "PANDA_BREATH_RUN"
#: In each part's environment: the run that started it ("" outside a test run).
PART_TAG = "PANDA_BREATH_PART"
#: Set by ``scripts/test --quick``: starting a real part is then an error.
NO_PARTS = "PANDA_NO_PARTS"
_PR_SET_PDEATHSIG = 1

try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork
except (OSError, AttributeError):  # not Linux: parts are still stopped by their owners
    _prctl = None


class PartsForbidden(RuntimeError):
    """A quick-tier test tried to start a real part."""


def _die_with_parent(parent: int) -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the starter died before prctl took effect
        os._exit(1)


class _Spawner(threading.Thread):
    """The one thread that forks parts (a short-lived thread would take them with it)."""

    def __init__(self) -> None:
        super().__init__(name="testbed-spawner", daemon=True)
        self.jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            job, future = self.jobs.get()
            try:
                future.set_result(job())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def _in_spawner(job: Callable[[], Any]) -> Any:
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = _Spawner()
            _spawner.start()
        future: Future[Any] = Future()
        _spawner.jobs.put((job, future))
    return future.result()


def spawn(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start a real part: own session, killed with its starter, tagged for leak checks.

    ``preexec`` runs in the child after the death signal is set (e.g. to ignore a signal).
    """
    if os.environ.get(NO_PARTS):
        raise PartsForbidden(
            f"{Path(command[0]).name}: a quick-tier test (scripts/test --quick) may not start "
            "real parts; drop its quick marker"
        )
    parent = os.getpid()

    def child_setup() -> None:
        _die_with_parent(parent)
        if preexec is not None:
            preexec()

    variables = os.environ if env is None else env
    tagged = {**variables, PART_TAG: variables.get(RUN_TAG, "")}
    return _in_spawner(lambda: subprocess.Popen(
        list(command), env=tagged, start_new_session=True, preexec_fn=child_setup, **popen
    ))  # fmt: skip


def tagged_processes(tag: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose ``PART_TAG`` is ``tag`` or
    ``tag.SUFFIX``."""
    if not tag:
        raise ValueError("an empty tag would match every part started outside a test run")
    needle = f"{PART_TAG}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
            if not any(v == needle or v.startswith(needle + b".") for v in variables):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if cmdline:  # a zombie has none: it is dead, only not yet reaped
            found.append((int(entry.name), cmdline.strip()))
    return found


def kill_tagged(tag: str) -> None:
    """SIGKILL every process that ``tagged_processes(tag)`` lists."""
    for pid, _ in tagged_processes(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
