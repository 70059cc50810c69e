"""Who controls a device that arbitrates between controllers (DragonBreath)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from panda_breath.arbitration import Arbitration
from panda_breath.model import DeviceReport

LINK: Any = SimpleNamespace(arbitrates=True, own_source="klipper")


def report(source: str, revision: int) -> DeviceReport:
    return DeviceReport(source=source, revision=revision)


def test_the_device_reporting_our_write_ends_anothers_control() -> None:
    """Klipper's next target takes the device back; a snapshot taken before that
    write may still say "web" after the release, but once the device reports our
    own write, nobody else controls it (a flaky e2e test caught this race)."""
    arbitration = Arbitration("pb")
    assert arbitration.someone_else_took(LINK, report("web", 5)) is not None
    arbitration.release("Klipper's target")
    assert arbitration.someone_else_took(LINK, report("web", 5)) is not None  # in flight
    assert arbitration.someone_else_took(LINK, report("klipper", 6)) is None
    assert arbitration.external_control is None


def test_another_controller_keeps_the_device_until_ours_is_reported() -> None:
    arbitration = Arbitration("pb")
    arbitration.someone_else_took(LINK, report("button", 3))
    assert arbitration.someone_else_took(LINK, report("button", 4)) is None  # not new
    assert arbitration.someone_else_took(LINK, report("boot", 4)) is None
    assert arbitration.external_control == "button"
