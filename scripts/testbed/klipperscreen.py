"""KlipperScreen (the touch-screen UI) on a virtual X screen, against a Moonraker on loopback.

KlipperScreen is a GTK 3 program: it needs PyGObject from Debian
(``python3-gi gir1.2-gtk-3.0``) plus the pip packages of its
``scripts/KlipperScreen-requirements.txt``, so it runs in a venv made from
Debian's ``/usr/bin/python3`` with ``--system-site-packages``
(``.venvs/klipperscreen``, rebuilt when the requirements change). It runs from
a writable copy of its source tree under ``Xvfb`` (its own display number,
picked by Xvfb), and ``import -window root`` (ImageMagick) takes screenshots.
Debian packages: ``xvfb x11-xserver-utils python3-gi gir1.2-gtk-3.0
libgirepository1.0-dev libcairo2-dev pkg-config python3-dev gcc
librsvg2-common imagemagick``.
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

from . import ROOT, ProcessError, stop_process_group, text_of
from .processes import spawn

VENV = ROOT / ".venvs" / "klipperscreen"
SYSTEM_PYTHON = Path("/usr/bin/python3")
REQUIREMENTS = Path("scripts") / "KlipperScreen-requirements.txt"
_GTK_IMPORT = (
    "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk; "
    "import cairo, websocket, jinja2, requests"
)


def ensure_venv(source: Path, venv: Path = VENV, python: Path = SYSTEM_PYTHON) -> Path:
    """The KlipperScreen venv's interpreter, (re)built when ``source``'s requirements change."""
    requirements = source / REQUIREMENTS
    if not requirements.exists():
        raise ProcessError(f"{requirements} missing: is {source} a KlipperScreen source tree?")
    if not python.exists():
        raise ProcessError(f"{python} missing: KlipperScreen needs Debian's python3 (python3-gi)")
    stamp = hashlib.sha256(requirements.read_bytes() + str(python).encode()).hexdigest()
    stamp_file = venv / ".ui_check-requirements"
    venv_python = venv / "bin" / "python"
    if venv_python.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return venv_python
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [str(python), "-m", "venv", "--system-site-packages", str(venv)],
        [str(venv_python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", str(requirements)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise ProcessError(
                f"building the KlipperScreen venv failed ({' '.join(step[:4])} ...): "
                f"{(done.stderr or done.stdout)[-1500:]}\n(Debian packages it needs: python3-gi "
                "gir1.2-gtk-3.0 libgirepository1.0-dev libcairo2-dev pkg-config python3-dev gcc)"
            )
    check = subprocess.run([str(venv_python), "-c", _GTK_IMPORT], capture_output=True, text=True,
                           timeout=60)
    if check.returncode != 0:
        raise ProcessError(f"the KlipperScreen venv cannot import GTK: {check.stderr[-800:]}")
    stamp_file.write_text(stamp)
    return venv_python


class Xvfb:
    """A virtual X screen; ``display`` is ``:N``, the number Xvfb found free."""

    def __init__(self, workdir: Path, width: int = 1024, height: int = 600) -> None:
        self.workdir = Path(workdir)
        self.size = f"{width}x{height}x24"
        self.proc: subprocess.Popen[bytes] | None = None
        self.display = ""
        self._displayfd: int | None = None

    def start(self, timeout: float = 15.0) -> Xvfb:
        exe = shutil.which("Xvfb")
        if exe is None:
            raise ProcessError("no Xvfb on PATH: install Debian's 'xvfb' package")
        self.workdir.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        with open(self.workdir / "xvfb.log", "ab") as log:
            self.proc = spawn(
                [exe, "-displayfd", str(write_fd), "-screen", "0", self.size, "-nolisten", "tcp"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                pass_fds=(write_fd,),
            )
        os.close(write_fd)
        # Xvfb writes "N\n" once it listens; the pipe stays open while it runs (a write
        # to a closed pipe is fatal to it).
        self._displayfd = read_fd
        text = b""
        deadline = time.monotonic() + timeout
        while not text.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read_fd, 64) if ready else b""
            if not chunk:
                break
            text += chunk
        number = text.decode().strip()
        if not number.isdigit():
            self.stop()
            raise ProcessError(f"Xvfb did not start; see {self.workdir / 'xvfb.log'}")
        self.display = f":{number}"
        # Answering on its socket, before a client tries (GTK gives up at once).
        sock_path = f"/tmp/.X11-unix/X{number}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.settimeout(1.0)
                    probe.connect(sock_path)
                break
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise ProcessError(f"Xvfb {self.display} does not answer on {sock_path} "
                                       f"({exc}); see {self.workdir / 'xvfb.log'}") from exc
                time.sleep(0.1)
        return self

    def screenshot(self, path: Path) -> Path:
        exe = shutil.which("import")
        if exe is None:
            raise ProcessError("no 'import' on PATH: install Debian's 'imagemagick' package")
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([exe, "-display", self.display, "-window", "root", str(path)],
                       check=True, capture_output=True, timeout=30)
        return path

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._displayfd is not None:
            os.close(self._displayfd)
            self._displayfd = None


class KlipperScreen:
    """KlipperScreen from a copy of ``source``, on its own Xvfb, for one Moonraker."""

    def __init__(self, source: Path, workdir: Path, moonraker_port: int,
                 printer_name: str = "Panda Breath", python: Path | None = None,
                 width: int = 1024, height: int = 600) -> None:
        self.source = Path(source)
        self.workdir = Path(workdir)
        self.moonraker_port, self.printer_name, self.python = moonraker_port, printer_name, python
        self.xvfb = Xvfb(self.workdir, width, height)
        self.tree = self.workdir / "KlipperScreen"
        self.config_path = self.workdir / "KlipperScreen.conf"
        self.log_path = self.workdir / "KlipperScreen.log"
        self.output_path = self.workdir / "KlipperScreen.stdout"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> KlipperScreen:
        python = self.python or ensure_venv(self.source)
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tree, ignore_errors=True)
        shutil.copytree(self.source, self.tree, ignore=shutil.ignore_patterns(".git"))
        for path in (self.tree, *self.tree.rglob("*")):
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
        # use_dpms: Xvfb has no display power management to switch.
        self.config_path.write_text(
            f"[main]\nuse_dpms: False\n\n[printer {self.printer_name}]\n"
            f"moonraker_host: 127.0.0.1\nmoonraker_port: {self.moonraker_port}\n"
        )
        self.xvfb.start()
        with open(self.output_path, "ab") as out:
            self.proc = spawn(
                [str(python), str(self.tree / "screen.py"), "-c", str(self.config_path),
                 "-l", str(self.log_path)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(self.tree),
                env={**os.environ, "DISPLAY": self.xvfb.display, "LANG": "C.UTF-8",
                     "NO_AT_BRIDGE": "1"},
            )
        return self

    def log_text(self) -> str:
        return text_of(self.log_path)

    def wait_log(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait for a line of KlipperScreen's log matching ``pattern``; return the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            found = regex.search(self.log_text())
            if found:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                raise ProcessError(f"KlipperScreen exited with {self.proc.returncode}; "
                                   f"see {self.log_path} and {self.output_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no '{pattern}' in KlipperScreen's log within {timeout:.0f}s")
            time.sleep(0.2)

    def screenshot(self, path: Path) -> Path:
        return self.xvfb.screenshot(path)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process_group(proc)
        self.xvfb.stop()
