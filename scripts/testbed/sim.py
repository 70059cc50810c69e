"""Run the Panda Breath simulator as a subprocess (``scripts/panda_breath_sim.py``).

``start()`` returns once ``GET /sim/state`` answers; ``stop()`` sends SIGTERM
(the simulator then publishes MQTT ``offline`` and closes cleanly) and kills it
if it does not exit; ``kill()`` is a power cut (SIGKILL: the broker publishes
the will). Output goes to ``<workdir>/<name>.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from testbed import SIMULATOR, ProcessError, Service, python_executable
from testbed.processes import spawn


class SimProcess(Service):
    """One simulator process on 127.0.0.1."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        port: int | None = None,
        firmware: str = "v1.0.3",
        time_scale: float = 1.0,
        mqtt: str | int | Any | None = None,
        extra_args: Sequence[str] = (),
        name: str = "sim",
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(workdir, port, name)
        self.host, self.firmware, self.time_scale = host, firmware, time_scale
        self.mqtt = _broker_address(mqtt)
        self.extra_args = list(extra_args)
        self.log_path = self.workdir / f"{name}.log"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        cmd = [
            python_executable(), str(SIMULATOR),
            "--host", self.host,
            "--port", str(self.port),
            "--firmware", self.firmware,
            "--time-scale", str(self.time_scale),
            "--exit-with-parent",
        ]
        if self.mqtt:
            cmd += ["--mqtt", self.mqtt]
        return cmd + self.extra_args

    def start(self, timeout: float = 10.0) -> SimProcess:
        if self.running:
            raise ProcessError(f"{self.name} already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = spawn(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(self.workdir),
            )
        try:
            self._wait_ready(timeout)
        except BaseException as exc:
            self.kill()
            raise ProcessError(
                f"{self.name} did not start ({exc}); log {self.log_path}:\n{self.log_tail()}"
            ) from exc
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ProcessError(f"exited with code {self.proc.returncode}")
            try:
                self.state(timeout=0.5)
                return
            except (OSError, ProcessError, ValueError) as exc:
                last = exc
            time.sleep(0.03)
        raise TimeoutError(f"no answer on {self.base_url}/sim/state within {timeout}s ({last!r})")

    def kill(self) -> None:
        """SIGKILL (a power cut): sockets close without goodbye."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        self.proc = None

    # -- HTTP endpoints -----------------------------------------------------------------------
    def state(self, timeout: float = 2.0) -> dict[str, Any]:
        """``GET /sim/state``."""
        return self._get("/sim/state", timeout)

    def control(self, action: str, timeout: float = 2.0, **params: Any) -> dict[str, Any]:
        """``GET /sim/control?action=...&k=v``; raises ProcessError on a 4xx/5xx answer."""
        query = urllib.parse.urlencode({"action": action, **{k: _q(v) for k, v in params.items()}})
        return self._get(f"/sim/control?{query}", timeout)

    def _get(self, path: str, timeout: float) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            raise ProcessError(f"{self.name} {path}: HTTP {exc.code}: {body}") from exc

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _q(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _broker_address(mqtt: str | int | Any | None) -> str | None:
    """Accept "HOST:PORT", a port number, or anything with ``.host``/``.port`` (Mosquitto)."""
    if mqtt is None:
        return None
    if isinstance(mqtt, int):
        return f"127.0.0.1:{mqtt}"
    if isinstance(mqtt, str):
        return mqtt
    return f"{getattr(mqtt, 'host', '127.0.0.1')}:{mqtt.port}"
