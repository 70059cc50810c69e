"""A real klippy process with no hardware, and a client for its API socket.

Two ways to run klippy without a micro-controller board:

* ``mcu="file"`` (default): file-output mode (``-o /dev/null -d DICT``). klippy
  loads the config, "configures" an MCU described by a generated data
  dictionary (scripts/make_klipper_dict.py) and serves the API socket (``-a``).
  G-code, endpoints, remote methods, status, shutdown and restarts behave as on
  a printer, but nothing ever pauses: TEMPERATURE_WAIT, G4 and M400 return at
  once, and verify_heater, idle_timeout and the statistics timer are off.
* ``mcu="sim"``: klippy in its normal mode, connected over a pty to
  testbed.klipper_mcu.SimulatedMCU (a stand-in MCU with a real clock). Waits,
  verify_heater and idle_timeout are real. Start-up takes about a second.

The ``[mcu]`` section of ``printer_cfg`` may be left out; it is added (or its
``serial`` rewritten) to fit the mode.

``KlippyAPIClient`` speaks the socket protocol (JSON messages ended by 0x03)
the way Moonraker does, so a test can play Moonraker's part: register remote
methods, collect the ``{"method": ...}`` calls klippy sends, push to endpoints.
Every wait has a deadline.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from make_klipper_dict import write_dictionary

from testbed import ProcessError, klippy_command, terminate, text_of
from testbed.klipper_mcu import SimulatedMCU
from testbed.processes import spawn

# Longest AF_UNIX path used as is (the limit is about 107 bytes).
_MAX_SOCKET_PATH = 100
_ETX = b"\x03"
# klippy opens serial paths with this prefix as a plain pipe (Klipper's Linux
# host MCU convention) instead of as a UART with baud-rate and RTS ioctls.
_HOST_MCU_PREFIX = "/tmp/klipper_host_"
_link_ids = itertools.count(1)

Params = dict[str, Any]
Predicate = Callable[[Params], bool]


class KlippyError(RuntimeError):
    """klippy answered a request with an error; ``message`` is its text."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.message = message


class PendingRequest:
    """A request sent to klippy whose answer may not have arrived yet."""

    def __init__(self, method: str) -> None:
        self.method = method
        self._event = threading.Event()
        self._reply: dict[str, Any] | None = None
        self.answered_at: float | None = None

    def _resolve(self, reply: dict[str, Any]) -> None:
        self._reply = reply
        self.answered_at = time.monotonic()
        self._event.set()

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float = 5.0) -> Any:
        """Return the result, raise KlippyError on an error reply, TimeoutError on none."""
        if not self._event.wait(timeout):
            raise TimeoutError(f"klippy did not answer {self.method!r} within {timeout:.1f}s")
        reply = self._reply or {}
        if "error" in reply:
            error = reply["error"]
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise KlippyError(self.method, message)
        if "closed" in reply:
            raise ConnectionError(f"klippy closed the connection before answering {self.method!r}")
        return reply.get("result")


