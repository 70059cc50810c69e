"""scripts/install, as a printer owner runs it: real git checkouts, a real Moonraker.

A printer's home is made in a temporary folder: ``klipper`` (Klipper mainline from
../shared/upstream, committed into a fresh repository) and ``moonraker`` (Moonraker's
package tree laid out as its git repository), each a clone of a local bare "origin";
``printer_data`` folders with a moonraker.conf. Nothing goes to the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testbed import MOONRAKER_PYTHON, ROOT, wait_until
from testbed.moonraker import BASE_CONFIG, Moonraker

INSTALL = ROOT / "scripts" / "install"
KLIPPER_TARBALL = ROOT.parent / "shared" / "upstream" / "klipper-84104bbb-klippy.tar.gz"
#: Moonraker 0.11.0 as pip installed it in .venvs/moonraker (the component link left out).
MOONRAKER_PACKAGE = next(
    MOONRAKER_PYTHON.parent.parent.glob("lib/python3*/site-packages/moonraker")
)
EXTRA = ROOT / "klipper_extra" / "heater_panda_breath.py"
#: Every module of the extra: heater_panda_breath.py imports its siblings.
EXTRA_FILES = sorted((ROOT / "klipper_extra").glob("*.py"))
COMPONENT = ROOT / "moonraker_component" / "panda_breath"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass
class Home:
    """A printer's home folder with git installs of Klipper and Moonraker."""

    path: Path
    origins: Path

    @property
    def klipper(self) -> Path:
        return self.path / "klipper"

    @property
    def moonraker(self) -> Path:
        return self.path / "moonraker"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **GIT_ENV, "HOME": str(self.path), **extra}

    def git(self, cwd: Path, *args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def publish(self, seed: Path, name: str, branch: str = "master") -> Path:
        """Commit ``seed`` into a fresh repository, make a bare origin of it, clone it to ~/name."""
        self.git(seed, "init", "-q", "-b", branch)
        self.git(seed, "add", "-A")
        self.git(seed, "commit", "-q", "-m", f"{name} as released")
        bare = self.origins / f"{name}.git"
        self.git(self.path, "clone", "-q", "--bare", str(seed), str(bare))
        self.git(self.path, "clone", "-q", str(bare), str(self.path / name))
        return self.path / name

    def status(self, checkout: Path) -> str:
        """What Moonraker's update manager reads: ``git status --porcelain``."""
        return self.git(checkout, "status", "--porcelain")

    def printer_data(self, name: str = "printer_data", conf: str = "[server]\n") -> Path:
        folder = self.path / name
        for sub in ("config", "logs", "gcodes", "database"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "config" / "moonraker.conf").write_text(conf)
        return folder

    def install(
        self, *args: str, script: Path = INSTALL, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args], env=self.env(**env), capture_output=True, text=True, timeout=60,
        )


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """~/klipper and ~/moonraker as git installs, each a clean clone of its own origin."""
    h = Home(tmp_path / "home", tmp_path / "origins")
    h.path.mkdir()
    seed = tmp_path / "seed-klipper"
    seed.mkdir()
    subprocess.run(
        ["tar", "-xzf", str(KLIPPER_TARBALL), "-C", str(seed), "--strip-components=1"],
        check=True, timeout=60,
    )
    # Moonraker's update manager checks Klipper's install script (the tarball has only klippy/).
    (seed / "scripts" / "install-octopi.sh").write_text("#!/bin/sh\n")
    h.publish(seed, "klipper")
    seed = tmp_path / "seed-moonraker"
    # Moonraker's repository: the moonraker/ package and scripts/ at the top.
    shutil.copytree(
        MOONRAKER_PACKAGE, seed / "moonraker", symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "panda_breath"),
    )
    shutil.copytree(MOONRAKER_PACKAGE / "scripts", seed / "scripts",
                    ignore=shutil.ignore_patterns("__pycache__"))
    h.publish(seed, "moonraker")
    return h


def snapshot(*files: Path) -> dict[Path, bytes]:
    return {f: f.read_bytes() for f in files}


def excludes(h: Home) -> list[Path]:
    return [h.klipper / ".git" / "info" / "exclude", h.moonraker / ".git" / "info" / "exclude"]


