"""Run a private Mosquitto broker on a free loopback port.

Anonymous access, no persistence, listener on 127.0.0.1 only; the config and
the log live in ``workdir``. ``start()`` returns when the port accepts TCP.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from testbed import ProcessError, Service
from testbed.processes import spawn

MOSQUITTO = "/usr/sbin/mosquitto"


class Mosquitto(Service):
    """One broker process; ``restart()`` keeps the port (for broker-loss tests)."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        port: int | None = None,
        binary: str = MOSQUITTO,
        name: str = "mosquitto",
    ) -> None:
        super().__init__(workdir, port, name)
        self.host, self.binary = "127.0.0.1", binary
        self.conf_path = self.workdir / f"{name}.conf"
        self.log_path = self.workdir / f"{name}.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto would switch to user "mosquitto" and lose
            # access to a log file in a root-owned workdir.
            lines.append("user root")
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 5.0) -> Mosquitto:
        if self.running:
            raise ProcessError(f"{self.name} already running")
        if not Path(self.binary).exists():
            raise ProcessError(f"{self.binary} not found: install the mosquitto package")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        stderr_path = self.workdir / f"{self.name}.stderr"
        with open(stderr_path, "ab") as err:
            self.proc = spawn(
                [self.binary, "-c", str(self.conf_path)],
                stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        try:
            self._wait_accepting(timeout)
        except BaseException as exc:
            self.stop()
            detail = stderr_path.read_text(errors="replace")[-2000:]
            raise ProcessError(f"{self.name} did not start ({exc}): {detail}") from exc
        return self

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ProcessError(f"exited with code {self.proc.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"port {self.port} not accepting after {timeout}s") from exc
            time.sleep(0.02)

