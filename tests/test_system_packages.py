"""scripts/system-packages installs what is missing the way Klipper's and Moonraker's
install scripts do (say what, apt-get update, apt-get install, through sudo when not
root), only names it with PANDA_NO_APT=1, and says what to do on a system without apt.

This machine's packages cannot be removed safely, so the system is a stand-in:
a PATH of fake ``apt-get``, ``sudo``, ``id`` and ``python3`` that log what they are
asked, with no ``gcc`` and a Python without ``ensurepip`` until apt-get "installs"
them. The script runs by the real bash.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from testbed import ROOT

SCRIPT = ROOT / "scripts" / "system-packages"
BASH = "/bin/bash"
PACKAGES = ("python3", "python3-venv", "gcc")


class FakeSystem:
    def __init__(self, root: Path, uid: int = 1000, apt: bool = True) -> None:
        self.bin, self.log, self.installed = root / "bin", root / "log", root / "installed"
        self.bin.mkdir(parents=True)
        self.log.touch()
        self.installed.mkdir()
        self.tool("id", f'[ "$1" = -u ] && echo {uid}')
        self.tool("sudo", f'echo "sudo $*" >> {self.log}; exec "$@"')
        # python3-venv is there once "installed"; gcc likewise appears in PATH.
        self.tool("python3", f'[ -e {self.installed}/python3-venv ]')
        if apt:
            self.tool("apt-get", f'''echo "apt-get $*" >> {self.log}
if [ "$1" = install ]; then
    for p in "$@"; do : > "{self.installed}/$p"; done
    [ ! -e "{self.installed}/gcc" ] || printf '#!{BASH}\\n' > {self.bin}/gcc
    chmod +x {self.bin}/* 2>/dev/null || :
fi''')

    def tool(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f"#!{BASH}\n{body}\n")
        path.chmod(0o755)

    def run(self, *packages: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BASH, str(SCRIPT), *packages], capture_output=True, text=True, timeout=30,
            env={"PATH": str(self.bin), "HOME": os.environ.get("HOME", "/"), **env},
        )  # fmt: skip

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()


def test_missing_packages_are_named_then_installed_through_sudo(tmp_path: Path) -> None:
    system = FakeSystem(tmp_path)
    done = system.run(*PACKAGES)
    assert done.returncode == 0, done.stderr
    assert "installing python3-venv gcc with apt-get through sudo" in done.stderr
    assert system.calls() == [
        "sudo apt-get update --allow-releaseinfo-change",
        "apt-get update --allow-releaseinfo-change",
        "sudo apt-get install --yes python3-venv gcc",
        "apt-get install --yes python3-venv gcc",
    ]
    # Run again: everything is there, nothing is asked of apt-get.
    assert system.run(*PACKAGES).returncode == 0
    assert len(system.calls()) == 4


def test_as_root_apt_get_runs_without_sudo(tmp_path: Path) -> None:
    system = FakeSystem(tmp_path, uid=0)
    done = system.run(*PACKAGES)
    assert done.returncode == 0, done.stderr
    assert system.calls() == ["apt-get update --allow-releaseinfo-change",
                              "apt-get install --yes python3-venv gcc"]


@pytest.mark.parametrize("how", ["variable", "option"])
def test_no_apt_only_names_the_packages(tmp_path: Path, how: str) -> None:
    system = FakeSystem(tmp_path)
    if how == "variable":
        done = system.run(*PACKAGES, PANDA_NO_APT="1")
    else:
        done = system.run("--no-apt", *PACKAGES)
    assert done.returncode == 1
    assert "missing (Debian names): python3-venv gcc" in done.stderr
    assert "apt-get install python3-venv gcc" in done.stderr
    assert system.calls() == []


def test_a_system_without_apt_gets_a_clear_message(tmp_path: Path) -> None:
    system = FakeSystem(tmp_path, apt=False)
    done = system.run(*PACKAGES)
    assert done.returncode == 1
    assert "missing (Debian names): python3-venv gcc" in done.stderr
    assert "no apt-get (not Debian, Ubuntu or Raspberry Pi OS)" in done.stderr
    assert "package manager" in done.stderr
    assert system.calls() == []