def test_install_keeps_both_checkouts_clean_and_uninstall_restores_them(home: Home) -> None:
    before = snapshot(*excludes(home))
    result = home.install()  # the defaults: ~/klipper and ~/moonraker
    assert result.returncode == 0, result.stderr
    extra = home.klipper / "klippy" / "extras" / "heater_panda_breath.py"
    component = home.moonraker / "moonraker" / "components" / "panda_breath"
    assert extra.resolve() == EXTRA and component.resolve() == COMPONENT
    # Nothing new for git, hence nothing for Moonraker's update manager...
    assert home.status(home.klipper) == "" and home.status(home.moonraker) == ""
    # ...because the links are ignored, not because they are missing.
    ignored = home.git(home.klipper, "status", "--porcelain", "--ignored")
    assert "!! klippy/extras/heater_panda_breath.py" in ignored
    assert len(EXTRA_FILES) > 1
    for source in EXTRA_FILES:
        assert (extra.parent / source.name).resolve() == source
        assert f"!! klippy/extras/{source.name}" in ignored
    installed = snapshot(*excludes(home))
    again = home.install()
    assert again.returncode == 0, again.stderr
    assert snapshot(*excludes(home)) == installed  # idempotent: no second exclude line
    result = home.install("--uninstall")
    assert result.returncode == 0, result.stderr
    assert not extra.exists() and not extra.is_symlink() and not component.is_symlink()
    assert not any((extra.parent / source.name).is_symlink() for source in EXTRA_FILES)
    assert snapshot(*excludes(home)) == before
    assert home.status(home.klipper) == "" and home.status(home.moonraker) == ""


def test_uninstall_removes_only_the_exclude_lines_it_added(home: Home) -> None:
    klipper_exclude, moonraker_exclude = excludes(home)
    # The owner hides the extra already: nothing to add, and it stays on uninstall.
    klipper_exclude.write_text(
        "# mine\n/out\n" + "".join(f"/klippy/extras/{f.name}\n" for f in EXTRA_FILES))
    # No final newline: uninstall gives the file back byte for byte all the same.
    moonraker_exclude.write_text("# mine\n/.venv")
    before = snapshot(klipper_exclude, moonraker_exclude)
    assert home.install().returncode == 0
    assert klipper_exclude.read_bytes() == before[klipper_exclude]
    assert moonraker_exclude.read_text().startswith("# mine\n/.venv\n# panda-breath-klipper")
    assert home.status(home.klipper) == "" and home.status(home.moonraker) == ""
    assert home.install("--uninstall").returncode == 0
    assert snapshot(klipper_exclude, moonraker_exclude) == before


class CheckoutMoonraker(Moonraker):
    """Moonraker run from the ~/moonraker checkout, on the moonraker.conf the test wrote."""

    def write_config(self) -> None:
        pass  # the installer appended to it; keep it as it is


def panda_clone(h: Home, tmp_path: Path) -> Path:
    """~/panda-breath-klipper: a clone of a local bare origin holding this project and,
    committed on top, the installer under test."""
    bare = h.origins / "panda-breath-klipper.git"
    h.git(tmp_path, "clone", "-q", "--bare", str(ROOT), str(bare))
    work = tmp_path / "panda-work"
    h.git(tmp_path, "clone", "-q", str(bare), str(work))
    shutil.copyfile(INSTALL, work / "scripts" / "install")
    h.git(work, "commit", "-q", "--allow-empty", "-am", "the installer under test")
    h.git(work, "push", "-q", "origin", "HEAD")
    clone = h.path / "panda-breath-klipper"
    h.git(h.path, "clone", "-q", str(bare), str(clone))
    return clone


