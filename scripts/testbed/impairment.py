"""Run ``scripts/impair.py`` (a bad Wi-Fi link: latency, jitter, stalls) as a test-bed part.

The proxy listens on ``port`` and relays to ``upstream``; ``control`` sets a
profile or stalls the link now; ``state`` says what it does.  Output goes to
``<workdir>/<name>.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from testbed import ROOT, ProcessError, Service, free_port, python_executable, wait_until

IMPAIR = ROOT / "scripts" / "impair.py"


class Impairment(Service):
    """One proxy process on 127.0.0.1: clients connect to ``port``, it reaches ``upstream``."""

    def __init__(
        self, workdir: str | os.PathLike[str], upstream: int, port: int | None = None,
        profile: str = "clear", seed: int = 1, name: str = "impair",
    ) -> None:
        super().__init__(workdir, port, name)
        self.upstream, self.profile, self.seed = upstream, profile, seed
        self.control_port = free_port()
        self.log_path = self.workdir / f"{name}.log"

    def start(self, timeout: float = 5.0) -> Impairment:
        if self.running:
            raise ProcessError(f"{self.name} already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            python_executable(), str(IMPAIR), "--port", str(self.port),
            "--upstream", f"127.0.0.1:{self.upstream}", "--control-port", str(self.control_port),
            "--profile", self.profile, "--seed", str(self.seed), "--exit-with-parent",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until(self._answers, timeout, 0.03, f"{self.name} to answer")
        except BaseException as exc:
            self.stop()
            raise ProcessError(f"{self.name} did not start ({exc}); log {self.log_path}") from exc
        return self

    def _answers(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise ProcessError(f"{self.name} exited")
        return bool(self.state(timeout=0.5))

    def state(self, timeout: float = 2.0) -> dict[str, Any]:
        return self._get("/impair/state", timeout)

    def control(self, action: str, timeout: float = 2.0, **params: Any) -> dict[str, Any]:
        query = urllib.parse.urlencode({"action": action, **params})
        return self._get(f"/impair/control?{query}", timeout)

    def set_profile(self, name: str, first_stall: float | None = None,
                    first_long: float | None = None) -> dict[str, Any]:
        """Impair the link from now on (the stall schedule starts now)."""
        params: dict[str, Any] = {"name": name}
        if first_stall is not None:
            params["first_stall"] = first_stall
        if first_long is not None:
            params["first_long"] = first_long
        return self.control("profile", **params)

    def stall(self, seconds: float) -> dict[str, Any]:
        """Nothing passes for ``seconds`` from now; both sides stay connected."""
        return self.control("stall", seconds=seconds)

    def _get(self, path: str, timeout: float) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.control_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ProcessError(f"{self.name} {path}: HTTP {exc.code}") from exc
