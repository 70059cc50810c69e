"""A printer's folders as KIAUH, MainsailOS and Moonraker's installer lay them out, for the demo.

    WORKDIR/printer_data/config/   printer.cfg, macros.cfg, panda_breath_macros.cfg, moonraker.conf
    WORKDIR/printer_data/logs/     klippy.log, moonraker.log
    WORKDIR/printer_data/gcodes/   [virtual_sdcard] path
    WORKDIR/printer_data/database/ Moonraker's database
    WORKDIR/printer_data/comms/    klippy.sock, klippy.serial
    WORKDIR/klipper/               what ~/klipper holds: klippy/ (the klippy venv's package,
                                   linked), config/ (example configs) and docs/

Moonraker runs with ``-d printer_data``; klippy runs ``printer_data/config/printer.cfg``
with ``[virtual_sdcard] path`` set to ``printer_data/gcodes`` and reports ``WORKDIR/klipper``
as its ``klipper_path``. That is what Moonraker checks: none of its path warnings
("config_examples"/"docs" path invalid, Klipper's configuration file outside the
``config`` folder, G-code path mismatch) appears. ``printer.cfg`` includes the usual
PAUSE/RESUME/CANCEL_PRINT macros that Mainsail, Fluidd and KlipperScreen look for, and
the project's M141/M191 macros, as docs/Installation.md tells an owner to set it up.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from . import KLIPPY_PYTHON, KLIPPY_VARIANT, KLIPPY_VENV, ROOT
from .klippy import Klippy

#: The printer.cfg sections every web UI checks for: Mainsail's "Missing configuration"
#: wants [virtual_sdcard], [pause_resume], [display_status] (in the base config) and
#: these three macros; Fluidd wants CANCEL_PRINT. Cut down from mainsail.cfg for a
#: printer with no toolhead to park.
USUAL_MACROS = """\
# The usual PAUSE / RESUME / CANCEL_PRINT macros (Mainsail, Fluidd and KlipperScreen
# look for them). Cut down for a printer without a toolhead to park.

[gcode_macro PAUSE]
description: Pause the running print
rename_existing: PAUSE_BASE
gcode:
  PAUSE_BASE

[gcode_macro RESUME]
description: Resume the paused print
rename_existing: RESUME_BASE
gcode:
  RESUME_BASE

[gcode_macro CANCEL_PRINT]
description: Cancel the running print and turn the heaters off
rename_existing: CANCEL_PRINT_BASE
gcode:
  TURN_OFF_HEATERS
  CANCEL_PRINT_BASE
"""

INCLUDES = "\n[include macros.cfg]\n[include panda_breath_macros.cfg]\n"

# Longest AF_UNIX path used as is (klippy.py falls back to /tmp beyond it).
_MAX_SOCKET_PATH = 100


class PrinterData:
    """``WORKDIR/printer_data`` and ``WORKDIR/klipper``; ``klippy()`` starts nothing, it builds."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.root = self.workdir / "printer_data"
        self.config = self.root / "config"
        self.logs = self.root / "logs"
        self.gcodes = self.root / "gcodes"
        self.database = self.root / "database"
        self.comms = self.root / "comms"
        self.klipper = self.workdir / "klipper"

    def lay_out(self) -> None:
        for folder in (self.config, self.logs, self.gcodes, self.database, self.comms):
            folder.mkdir(parents=True, exist_ok=True)
        (self.config / "macros.cfg").write_text(USUAL_MACROS)
        # A copy, as an owner makes it: the UIs' editors write to the config folder.
        shutil.copyfile(
            ROOT / "examples" / "panda_breath_macros.cfg", self.config / "panda_breath_macros.cfg"
        )
        self._klipper_tree()

    def _klipper_tree(self) -> None:
        """``WORKDIR/klipper`` with the klippy package linked in, plus config/ and docs/.

        klippy reports the parent of its package folder as ``klipper_path``, and
        Moonraker serves that folder's config/ and docs/; for a pip-installed klippy
        that is site-packages, which has neither. klippy started with this folder as
        its working directory (``python -m klippy.klippy``) imports the package
        through the link, so it reports this folder instead.
        """
        if KLIPPY_VARIANT == "mainline":
            return  # runs klippy/klippy.py of its own source tree (see klippy_command)
        package = Path(subprocess.run(
            [str(KLIPPY_PYTHON), "-c",
             "import os, klippy.klippy as k; print(os.path.dirname(os.path.abspath(k.__file__)))"],
            capture_output=True, text=True, check=True, timeout=30, cwd="/",
        ).stdout.strip())  # fmt: skip
        self.klipper.mkdir(parents=True, exist_ok=True)
        for name, target in (
            ("klippy", package), ("config", package / "config"), ("docs", package / "docs"),
        ):
            link = self.klipper / name
            if link.is_symlink():
                link.unlink()
            if target.is_dir():
                link.symlink_to(target, target_is_directory=True)
            else:
                link.mkdir(exist_ok=True)

    def klippy(self, printer_cfg: str, mcu: str = "file") -> Klippy:
        """A Klippy running config/printer.cfg: ``printer_cfg`` plus the includes."""
        self.lay_out()
        cwd = KLIPPY_VENV / "src" if KLIPPY_VARIANT == "mainline" else self.klipper
        klippy = Klippy(cwd, printer_cfg + INCLUDES, mcu=mcu)
        klippy.config_path = self.config / "printer.cfg"
        klippy.log_path = self.logs / "klippy.log"
        run = self.workdir / "klippy"  # file-output mode's data dictionary and stdout
        run.mkdir(parents=True, exist_ok=True)
        klippy.dict_path = run / "mcu.dict"
        klippy.output_path = run / "klippy.stdout"
        klippy.pty_path = self.comms / "klippy.serial"
        socket_path = self.comms / "klippy.sock"
        if len(str(socket_path)) <= _MAX_SOCKET_PATH:
            klippy.socket_path = socket_path
        return klippy