def test_moonrakers_update_manager_reports_klipper_moonraker_and_the_bridge_clean(
    home: Home, tmp_path: Path
) -> None:
    clone = panda_clone(home, tmp_path)
    # Moonraker's updater for Klipper wants ~/klippy-env/bin/python and bin/activate.
    venv = home.path / "klippy-env" / "bin"
    venv.mkdir(parents=True)
    (venv / "activate").write_text("")
    (venv / "python").symlink_to(MOONRAKER_PYTHON)
    data = home.printer_data()
    moonraker = CheckoutMoonraker(
        tmp_path / "moonraker-run", tmp_path / "no-klippy.sock", data_path=data,
        # Run Moonraker from the ~/moonraker checkout, as a git install does.
        env={"HOME": str(home.path), "PYTHONPATH": str(home.moonraker)},
    )
    (data / "config" / "moonraker.conf").write_text(
        BASE_CONFIG.format(port=moonraker.port, klippy_socket=moonraker.klippy_socket, cors="")
        + "\n[update_manager]\nenable_system_updates: False\n"
        + "\n[panda_breath]\nhost: 127.0.0.1\nport: 9\n"
    )
    result = home.install("--append-update-manager", script=clone / "scripts" / "install")
    assert result.returncode == 0, result.stderr
    conf = (data / "config" / "moonraker.conf").read_text()
    assert "[update_manager panda_breath]\ntype: git_repo\npath: ~/panda-breath-klipper\n" in conf
    assert f"origin: {home.origins / 'panda-breath-klipper.git'}\n" in conf
    assert "primary_branch: main\nmanaged_services: klipper moonraker\n" in conf
    moonraker.start()
    try:
        def refreshed() -> dict[str, Any] | None:
            # A repo shows is_valid false while its refresh runs (Moonraker
            # clears it first), so wait for all three to be valid; an invalid
            # one fails below with its status.
            info = moonraker.get("/machine/update/status")["version_info"]
            names = ("klipper", "moonraker", "panda_breath")
            if all(info.get(n, {}).get("current_hash", "?") != "?"
                   and info.get(n, {}).get("is_valid") for n in names):
                return info
            return None

        try:
            info = wait_until(refreshed, 30, 0.2, "the update manager's first refresh")
        except TimeoutError:
            info = moonraker.get("/machine/update/status")["version_info"]
        for name, path in (("klipper", home.klipper), ("moonraker", home.moonraker),
                           ("panda_breath", clone)):
            status = info[name]
            assert status["detected_type"] == "git_repo", (name, status)
            assert status["is_valid"] and not status["is_dirty"], (name, status)
            assert status["pristine"], (name, status)
            assert not [a for a in status["anomalies"] if "untracked" in a], (name, status)
            assert status["warnings"] == [], (name, status)
            assert home.status(path) == ""
        assert info["panda_breath"]["branch"] == "main"
        assert info["panda_breath"]["remote_alias"] == "origin"
        server = moonraker.get("/server/info?raw=true")
        assert server["warnings"] == [], server["warnings"]
        # The component Moonraker runs comes through the link in its checkout.
        assert "panda_breath" in server["components"], server["failed_components"]
    finally:
        moonraker.stop()


def test_update_manager_block_for_every_printer_data_instance(home: Home) -> None:
    first = home.printer_data("printer_data", "[server]\nhost: 0.0.0.0\n\n[update_manager]\n")
    second = home.printer_data("printer_1_data", "[server]\nhost: 0.0.0.0")  # no final newline
    own = home.printer_data(
        "printer_2_data", "[update_manager panda_breath]\ntype: git_repo\npath: ~/elsewhere\n"
    )
    (home.path / "notes_data").mkdir()  # no config/moonraker.conf: not an instance
    confs = [d / "config" / "moonraker.conf" for d in (first, second, own)]
    before = snapshot(*confs)

    printed = home.install()
    assert printed.returncode == 0, printed.stderr
    assert snapshot(*confs) == before  # only printed
    for conf in confs:
        assert str(conf) in printed.stdout
    assert "[update_manager panda_breath]\ntype: git_repo\n" in printed.stdout
    assert "managed_services: klipper moonraker" in printed.stdout
    assert "notes_data" not in printed.stdout

    # Appending needs a clone with an origin: refused before anything is touched.
    assert home.install("--uninstall").returncode == 0
    no_origin = home.install("--append-update-manager", script=_copy_without_origin(home))
    assert no_origin.returncode == 1 and "no git remote 'origin'" in no_origin.stderr
    assert snapshot(*confs) == before
    assert not (home.klipper / "klippy" / "extras" / "heater_panda_breath.py").is_symlink()

    clone = panda_clone(home, home.path.parent)
    script = clone / "scripts" / "install"
    result = home.install("--append-update-manager", script=script)
    assert result.returncode == 0, result.stderr
    appended = snapshot(*confs)
    for conf in confs[:2]:
        text = conf.read_text()
        assert text.count("[update_manager panda_breath]") == 1
        assert "path: ~/panda-breath-klipper\n" in text
    assert appended[confs[2]] == before[confs[2]]  # the owner's own section is left alone
    assert "no [update_manager] section" in result.stdout  # printer_1_data has none
    assert home.install("--append-update-manager", script=script).returncode == 0
    assert snapshot(*confs) == appended  # idempotent

    # --printer-data names one instance; the others are not touched.
    result = home.install("--uninstall", "--printer-data", str(second), script=script)
    assert result.returncode == 0, result.stderr
    assert confs[1].read_bytes() == before[confs[1]]
    assert confs[0].read_bytes() == appended[confs[0]]
    result = home.install("--uninstall", script=script)
    assert result.returncode == 0, result.stderr
    assert snapshot(*confs) == before  # byte for byte, the missing final newline too
    assert "did not add" in result.stdout  # printer_2_data's own section is named


