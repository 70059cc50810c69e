"""Start and talk to the real parts (simulator, Mosquitto, klippy, Moonraker) on loopback.

Tests, ``scripts/demo`` and ``scripts/bench`` share these helpers so that every
one of them runs the same processes the same way.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
MOONRAKER_PYTHON = ROOT / ".venvs" / "moonraker" / "bin" / "python"
KLIPPY_PYTHON = ROOT / ".venvs" / "klippy" / "bin" / "python"
SIMULATOR = ROOT / "scripts" / "panda_breath_sim.py"

T = TypeVar("T")


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
