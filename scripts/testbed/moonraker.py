"""A real Moonraker (PyPI ``moonraker==0.11.0``) with the panda_breath component linked in.

``scripts/bootstrap`` builds ``.venvs/moonraker`` and symlinks
``moonraker_component/panda_breath`` into its ``moonraker/components``, which
is how a printer installs it too.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from . import MOONRAKER_PYTHON, ProcessError, free_port, terminate, wait_until
from .processes import spawn

BASE_CONFIG = """\
[server]
host: 127.0.0.1
port: {port}
klippy_uds_address: {klippy_socket}

[machine]
provider: none
validate_service: False

[authorization]
trusted_clients:
    127.0.0.0/8
{cors}
[announcements]
enable_moonlight: False
"""


class MoonrakerError(RuntimeError):
    """An HTTP error answer from Moonraker; ``status`` and ``message`` say which."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class Moonraker:
    def __init__(
        self,
        workdir: Path,
        klippy_socket: Path | str,
        extra_config: str = "",
        port: int | None = None,
        cors_domains: tuple[str, ...] = (),
        debug: bool = False,
        python: Path | None = None,
        data_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        #: The interpreter of the Moonraker venv (default: .venvs/moonraker).
        self.python = Path(python) if python is not None else MOONRAKER_PYTHON
        #: Moonraker's ``-g``: registers debug endpoints such as the
        #: component's /debug/panda_breath/fail_link fault injector.
        self.debug = debug
        self.workdir = Path(workdir)
        #: Moonraker's ``-d`` (default WORKDIR/moonraker_data); a printer_data folder
        #: (testbed.printer_data) makes it run as on a printer.
        self.data_path = (
            Path(data_path) if data_path is not None else self.workdir / "moonraker_data"
        )
        #: Extra environment for the process (e.g. PYTHONPATH to run a git checkout, HOME).
        self.env = dict(env or {})
        self.klippy_socket = str(klippy_socket)
        self.extra_config = extra_config
        self.port = port or free_port()
        self.cors_domains = cors_domains
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path = self.data_path / "config" / "moonraker.conf"
        self.log_path = self.data_path / "logs" / "moonraker.log"
        self.stdout_path = self.workdir / "moonraker.stdout"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        for sub in ("config", "logs", "gcodes"):
            (self.data_path / sub).mkdir(parents=True, exist_ok=True)
        cors = "".join(f"\n    {domain}" for domain in self.cors_domains)
        text = BASE_CONFIG.format(
            port=self.port,
            klippy_socket=self.klippy_socket,
            cors=f"cors_domains:{cors}\n" if cors else "",
        )
        self.config_path.write_text(text + "\n" + self.extra_config)

    def start(self, timeout: float = 20.0) -> None:
        if not self.python.exists():
            raise ProcessError(f"{self.python} missing: run scripts/bootstrap")
        self.write_config()
        self.workdir.mkdir(parents=True, exist_ok=True)
        out = open(self.stdout_path, "ab")
        self.proc = spawn(
            [
                str(self.python), "-m", "moonraker",
                "-d", str(self.data_path),
                "-c", str(self.config_path),
                "-l", str(self.log_path),
                *(["-g"] if self.debug else []),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        out.close()
        try:
            wait_until(self._answers, timeout, 0.1, "Moonraker /server/info")
        except TimeoutError as exc:
            self.stop()
            raise ProcessError(f"Moonraker did not start: {exc}; see {self.stdout_path}") from exc

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessError(f"Moonraker exited with {self.proc.returncode}")
        self.get("/server/info")
        return True

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (Moonraker runs its on_exit hooks), then kill if it hangs."""
        proc, self.proc = self.proc, None
        return terminate(proc, timeout)

    def __enter__(self) -> Moonraker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # HTTP ------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                message = json.loads(text)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = text
            raise MoonrakerError(exc.code, message) from None
        if isinstance(payload, dict) and "result" in payload:
            return payload["result"]
        return payload

    def get(self, path: str, timeout: float = 10.0) -> Any:
        return self.request("GET", path, timeout=timeout)

    def post(self, path: str, body: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        return self.request("POST", path, body or {}, timeout=timeout)

    def gcode(self, script: str, timeout: float = 30.0) -> Any:
        return self.post("/printer/gcode/script", {"script": script}, timeout=timeout)

    def klippy_state(self) -> str:
        return str(self.get("/server/info").get("klippy_state"))

    def panda_status(self, name: str | None = None) -> dict[str, Any]:
        devices = self.get("/server/panda_breath/status")["devices"]
        if name is None:
            return devices
        return devices[name]

    def power(self, device: str, action: str) -> Any:
        """Switch a Moonraker power device (``on``, ``off``, ``toggle``), as a UI does."""
        query = urllib.parse.urlencode({"device": device, "action": action})
        return self.post(f"/machine/device_power/device?{query}")

    def power_status(self, device: str) -> str:
        """A power device's status as Moonraker lists it; "missing" if it is not listed."""
        devices = self.get("/machine/device_power/devices")["devices"]
        return next((d["status"] for d in devices if d["device"] == device), "missing")

    def query(self, objects: dict[str, list[str] | None]) -> dict[str, Any]:
        return self.post("/printer/objects/query", {"objects": objects})["status"]

    def wait_component_ready(self, timeout: float = 15.0) -> None:
        """Klippy ready, our heater found *and* fed a reading (not just /server/info's 'ready').

        Klipper refuses a target above 0 until the heater has a fresh reading.
        """

        def ready() -> bool:
            devices = self.panda_status()
            return bool(devices) and all(
                d.get("klipper_heater_found") and d.get("last_push_age") is not None
                for d in devices.values()
            )

        wait_until(ready, timeout, 0.1, "panda_breath to see the Klipper heater")

    def log_text(self) -> str:
        parts = []
        for path in (self.log_path, self.stdout_path):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


def wait_http_gone(moonraker: Moonraker, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            moonraker.get("/server/info", timeout=0.5)
        except (OSError, MoonrakerError):
            return
        time.sleep(0.05)
