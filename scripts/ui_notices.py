"""Live notices in the real Mainsail and Fluidd, without a reload (issue 20); run by ui_check.

With the page open on the dashboard and its notification bell open, the
device goes out of reach (on DragonBreath: latches a fault instead): the check
measures how long after Moonraker's notice (the announcement in
``server.announcements.list``; for the fault, the device latching it) the
bell lists the Panda Breath entry, and how long after the device is back
(the fault cleared) the entry is gone; both must be within ``BELL_WITHIN``.
The console must carry the start line and the end line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed import wait_until
from testbed.stack import Stack

#: The most a UI may take to show or drop the entry (issue 20).
BELL_WITHIN = 2.0
#: The bell's icon (mdi-bell-outline) in both UIs' top bar.
BELL_ICON = "M10 21H14C14 22.1"
PASS, FAIL = "pass", "fail"


def bell_js(ui: Any) -> str:
    return ui.top_bar_button(BELL_ICON)


def menu_text_js() -> str:
    return ("[...document.querySelectorAll('.menuable__content__active')]"
            ".map(m => m.innerText).join('\\n')")


def ours(stack: Stack) -> list[dict[str, Any]]:
    entries = stack.moonraker.get("/server/announcements/list")["entries"]
    return [e for e in entries if str(e.get("feed", "")).startswith("panda_breath_")]


class OpenPage:
    """One UI's dashboard, open for the whole notice check (one page per UI)."""

    def __init__(self, ui: Any, page: Any, shot: Callable[[str], Path]) -> None:
        self.ui, self.page, self.shot = ui, page, shot


def bell_lists(ui: Any, page: Any, title: str) -> tuple[bool, str]:
    """Whether the open bell lists ``title`` (and its text); reopens a closed bell."""
    text = page.evaluate(menu_text_js())
    if not text:  # the menu closed: open it again, as a person would
        page.click(bell_js(ui))
        time.sleep(0.2)
        text = page.evaluate(menu_text_js())
    return title in text, str(text)


def wait_bells(pages: list[OpenPage], title: str, present: bool, since: float
               ) -> dict[str, float | str]:
    """Per UI: seconds from ``since`` until its bell lists ``title`` (or no longer
    does), or why not within ``BELL_WITHIN``; the pages are watched together."""
    took: dict[str, float | str] = {}
    texts: dict[str, str] = {}
    while len(took) < len(pages):
        for p in pages:
            if p.ui.name in took:
                continue
            listed, texts[p.ui.name] = bell_lists(p.ui, p.page, title)
            if listed == present:
                took[p.ui.name] = time.monotonic() - since
        if time.monotonic() > since + BELL_WITHIN:
            for p in pages:
                took.setdefault(p.ui.name, (
                    f"the bell {'does not list' if present else 'still lists'} '{title}' "
                    f"{BELL_WITHIN:g} s later (menu: {texts.get(p.ui.name, '')[:160]!r})"))
        time.sleep(0.05)
    return took


def console_has(page: Any, words: str, timeout: float = 3.0) -> str:
    """The console line (in the page, as shown) that contains ``words``."""
    found = page.wait_for(
        "(() => document.body.innerText.split('\\n').find(l => l.includes("
        f"{words!r})) || null)()", timeout, f"'{words}' in the console")
    return str(found).strip()


def bell_rows(pages: list[OpenPage], report: Any, name: str, title: str, present: bool,
              since: float, after: str, console: str, label: str) -> None:
    """One row per UI: the bell within ``BELL_WITHIN`` of ``since`` and the console line."""
    took = wait_bells(pages, title, present, since)
    for p in pages:
        seconds = took[p.ui.name]
        if isinstance(seconds, str):
            report.add(p.ui.name, name, FAIL, seconds)
            continue
        try:
            p.shot(label)
            line = console_has(p.page, console)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a row
            report.add(p.ui.name, name, FAIL, f"{type(exc).__name__}: {exc}", seconds)
            continue
        report.add(p.ui.name, name, PASS, f"'{title}' {'listed' if present else 'gone'} "
                   f"{seconds:.2f} s after {after}; console '{line[:110]}'", seconds)


def check_outage(pages: list[OpenPage], stack: Stack, report: Any) -> None:
    """Out of reach and back: the bell entry and the console lines, in every page at once."""
    title = "Panda Breath out of reach"
    stack.sim.control("refuse", seconds=300)
    stack.sim.control("drop")
    wait_until(lambda: ours(stack), 15.0, 0.05, what="Moonraker's outage notice")
    bell_rows(pages, report, "bell: outage entry within 2 s", title, True, time.monotonic(),
              "Moonraker's notice", "Panda Breath out of reach since", "notice-outage")
    stack.sim.control("refuse", seconds=0)
    wait_until(lambda: stack.device()["link"] == "connected", 10.0, 0.05,
               what="the device back")
    bell_rows(pages, report, "bell: outage entry gone within 2 s of the device back", title,
              False, time.monotonic(), "the status said connected",
              "Panda Breath reachable again", "notice-outage-gone")


def check_fault(pages: list[OpenPage], stack: Stack, report: Any) -> None:
    """A DragonBreath fault latching and cleared: the bell entry and the console lines."""
    title = "Panda Breath fault"
    stack.sim.control("fault")  # returns once the device latched it
    bell_rows(pages, report, "bell: fault entry within 2 s of the latch", title, True,
              time.monotonic(), "the device latched it", "Panda Breath fault (", "notice-fault")
    stack.wait_device(lambda d: d["faults"], 3.0, what="the fault in the status API")
    time.sleep(1.0)  # the device's revision settles (a clear names the one it saw)
    stack.moonraker.post("/server/panda_breath/clear_fault")
    stack.wait_sim(lambda s: s.get("fault_latched") is False, 5.0, what="the fault cleared")
    bell_rows(pages, report, "bell: fault entry gone within 2 s of the clear", title, False,
              time.monotonic(), "the device cleared it", "Panda Breath fault cleared",
              "notice-fault-gone")


def check_notices(pages: list[OpenPage], stack: Stack, report: Any) -> None:
    """The outage (stock) or the latched fault (DragonBreath), in every open page."""
    for open_page in pages:
        open_page.page.click(bell_js(open_page.ui))
    # The simulated DragonBreath refuses its control API too while it refuses
    # connections, so its run checks the fault; the stock run the outage.
    checks = [("fault", check_fault) if stack.firmware == "dragonbreath"
              else ("outage", check_outage)]
    for what, check in checks:
        try:
            check(pages, stack, report)
        except Exception as exc:  # noqa: BLE001 - the stack step failed: one row
            report.add("stack", f"{what} for the notice checks", FAIL,
                       f"{type(exc).__name__}: {exc}")