class KlippyAPIClient:
    """Synchronous client of klippy's API socket; a reader thread routes what arrives."""

    def __init__(self, socket_path: str | Path, connect_timeout: float = 5.0) -> None:
        self.socket_path = str(socket_path)
        self._sock = _connect_unix(self.socket_path, connect_timeout)
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._pending: dict[int, PendingRequest] = {}
        self._notifications: list[tuple[str, Params]] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="klippy-api", daemon=True)
        self._reader.start()

    # -- connection ---------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait until klippy closes this connection (e.g. after RESTART)."""
        if not self._closed.wait(timeout):
            raise TimeoutError(f"klippy kept the connection open for {timeout:.1f}s")

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._closed.wait(2.0)

    def __enter__(self) -> KlippyAPIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_loop(self) -> None:
        buffer = b""
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                buffer += data
                *messages, buffer = buffer.split(_ETX)
                for raw in messages:
                    self._dispatch(json.loads(raw))
        except OSError:
            pass
        finally:
            with self._lock:
                self._closed.set()
                pending = list(self._pending.values())
                self._pending.clear()
                self._lock.notify_all()
            for request in pending:
                request._resolve({"closed": True})

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" in message:
            with self._lock:
                self._notifications.append((message["method"], message.get("params") or {}))
                self._lock.notify_all()
            return
        request_id = message.get("id")
        if not isinstance(request_id, int):
            return
        with self._lock:
            request = self._pending.pop(request_id, None)
        if request is not None:
            request._resolve(message)

    # -- requests -------------------------------------------------------------
    def send_request(self, method: str, params: Mapping[str, Any] | None = None) -> PendingRequest:
        """Send a request and return at once; ``.wait()`` on the result later."""
        request = PendingRequest(method)
        request_id = next(self._ids)
        message = {"id": request_id, "method": method, "params": dict(params or {})}
        with self._lock:
            if self.closed:
                raise ConnectionError(f"connection to klippy is closed ({method!r} not sent)")
            self._pending[request_id] = request
        self._sock.sendall(json.dumps(message).encode() + _ETX)
        return request

    def request(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float = 5.0
    ) -> Any:
        """Send a request and return its result; KlippyError on an error reply."""
        return self.send_request(method, params).wait(timeout)

    def info(self) -> dict[str, Any]:
        return dict(self.request("info", {}))

    def gcode(self, script: str, timeout: float = 10.0) -> None:
        """Run a G-code script; returns when klippy has finished it."""
        self.request("gcode/script", {"script": script}, timeout)

    def query_objects(
        self, objects: Mapping[str, Iterable[str] | None], timeout: float = 5.0
    ) -> dict[str, Any]:
        """``objects/query``; returns the ``status`` dict."""
        spec = {name: None if fields is None else list(fields) for name, fields in objects.items()}
        return dict(self.request("objects/query", {"objects": spec}, timeout)["status"])

    def query(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        """All status fields of one printer object."""
        return dict(self.query_objects({name: None}, timeout)[name])

    def subscribe_objects(
        self,
        objects: Mapping[str, Iterable[str] | None],
        method: str = "process_status_update",
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """``objects/subscribe``; later changes arrive as ``method`` notifications."""
        spec = {name: None if fields is None else list(fields) for name, fields in objects.items()}
        params = {"objects": spec, "response_template": {"method": method}}
        return dict(self.request("objects/subscribe", params, timeout)["status"])

    def register_remote_method(self, name: str, timeout: float = 5.0) -> None:
        """Ask klippy to send ``{"method": name, "params": ...}`` here, as Moonraker does."""
        params = {"response_template": {"method": name}, "remote_method": name}
        self.request("register_remote_method", params, timeout)

    # -- notifications ----------------------------------------------------------
    def notifications(self, method: str | None = None) -> list[Params]:
        """Params of every notification received and not yet taken (oldest first)."""
        with self._lock:
            return [p for m, p in self._notifications if method is None or m == method]

    def clear_notifications(self, method: str | None = None) -> None:
        with self._lock:
            self._notifications = [
                (m, p) for m, p in self._notifications if method is not None and m != method
            ]

    def wait_for_notification(
        self, method: str, predicate: Predicate | None = None, timeout: float = 5.0
    ) -> Params:
        """Remove and return the oldest ``method`` notification matching ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for index, (name, params) in enumerate(self._notifications):
                    if name == method and (predicate is None or predicate(params)):
                        del self._notifications[index]
                        return params
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [n for n, _ in self._notifications]
                    raise TimeoutError(
                        f"no {method!r} notification within {timeout:.1f}s (pending: {seen})"
                    )
                if self.closed:
                    raise ConnectionError(f"klippy closed the connection; no {method!r} arrived")
                self._lock.wait(remaining)


def with_mcu_serial(printer_cfg: str, serial: str) -> str:
    """``printer_cfg`` with its ``[mcu]`` serial set to ``serial`` (section added if missing)."""
    lines = printer_cfg.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().lower() == "[mcu]"), None)
    if start is None:
        return f"[mcu]\nserial: {serial}\n\n{printer_cfg}"
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines)
    )
    body = [line for line in lines[start + 1 : end] if not re.match(r"\s*serial\s*[:=]", line)]
    lines[start + 1 : end] = [f"serial: {serial}", *body]
    return "\n".join(lines) + "\n"


def _connect_unix(path: str, timeout: float) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError as exc:
            sock.close()
            if time.monotonic() >= deadline:
                raise ConnectionError(f"cannot connect to klippy at {path}: {exc}") from exc
            time.sleep(0.02)


class Klippy:
    """One klippy process in ``workdir`` running ``printer_cfg`` (the config text)."""

    def __init__(
        self,
        workdir: str | Path,
        printer_cfg: str,
        dict_path: str | Path | None = None,
        name: str = "klippy",
        mcu: str = "file",
    ) -> None:
        if mcu not in ("file", "sim"):
            raise ValueError(f"mcu must be 'file' or 'sim', not {mcu!r}")
        self.mcu_mode = mcu
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.printer_cfg = printer_cfg
        self.name = name
        self.config_path = self.workdir / f"{name}.cfg"
        self.log_path = self.workdir / f"{name}.log"
        self.output_path = self.workdir / f"{name}.stdout"
        self.pty_path = self.workdir / f"{name}.pty"
        self.dict_path = Path(dict_path) if dict_path else self.workdir / "mcu.dict"
        self._generate_dict = dict_path is None
        socket_path = self.workdir / f"{name}.sock"
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            # Stable across restarts, so Moonraker can keep the same path.
            digest = hashlib.sha1(str(self.workdir.resolve()).encode()).hexdigest()[:12]
            socket_path = Path("/tmp") / f"pbk-{digest}-{name}.sock"
        self.socket_path = socket_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._clients: list[KlippyAPIClient] = []
        self.mcu: SimulatedMCU | None = None

    # -- process ---------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> dict[str, Any]:
        """Start klippy and return its ``info`` once it reports ``ready``."""
        if self.is_running():
            raise ProcessError(f"{self.name} is already running")
        if self._generate_dict:
            write_dictionary(self.dict_path)
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
        cmd = [
            *klippy_command(), str(self.config_path),
            "-a", str(self.socket_path), "-l", str(self.log_path), "-I", str(self.pty_path),
        ]  # fmt: skip
        if self.mcu_mode == "sim":
            if self.mcu is None:
                dictionary = json.loads(self.dict_path.read_text())
                link = f"{_HOST_MCU_PREFIX}pb{os.getpid()}_{next(_link_ids)}"
                self.mcu = SimulatedMCU(dictionary, link)
                self.mcu.start()
            serial = str(self.mcu.link_path)
        else:
            serial = os.devnull
            cmd += ["-o", os.devnull, "-d", str(self.dict_path)]
        self.config_path.write_text(with_mcu_serial(self.printer_cfg, serial))
        with open(self.output_path, "ab") as output:
            self._proc = spawn(
                cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            return self.wait_ready(timeout)
        except BaseException:
            self.stop()  # a klippy that never got ready is not left running
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop klippy (SIGTERM, then SIGKILL), its clients and, in sim mode, the MCU."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        proc, self._proc = self._proc, None
        terminate(proc, timeout)
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
        if self.mcu is not None:
            self.mcu.stop()
            self.mcu = None

    def restart_process(self, timeout: float = 15.0) -> dict[str, Any]:
        """Stop and start the process again (a fresh Python, unlike G-code RESTART).

        In sim mode the stand-in MCU is replaced too, like a power-cycled board.
        """
        self.stop()
        return self.start(timeout)

    def restart(self, command: str = "RESTART", timeout: float = 15.0) -> dict[str, Any]:
        """Run G-code RESTART or FIRMWARE_RESTART (same process) and wait for ``ready``."""
        if command.upper() not in ("RESTART", "FIRMWARE_RESTART"):
            raise ValueError(f"not a restart command: {command!r}")
        with self.client() as client:
            try:
                client.gcode(command, timeout=timeout)
            except ConnectionError:
                pass  # klippy may close the socket before answering
            client.wait_closed(timeout)
        return self.wait_ready(timeout)

    def close(self) -> None:
        """Same as ``stop()``; for ``with`` blocks and symmetry with the other helpers."""
        self.stop()

    def __enter__(self) -> Klippy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------------
    def info(self, timeout: float = 2.0) -> dict[str, Any]:
        """``info`` over a short-lived connection."""
        with KlippyAPIClient(self.socket_path, connect_timeout=timeout) as client:
            return client.info()

    def wait_state(self, states: Iterable[str], timeout: float = 10.0) -> dict[str, Any]:
        """Poll ``info`` until klippy's state is one of ``states``; return that info."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        last_exc: BaseException | None = None
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise ProcessError(
                    f"{self.name} exited with code {self._proc.returncode}; {self._log_hint()}"
                )
            try:
                last = self.info(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
                if last.get("state") in wanted:
                    return last
                if "ready" in wanted and last.get("state") == "error":
                    raise ProcessError(
                        f"{self.name} failed to start: {last.get('state_message')}; "
                        f"{self._log_hint()}"
                    )
            except (OSError, TimeoutError, KlippyError) as exc:
                last_exc = exc
            if time.monotonic() >= deadline:
                state = last.get("state") if last else None
                raise ProcessError(
                    f"{self.name} not in {sorted(wanted)} after {timeout:.1f}s "
                    f"(state {state!r}, last error {last_exc!r}); {self._log_hint()}"
                )
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_state(["ready"], timeout)

    def client(self, connect_timeout: float = 5.0) -> KlippyAPIClient:
        """A new connected client; closed by ``stop()`` if the caller does not."""
        client = KlippyAPIClient(self.socket_path, connect_timeout)
        self._clients = [c for c in self._clients if not c.closed]
        self._clients.append(client)
        return client

    def log_text(self) -> str:
        return text_of(self.log_path)

    def _log_hint(self) -> str:
        tail = "\n".join(self.log_text().splitlines()[-15:])
        return f"log {self.log_path}:\n{tail}"
