"""scripts/install links both halves into a printer's Klipper and Moonraker, and removes them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from testbed import ROOT

INSTALL = str(ROOT / "scripts" / "install")


def fake_git_installs(tmp_path: Path) -> tuple[Path, Path]:
    extras = tmp_path / "klipper" / "klippy" / "extras"
    components = tmp_path / "moonraker" / "moonraker" / "components"
    extras.mkdir(parents=True)
    components.mkdir(parents=True)
    return extras, components


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INSTALL, *args], capture_output=True, text=True, timeout=30)


def test_links_into_git_installs_and_uninstalls(tmp_path: Path) -> None:
    extras, components = fake_git_installs(tmp_path)
    where = ("--klipper", str(tmp_path / "klipper"), "--moonraker", str(tmp_path / "moonraker"))
    assert run(*where).returncode == 0
    extra = extras / "heater_panda_breath.py"
    component = components / "panda_breath"
    assert extra.resolve() == ROOT / "klipper_extra" / "heater_panda_breath.py"
    assert component.resolve() == ROOT / "moonraker_component" / "panda_breath"
    assert run(*where).returncode == 0  # idempotent
    assert run(*where, "--uninstall").returncode == 0
    assert not extra.exists() and not component.exists()


def test_pip_installs_are_found_through_their_python(tmp_path: Path) -> None:
    # The test environments are pip installs; bootstrap links them this way.
    result = run(
        "--klippy-python", str(ROOT / ".venvs" / "klippy" / "bin" / "python"),
        "--moonraker-python", str(ROOT / ".venvs" / "moonraker" / "bin" / "python"),
    )
    assert result.returncode == 0, result.stderr
    assert "site-packages/moonraker/components/panda_breath" in result.stdout


def test_refuses_to_replace_a_real_file_or_guess_a_missing_directory(tmp_path: Path) -> None:
    extras, _ = fake_git_installs(tmp_path)
    (extras / "heater_panda_breath.py").write_text("# someone's own copy\n")
    where = ("--klipper", str(tmp_path / "klipper"), "--moonraker", str(tmp_path / "moonraker"))
    result = run(*where)
    assert result.returncode == 1 and "is not a link" in result.stderr
    missing = run("--klipper", str(tmp_path / "nowhere"), "--moonraker", str(tmp_path))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_bootstrap_finds_system_libraries_with_an_ordinary_users_path() -> None:
    # Debian and Raspberry Pi OS give a normal user no /usr/sbin on PATH, where
    # ldconfig lives; bootstrap used to report libsodium23 missing then.
    result = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap")],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True, text=True, timeout=600,
    )
    assert "missing system packages" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr[-2000:]
