"""Headless Chromium driven over the DevTools protocol, and a static web server for a UI build.

Just enough of a browser driver to use a web UI as a person does: open a page,
find an element by what it shows, click it with the mouse, type with the
keyboard (real ``Input.*`` events: the page sees keydown/keypress/input/keyup),
and take a screenshot. Debian's ``chromium`` package, the ``websockets``
package's synchronous client, nothing downloaded.

``Chromium`` starts one browser with a fresh profile (the flags this machine
needs: no sandbox as root, no GPU, no background network); ``Chromium.open``
returns a ``Page``; ``serve_directory`` serves a folder on 127.0.0.1.
"""

from __future__ import annotations

import base64
import functools
import http.server
import itertools
import json
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from . import ProcessError, stop_process_group
from .processes import spawn

#: Flags Chromium needs on these machines: no sandbox
#: (root), no GPU, no connections to Google's services (refused here).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--remote-allow-origins=*",
)


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise ProcessError("no chromium on PATH: install Debian's 'chromium' package")


class CDPError(RuntimeError):
    """The browser answered a DevTools command with an error."""


class Page:
    """One browser tab: DevTools commands, DOM look-ups, mouse, keyboard, screenshots."""

    def __init__(self, ws_url: str, default_timeout: float = 15.0) -> None:
        self.ws: ClientConnection = connect(ws_url, max_size=64 * 1024 * 1024,
                                            open_timeout=10)
        self.default_timeout = default_timeout
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        #: Console messages and uncaught exceptions of the page, for diagnostics.
        self.console: list[str] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.send("Page.enable")
        self.send("Runtime.enable")

    def _read(self) -> None:
        try:
            for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    with self._cond:
                        self._replies[message["id"]] = message
                        self._cond.notify_all()
                    continue
                method = message.get("method", "")
                params = message.get("params", {})
                if method == "Runtime.consoleAPICalled":
                    text = " ".join(str(a.get("value", a.get("description", "")))
                                    for a in params.get("args", []))
                    self._note(f"console.{params.get('type')}: {text}")
                elif method == "Runtime.exceptionThrown":
                    details = params.get("exceptionDetails", {})
                    exc = details.get("exception", {}).get("description") or details.get("text")
                    self._note(f"exception: {exc}")
                self.events.put(message)
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def _note(self, line: str) -> None:
        self.console.append(line[:500])
        del self.console[:-300]

    def send(self, method: str, timeout: float | None = None, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result; CDPError on an error answer."""
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + (timeout or self.default_timeout)
        with self._cond:
            while msg_id not in self._replies:
                left = deadline - time.monotonic()
                if self._closed:
                    raise CDPError(f"{method}: the browser closed the connection")
                if left <= 0:
                    raise TimeoutError(f"{method}: no answer from the browser")
                self._cond.wait(left)
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    # -- navigation and JavaScript -----------------------------------------------------------
    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", 20.0, f"{url} to load")

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        """Evaluate ``expression`` in the page; return its value (JSON-able) or raise."""
        result = self.send("Runtime.evaluate", timeout=timeout, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"JavaScript error: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 15.0, what: str = "",
                 interval: float = 0.2) -> Any:
        """Poll ``expression`` until it is truthy; return its value (``True`` for an element)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        probe = f"(() => {{ const v = ({expression}); return v instanceof Node ? true : v; }})()"
        while True:
            try:
                value = self.evaluate(probe)
                if value:
                    return value
            except CDPError as exc:
                last = exc
            if time.monotonic() >= deadline:
                detail = f" (last error: {last})" if last else ""
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for "
                                   f"{what or expression}{detail}")
            time.sleep(interval)

    # -- mouse and keyboard ------------------------------------------------------------------
    def click_at(self, x: float, y: float) -> None:
        """A left click where a person would put the mouse."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)

    def center_of(self, element_js: str) -> tuple[float, float]:
        """Scroll the element ``element_js`` evaluates to into view; return its centre."""
        box = self.evaluate(
            f"(() => {{ const el = {element_js}; if (!el) return null;"
            " el.scrollIntoView({block: 'center', inline: 'center'});"
            " const r = el.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; })()"
        )
        if not box or box[2] <= 0 or box[3] <= 0:
            raise LookupError(f"no visible element for {element_js}")
        return box[0], box[1]

    def click(self, element_js: str) -> None:
        x, y = self.center_of(element_js)
        self.click_at(x, y)

    def press(self, key: str) -> None:
        """Press and release one named key (``Enter``, ``Backspace``, ``Tab``, ``Escape``)."""
        codes = {"Enter": 13, "Backspace": 8, "Tab": 9, "Escape": 27, "Delete": 46}
        code = codes[key]
        down: dict[str, Any] = {"key": key, "code": key, "windowsVirtualKeyCode": code,
                                "nativeVirtualKeyCode": code}
        if key == "Enter":
            down["text"] = "\r"
        self.send("Input.dispatchKeyEvent", type="keyDown", **down)
        self.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=key,
                  windowsVirtualKeyCode=code, nativeVirtualKeyCode=code)

    def select_all(self) -> None:
        """Ctrl+A in the focused field (so typing replaces what it holds)."""
        self.send("Input.dispatchKeyEvent", type="rawKeyDown", key="a", code="KeyA",
                  windowsVirtualKeyCode=65, modifiers=2, commands=["selectAll"])
        self.send("Input.dispatchKeyEvent", type="keyUp", key="a", code="KeyA",
                  windowsVirtualKeyCode=65, modifiers=2)

    def type_text(self, text: str) -> None:
        """Type ``text`` key by key, as a keyboard does."""
        for char in text:
            code = f"Digit{char}" if char.isdigit() else (
                f"Key{char.upper()}" if char.isalpha() else "")
            vk = ord(char.upper()) if char.isalnum() else 0
            self.send("Input.dispatchKeyEvent", type="keyDown", key=char, code=code, text=char,
                      unmodifiedText=char, windowsVirtualKeyCode=vk)
            self.send("Input.dispatchKeyEvent", type="keyUp", key=char, code=code,
                      windowsVirtualKeyCode=vk)

    # -- output ------------------------------------------------------------------------------
    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", timeout=30.0, format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - the browser may be gone already
            pass


class Chromium:
    """One headless Chromium with a fresh profile; ``stop()`` ends it and removes the profile."""

    def __init__(self, workdir: Path, width: int = 1440, height: int = 960,
                 executable: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.width, self.height = width, height
        self.executable = executable or find_chromium()
        self.proc: subprocess.Popen[bytes] | None = None
        self.profile: Path | None = None
        self.port: int | None = None
        self.log_path = self.workdir / "chromium.log"
        self.pages: list[Page] = []

    def start(self, timeout: float = 30.0) -> Chromium:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=self.workdir))
        with open(self.log_path, "ab") as log:
            self.proc = spawn(
                [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                 f"--window-size={self.width},{self.height}", "--remote-debugging-port=0",
                 "--remote-debugging-address=127.0.0.1", "about:blank"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None:
                raise ProcessError(f"chromium exited with {self.proc.returncode}; "
                                   f"see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessError(f"chromium did not open its DevTools port; see {self.log_path}")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        return self

    def _json(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def open(self, url: str = "about:blank") -> Page:
        """A new tab showing ``url`` (loaded), sized like a laptop screen."""
        target = self._json("/json/new?about:blank", method="PUT")
        page = Page(target["webSocketDebuggerUrl"])
        page.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        self.pages.append(page)
        if url != "about:blank":
            page.goto(url)
        return page

    def stop(self) -> None:
        for page in self.pages:
            page.close()
        self.pages.clear()
        proc, self.proc = self.proc, None
        stop_process_group(proc)
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass

    def end_headers(self) -> None:
        # A UI build is fetched fresh each run; no service worker caches across runs.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@contextmanager
def serve_directory(directory: Path, port: int = 0) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port by default); yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