def _copy_without_origin(h: Home) -> Path:
    """This project as a plain folder copy (no git remote): the installer of a tarball."""
    copy = h.path.parent / "panda-no-origin"
    for part in ("klipper_extra", "moonraker_component", "scripts"):
        shutil.copytree(ROOT / part, copy / part, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", ".mypy_cache"))
    return copy / "scripts" / "install"


def test_refuses_root_in_a_users_tree(home: Home) -> None:
    before = snapshot(*excludes(home))
    extra = home.klipper / "klippy" / "extras" / "heater_panda_breath.py"
    if os.geteuid() == 0:
        # Root, with the checkouts belonging to someone else (as `sudo scripts/install`).
        for tree in (home.klipper, home.moonraker):
            subprocess.run(["chown", "-R", "65534:65534", str(tree)], check=True)
        result = home.install()
    else:
        # An ordinary user cannot hand files away; pretend to be root instead.
        result = home.install(PANDA_BREATH_INSTALL_EUID="0")
    assert result.returncode == 1
    assert "running as root would leave root-owned files" in result.stderr
    assert "Run it as" in result.stderr and "without sudo" in result.stderr
    assert not extra.is_symlink()
    assert snapshot(*excludes(home)) == before


def test_kalico_gets_the_extra_in_its_plugins_folder(home: Home) -> None:
    # A Kalico checkout has klippy/plugins/; Kalico refuses a module in both folders.
    plugins = home.klipper / "klippy" / "plugins"
    plugins.mkdir()
    (plugins / "__init__.py").write_text("# Package definition for the plugin directory\n")
    home.git(home.klipper, "add", "-A")
    home.git(home.klipper, "commit", "-q", "-m", "kalico")
    extras_link = home.klipper / "klippy" / "extras" / "heater_panda_breath.py"
    extras_link.symlink_to(EXTRA)  # left by an earlier install into extras/
    result = home.install()
    assert result.returncode == 0, result.stderr
    assert (plugins / "heater_panda_breath.py").resolve() == EXTRA
    assert all((plugins / source.name).resolve() == source for source in EXTRA_FILES)
    assert not extras_link.is_symlink()
    assert home.status(home.klipper) == ""
    assert "/klippy/plugins/heater_panda_breath.py" in excludes(home)[0].read_text()
    assert home.install("--uninstall").returncode == 0
    assert not (plugins / "heater_panda_breath.py").is_symlink()
    assert not any((plugins / source.name).is_symlink() for source in EXTRA_FILES)
    assert home.status(home.klipper) == ""


def fake_git_installs(tmp_path: Path) -> tuple[Path, Path]:
    extras = tmp_path / "klipper" / "klippy" / "extras"
    components = tmp_path / "moonraker" / "moonraker" / "components"
    extras.mkdir(parents=True)
    components.mkdir(parents=True)
    return extras, components


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INSTALL), *args], capture_output=True, text=True, timeout=30)


def test_links_into_plain_folders_and_uninstalls(tmp_path: Path) -> None:
    extras, components = fake_git_installs(tmp_path)
    where = ("--klipper", str(tmp_path / "klipper"), "--moonraker", str(tmp_path / "moonraker"))
    assert run(*where).returncode == 0
    extra = extras / "heater_panda_breath.py"
    component = components / "panda_breath"
    assert extra.resolve() == EXTRA
    assert component.resolve() == COMPONENT
    assert run(*where).returncode == 0  # idempotent
    assert all((extras / source.name).resolve() == source for source in EXTRA_FILES)
    assert run(*where, "--uninstall").returncode == 0
    assert not extra.exists() and not component.exists()
    assert not any((extras / source.name).exists() for source in EXTRA_FILES)


def test_pip_installs_are_found_through_their_python(tmp_path: Path) -> None:
    # The test environments are pip installs; bootstrap links them this way.
    result = run(
        "--klippy-python", str(ROOT / ".venvs" / "klippy" / "bin" / "python"),
        "--moonraker-python", str(ROOT / ".venvs" / "moonraker" / "bin" / "python"),
    )
    assert result.returncode == 0, result.stderr
    assert "site-packages/moonraker/components/panda_breath" in result.stdout
    # Inside this checkout's ignored .venvs/: nothing to hide, nothing written to its git.
    assert "hid " not in result.stdout


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
