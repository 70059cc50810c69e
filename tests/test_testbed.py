"""The test bed itself: a real part that fails to start is not left running."""

from __future__ import annotations

from pathlib import Path

import pytest
from testbed import ProcessError
from testbed.configs import base_printer_cfg
from testbed.klippy import Klippy


def _processes_naming(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if any(text.encode() in arg for arg in args):
            found.append(cmdline.parent.name)
    return found


def test_a_klippy_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    bad = "[heater_panda_breath chamber]\nno_such_option: 1\n"
    klippy = Klippy(tmp_path, base_printer_cfg(tmp_path / "gcodes", bad))
    with pytest.raises(ProcessError):
        klippy.start(timeout=10)
    assert _processes_naming(str(klippy.config_path)) == []
