"""The chamber in the real UIs, used as a person uses them (issue 10's real-UI test).

Run through ``scripts/ui_check``. Starts the real stack (simulator, klippy
with the chamber, Moonraker with the component), serves copies of the
Mainsail and Fluidd builds on 127.0.0.1, opens each in headless Chromium and
runs KlipperScreen on a virtual X screen, then:

* Mainsail (Temperatures panel) and Fluidd (Thermals card): finds the
  chamber's row, clicks its target field, types 45 and Enter, and checks that
  the simulated device heats at 45; then types 0 and checks it is off.
* Power devices: when Moonraker lists one named like "Panda Breath drying",
  switches it on and off in Mainsail's power menu and Fluidd's power list and
  checks that the device starts and stops drying. Without one, the rows say
  "not-available".
* Live notices (``ui_notices``): with the page open, the device goes out
  of reach and comes back (with ``--firmware dragonbreath``: latches a
  fault that is then cleared); the notification bell must list and drop the
  Panda Breath entry within 2 s, and the console carry the start and end
  lines.  ``--checks notices`` runs only these.
* KlipperScreen: reads "# Temperature devices: N" from its log and says whether
  it lists the chamber (it lists only ``heater_generic``/``temperature_*``
  sections: ``--setup heater_generic`` gives it one).

Screenshots of every step go to ``--out`` (default ``run/ui_check/``), with the
parts' logs; a table of checks is printed; the exit status is 1 when a check
fails. The UIs default to ``../shared/frontends/{mainsail,fluidd,KlipperScreen}``
beside the repository; ``--mainsail DIR`` (etc.) uses another copy.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from testbed import ROOT, free_port, wait_until
from testbed.browser import Chromium, Page, serve_directory
from testbed.configs import SETUPS, setup_name
from testbed.stack import Stack, start_stack
from ui_notices import OpenPage, check_notices

FRONTENDS = ROOT.parent / "shared" / "frontends"
UIS = ("mainsail", "fluidd", "klipperscreen")
#: A Moonraker power device for the device's drying cycle is named like this.
DRYING_DEVICE = re.compile(r"panda\s*breath.*dry", re.IGNORECASE)
#: How long the device may take to follow a change made in a UI.
FOLLOW_TIMEOUT = 10.0
PASS, FAIL, NOT_AVAILABLE = "pass", "fail", "not-available"


@dataclass
class Check:
    ui: str
    name: str
    status: str
    detail: str
    seconds: float = 0.0


class Report:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.checks: list[Check] = []
        self.screenshots: list[Path] = []

    def add(self, ui: str, name: str, status: str, detail: str, seconds: float = 0.0) -> Check:
        check = Check(ui, name, status, detail, round(seconds, 1))
        self.checks.append(check)
        print(f"  {ui:13} {status:13} {name}: {detail}", flush=True)
        return check

    def run(self, ui: str, name: str, body: Callable[[], tuple[str, str]]) -> Check:
        """Run one check; an exception is a failure whose message is the detail."""
        start = time.monotonic()
        try:
            status, detail = body()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a row
            status, detail = FAIL, f"{type(exc).__name__}: {exc}"
        return self.add(ui, name, status, detail, time.monotonic() - start)

    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)

    def table(self) -> str:
        rows = [("UI", "check", "result", "detail")] + [
            (c.ui, c.name, c.status, c.detail) for c in self.checks
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = []
        for i, row in enumerate(rows):
            detail = row[3] if len(row[3]) <= 160 else row[3][:157] + "..."
            lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row[:3]))
                         + "  " + detail)
            if i == 0:
                lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
        return "\n".join(lines)


# -- the web UIs ----------------------------------------------------------------------------

#: JavaScript helpers: find elements by the text a person reads.
JS_HELPERS = r"""
const __own = e => [...e.childNodes].filter(n => n.nodeType === 3)
    .map(n => n.textContent).join('').trim();
const __visible = e => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'; };
const __byText = (text, root = document) => [...root.querySelectorAll('*')]
    .filter(e => (__own(e) === text || (e.childElementCount === 0 && e.textContent.trim() === text))
                 && __visible(e));
// The target input in the row named `row` of the panel titled `panel`.
const __heaterRow = (panel, row) => {
  for (const title of __byText(panel)) {
    let box = title.parentElement;
    while (box && !box.querySelector('tr')) box = box.parentElement;
    if (!box) continue;
    for (const tr of box.querySelectorAll('tr')) {
      if (![...tr.children].some(td => td.textContent.trim() === row)) continue;
      const input = tr.querySelector('input');
      if (input && __visible(input)) return {tr, input};
    }
  }
  return null;
};
"""


def js(body: str) -> str:
    return "(() => {" + JS_HELPERS + body + "})()"


def q(value: str) -> str:
    return json.dumps(value)


class WebUI:
    """What differs between Mainsail and Fluidd: where things are and what they are called."""

    name = ""
    panel = ""
    row = "Chamber"

    def __init__(self, source: Path, moonraker_port: int) -> None:
        self.source = source
        self.moonraker_port = moonraker_port

    @staticmethod
    def build_dir(path: Path) -> Path:
        """A built UI: the folder with index.html (or its dist/)."""
        for candidate in (path, path / "dist"):
            if (candidate / "index.html").exists():
                return candidate
        raise FileNotFoundError(f"no index.html in {path} or {path / 'dist'}: not a built web UI")

    def prepare(self, dest: Path) -> Path:
        shutil.copytree(self.build_dir(self.source), dest, ignore=shutil.ignore_patterns(".git"))
        for path in (dest, *dest.rglob("*")):
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
        config_path = dest / "config.json"
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        self.configure(config)
        config_path.write_text(json.dumps(config, indent=2))
        return dest

    def configure(self, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def connect(self, page: Page, timeout: float) -> None:
        """From the first page to the dashboard showing the chamber."""
        page.wait_for(self.row_js(), timeout, f"the {self.row} row in {self.name}'s {self.panel}")

    def row_js(self) -> str:
        return js(f"const r = __heaterRow({q(self.panel)}, {q(self.row)}); return r && r.input;")

    def row_text(self, page: Page) -> str:
        return page.evaluate(js(
            f"const r = __heaterRow({q(self.panel)}, {q(self.row)});"
            " return r ? [...r.tr.children].map(td => td.textContent.replace(/\u200b/g, '')"
            "     .trim()).filter(t => t)"
            "     .join(' | ') + ' | target field ' + r.input.value : '';"
        ))

    def open_power_list(self, page: Page) -> None:
        raise NotImplementedError

    def power_item_js(self, device: str) -> str:
        raise NotImplementedError

    def close_power_list(self, page: Page) -> None:
        raise NotImplementedError

    @staticmethod
    def top_bar_button(svg_path_start: str) -> str:
        """The top bar's button with this icon (its SVG path), else the bar's last button."""
        return js(
            "const bar = document.querySelector('header.v-app-bar') || document.querySelector("
            "'header'); const buttons = [...bar.querySelectorAll('button')];"
            " return buttons.find(b => (b.querySelector('path')?.getAttribute('d') || '')"
            f"   .startsWith({q(svg_path_start)})) || buttons.at(-1);"
        )


class Mainsail(WebUI):
    name = "mainsail"
    panel = "Temperatures"

    def configure(self, config: dict[str, Any]) -> None:
        config.update(instancesDB="json",
                      instances=[{"hostname": "127.0.0.1", "port": self.moonraker_port}])

    def connect(self, page: Page, timeout: float) -> None:
        # With a list of printers Mainsail first asks which one: click it, as a person does.
        entry = js(f"return __byText({q(f'127.0.0.1:{self.moonraker_port}')})[0] || null;")
        where = js(f"return {self.row_js()} ? 'dashboard' : ({entry} ? 'printers' : null);")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = page.wait_for(where, max(1.0, deadline - time.monotonic()),
                                  "Mainsail's printer list or dashboard")
            if found == "dashboard":
                break
            time.sleep(0.5)
            page.click(entry)
            try:  # connecting takes a second or two; click again if nothing happened
                page.wait_for(self.row_js(), 8.0)
                break
            except TimeoutError:
                continue
        super().connect(page, 5.0)

    #: The power button at the right end of the top bar (mdi-power) opens a menu.
    POWER_BUTTON = WebUI.top_bar_button("M16.56,5.44")

    def open_power_list(self, page: Page) -> None:
        page.click(self.POWER_BUTTON)

    def close_power_list(self, page: Page) -> None:
        page.click(self.POWER_BUTTON)  # the same button closes it

    def power_item_js(self, device: str) -> str:
        return js(
            f"const menu = [...document.querySelectorAll('.menuable__content__active')]"
            f"  .find(__visible); if (!menu) return null;"
            f" const t = __byText({q(device)}, menu)[0];"
            " return t ? (t.closest('[role=menuitem], .v-list-item') || t) : null;"
        )


class Fluidd(WebUI):
    name = "fluidd"
    panel = "Thermals"

    def configure(self, config: dict[str, Any]) -> None:
        config["endpoints"] = [f"http://127.0.0.1:{self.moonraker_port}"]

    #: The menu button at the right end of the top bar (mdi-dots-vertical) opens a drawer.
    MENU_BUTTON = WebUI.top_bar_button("M12,16A2,2")

    def close_power_list(self, page: Page) -> None:
        # A click beside the drawer, on the shade over the page.
        scrim = js("return [...document.querySelectorAll('.v-overlay--active .v-overlay__scrim')]"
                   ".find(__visible) || null;")
        if page.evaluate(js(f"return !!({scrim});")):
            page.click_at(100, viewport_height(page) - 40)
        else:
            page.click(self.MENU_BUTTON)

    def open_power_list(self, page: Page) -> None:
        # The menu, then its Power group.
        page.click(self.MENU_BUTTON)
        header = js(
            "const drawer = [...document.querySelectorAll('.v-navigation-drawer--open, "
            ".v-navigation-drawer')].find(d => __visible(d) && __byText('Power', d).length);"
            " if (!drawer) return null; const t = __byText('Power', drawer)[0];"
            " return t.closest('.v-list-group__header') || t;"
        )
        page.wait_for(header, 5.0, "the Power group in Fluidd's menu")
        time.sleep(0.4)  # the drawer slides in
        if page.evaluate(js(f"const h = {header}; return h.getAttribute('aria-expanded');")) \
                != "true":
            page.click(header)

    def power_item_js(self, device: str) -> str:
        return js(
            "const drawer = [...document.querySelectorAll('.v-navigation-drawer')]"
            "  .find(d => __visible(d) && __byText('Power', d).length); if (!drawer) return null;"
            f" const t = __byText({q(device)}, drawer)[0];"
            " return t ? (t.closest('.v-list-item') || t) : null;"
        )


def viewport_height(page: Page) -> int:
    return int(page.evaluate("window.innerHeight"))


def heating_at(target: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s.get("work_on") is True and s.get("set_temp") == target


def is_off(state: dict[str, Any]) -> bool:
    return state.get("work_on") is False


def is_drying(state: dict[str, Any]) -> bool:
    return state.get("mode") == "drying" and state.get("work_on") is True


def truth(state: dict[str, Any]) -> str:
    return (f"device work_on={state.get('work_on')} mode={state.get('mode')} "
            f"set_temp={state.get('set_temp')}")


def drying_device(stack: Stack) -> tuple[str | None, str]:
    """The name of Moonraker's drying power device, or None and why there is none."""
    try:
        devices = stack.moonraker.get("/machine/device_power/devices")["devices"]
    except Exception as exc:  # noqa: BLE001 - no [power] component: no devices
        return None, f"Moonraker has no power devices ({exc})"
    names = [d["device"] for d in devices]
    for name in names:
        if DRYING_DEVICE.search(name):
            return name, ""
    return None, ("Moonraker lists no power device named like 'Panda Breath drying' "
                  f"(it lists: {', '.join(names) or 'none'})")


def check_web_ui(ui: WebUI, url: str, browser: Chromium, stack: Stack, report: Report,
                 checks: str = "all") -> OpenPage | None:
    """The page's own checks; the page stays open for the notice checks (None if it failed)."""
    out = report.out
    name = ui.name
    page = browser.open()
    step = {"n": 0}

    def shot(label: str) -> Path:
        step["n"] += 1
        path = out / f"{name}-{step['n']}-{label}.png"
        page.screenshot(path)
        report.screenshots.append(path)
        return path

    try:
        page.goto(url + "/")

        def listed() -> tuple[str, str]:
            ui.connect(page, 45.0)
            time.sleep(1.0)  # let the first status update settle before the picture
            shot("chamber")
            return PASS, f"row '{ui.row_text(page)}' in the {ui.panel} panel"

        row = report.run(name, f"chamber in the {ui.panel} panel", listed)

        def type_target(value: int) -> tuple[str, str]:
            if row.status != PASS:
                return FAIL, f"no chamber row in the {ui.panel} panel to type into"
            page.click(ui.row_js())
            page.select_all()
            page.type_text(str(value))
            typed = page.evaluate(js(f"return ({ui.row_js()}).value;"))
            page.press("Enter")
            want = heating_at(value) if value > 0 else is_off
            what = f"the device heating at {value}" if value > 0 else "the device off"
            state = stack.wait_sim(want, FOLLOW_TIMEOUT, what)
            target = stack.heater_status().get("target")
            time.sleep(1.0)  # the UI's next status update, for the picture
            shot(f"target-{value}")
            return PASS, (f"typed '{typed}' + Enter: Klipper target {target:g}, {truth(state)}; "
                          f"UI row '{ui.row_text(page)}'")

        if checks == "all":
            report.run(name, "type target 45 -> device heats at 45", lambda: type_target(45))
            report.run(name, "type target 0 -> device off", lambda: type_target(0))
            check_power_device(ui, page, stack, report, shot)
        if row.status == PASS:
            return OpenPage(ui, page, shot)
    except Exception as exc:  # noqa: BLE001 - the page itself failed: one failure row
        report.add(name, "page", FAIL, f"{type(exc).__name__}: {exc}")
    close_page(ui, page, report)
    return None


def close_page(ui: WebUI, page: Page, report: Report) -> None:
    """The last picture and the browser console's log, then the page closes."""
    try:
        path = report.out / f"{ui.name}-final.png"
        page.screenshot(path)
        report.screenshots.append(path)
    except Exception:  # noqa: BLE001 - best effort
        pass
    (report.out / "logs" / f"{ui.name}-console.txt").write_text("\n".join(page.console) + "\n")
    try:
        page.send("Page.close", timeout=5)
    except Exception:  # noqa: BLE001
        pass


def check_power_device(ui: WebUI, page: Page, stack: Stack, report: Report,
                       shot: Callable[[str], Path]) -> None:
    name = ui.name
    device, why = drying_device(stack)
    rows = ("power device on -> device drying", "power device off -> device stops drying")
    if device is None:
        for row in rows:
            report.add(name, row, NOT_AVAILABLE, why)
        return

    def toggle(on: bool) -> tuple[str, str]:
        if not on and not is_drying(stack.sim.state()):
            return FAIL, "the device was not drying, so there was nothing to switch off"
        item = ui.power_item_js(device)
        show_power_item(ui, page, item, f"'{device}' in {name}'s power list")
        page.click(item)
        confirm_dialog(page)
        want, what = (is_drying, "the device drying") if on else (is_off, "the device off")
        state = stack.wait_sim(want, FOLLOW_TIMEOUT, what)
        wanted = "on" if on else "off"
        status = wait_until(lambda: (s := stack.moonraker.power_status(device)) == wanted and s,
                            5.0, what=f"Moonraker's '{device}' status")
        time.sleep(0.8)  # the UI's switch follows Moonraker's notification
        show_power_item(ui, page, item, f"'{device}' in {name}'s power list")
        shot(f"drying-{'on' if on else 'off'}")
        ui.close_power_list(page)
        page.wait_for(f"!({item})", 5.0, f"{name}'s power list to close")
        time.sleep(0.5)  # the closing animation, before the next click on the same button
        return PASS, f"clicked '{device}': Moonraker says {status}, {truth(state)}"

    report.run(name, rows[0], lambda: toggle(True))
    report.run(name, rows[1], lambda: toggle(False))
    if is_drying(stack.sim.state()):  # leave the device as found for the next UI
        stack.moonraker.power(device, "off")
        stack.wait_sim(is_off, FOLLOW_TIMEOUT, "the device off")


def show_power_item(ui: WebUI, page: Page, item: str, what: str) -> None:
    """Open the UI's power-device list unless ``item`` already shows (menus animate)."""
    for attempt in range(3):
        if page.evaluate(js(f"return !!({item});")):
            time.sleep(0.4)  # opening animation: click where it comes to rest
            return
        if attempt:
            # Mainsail's power button toggles its menu: a click that met the
            # menu half closed leaves it shut.  Escape closes whatever is open,
            # so the next click opens it, as a person would retry.
            page.press("Escape")
            time.sleep(0.6)
        ui.open_power_list(page)
        try:
            page.wait_for(item, 3.0, what)
        except TimeoutError:
            continue
    page.wait_for(item, 1.0, what)
    time.sleep(0.4)


def confirm_dialog(page: Page) -> None:
    """Some versions ask before switching a power device: answer yes, as the person meant it."""
    time.sleep(0.3)
    button = js(
        "const d = [...document.querySelectorAll('.v-dialog--active')].find(__visible);"
        " if (!d) return null; return [...d.querySelectorAll('button')].find(b =>"
        " /^(yes|ok|confirm|on|off|power on|power off|turn on|turn off)$/i"
        "   .test(b.textContent.trim())) || null;"
    )
    if page.evaluate(js(f"return !!({button});")):
        page.click(button)


# -- KlipperScreen --------------------------------------------------------------------------

#: Config sections KlipperScreen shows as temperature devices (ks_includes/printer.py).
KS_SECTIONS = ("heater_bed", "heater_generic", "temperature_sensor", "temperature_fan")


def klipperscreen_devices(stack: Stack) -> list[str]:
    """The printer.cfg sections KlipperScreen lists, by its own rule."""
    config = stack.moonraker.query({"configfile": ["config"]})["configfile"]["config"]
    shown = []
    for section in config:
        kind, _, name = section.partition(" ")
        if name.startswith("_"):
            continue
        if kind in KS_SECTIONS or (kind.startswith("extruder")
                                   and not name.startswith("extruder_stepper")):
            shown.append(section)
    return shown


def check_klipperscreen(source: Path, workdir: Path, stack: Stack, setup: str,
                        report: Report) -> None:
    from testbed.klipperscreen import KlipperScreen

    out = report.out
    screen = KlipperScreen(source, workdir / "klipperscreen", stack.moonraker.port,
                           printer_name="Panda Breath")
    try:
        count: dict[str, int] = {}

        def started() -> tuple[str, str]:
            screen.start()
            found = screen.wait_log(r"# Temperature devices: (\d+)", 60.0)
            count["n"] = int(found.group(1))
            screen.wait_log(r"Loading panel: main_menu", 20.0)
            time.sleep(2.5)  # the main menu draws its temperature list
            path = screen.screenshot(out / "klipperscreen-1-main-menu.png")
            report.screenshots.append(path)
            return PASS, (f"connected to Moonraker; log says '# Temperature devices: "
                          f"{count['n']}'")

        start = report.run("klipperscreen", "starts and connects", started)

        def listed() -> tuple[str, str]:
            if start.status != PASS:
                return FAIL, "KlipperScreen did not start"
            shown = klipperscreen_devices(stack)
            chamber = [s for s in shown if s.partition(" ")[2] == "chamber"]
            yes = count["n"] >= 1 and bool(chamber) and count["n"] >= len(shown)
            detail = (f"chamber listed: {'yes' if yes else 'no'} (KlipperScreen counted "
                      f"{count['n']} temperature devices; printer.cfg sections it shows: "
                      f"{', '.join(shown) or 'none'})")
            if yes:
                return PASS, detail
            if setup == "heater_panda_breath":
                return NOT_AVAILABLE, (
                    detail + "; KlipperScreen lists only heater_generic / temperature_* "
                    "sections and the default setup has [heater_panda_breath chamber]: "
                    "run with --setup heater_generic")
            return FAIL, detail

        report.run("klipperscreen", "lists the chamber", listed)

        def power() -> tuple[str, str]:
            device, why = drying_device(stack)
            if device is None:
                return NOT_AVAILABLE, why
            if start.status != PASS:
                return FAIL, "KlipperScreen did not start"
            found = re.search(r"Power devices: (.*)", screen.log_text())
            if found and device in found.group(1):
                return PASS, f"its log lists '{device}' (KlipperScreen's Power panel)"
            return FAIL, f"'{device}' not in its log's power devices ({found and found.group(1)})"

        report.run("klipperscreen", "sees the drying power device", power)
    finally:
        screen.stop()
        for path in (screen.log_path, screen.output_path, screen.workdir / "xvfb.log"):
            if path.exists():
                shutil.copyfile(path, out / "logs" / path.name)


# -- main -----------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/ui_check", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=ROOT / "run" / "ui_check",
                        help="screenshots, logs and checks.json (default run/ui_check/)")
    parser.add_argument("--setup", type=setup_name, choices=SETUPS, default="heater_panda_breath",
                        help="printer.cfg heater setup: heater_panda_breath (recommended) or "
                             "heater_generic ([heater_generic chamber] fed by the extra)")
    parser.add_argument("--mainsail", type=Path, default=FRONTENDS / "mainsail",
                        help="a Mainsail build (folder with index.html)")
    parser.add_argument("--fluidd", type=Path, default=FRONTENDS / "fluidd",
                        help="a Fluidd build (folder with index.html)")
    parser.add_argument("--klipperscreen", type=Path, default=FRONTENDS / "KlipperScreen",
                        help="a KlipperScreen source tree")
    parser.add_argument("--ui", default=",".join(UIS),
                        help="which UIs to check, comma-separated (default: all three)")
    parser.add_argument("--firmware", choices=("v1.0.3", "dragonbreath"), default="v1.0.3",
                        help="the simulated device's firmware (dragonbreath: the notice "
                             "checks use a latched fault)")
    parser.add_argument("--checks", choices=("all", "notices"), default="all",
                        help="all checks, or only the live notices (bell and console)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the stack's working folder (printed) after the run")
    args = parser.parse_args(argv)
    args.uis = [u.strip().lower() for u in args.ui.split(",") if u.strip()]
    unknown = sorted(set(args.uis) - set(UIS))
    if unknown:
        parser.error(f"--ui: unknown {', '.join(unknown)} (choose from {', '.join(UIS)})")
    return args


def stack_options(setup: str) -> tuple[dict[str, Any], str]:
    """Keyword arguments for this testbed's start_stack, only those it accepts."""
    accepted = inspect.signature(start_stack).parameters
    # Notices after 5 s (the shortest allowed), a quick reconnect once the device is back.
    options: dict[str, Any] = {"panda_options": {"offline_warning_delay": 5,
                                                 "reconnect_max_delay": 1}}
    note = ""
    if "heater_setup" in accepted:
        options["heater_setup"] = setup
    elif setup != "heater_panda_breath":
        note = "this testbed's start_stack has no heater_setup option: ran the default setup"
    if "printer_data" in accepted:
        options["printer_data"] = True  # laid out as on a printer: no UI warnings
    if "klippy_mcu" in accepted:
        # klippy with a running MCU clock, as on a printer: heater_generic takes readings.
        options["klippy_mcu"] = "sim"
    return options, note


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in (*out.glob("*.png"), out / "checks.json", out / "report.txt"):
        old.unlink(missing_ok=True)
    shutil.rmtree(out / "logs", ignore_errors=True)
    (out / "logs").mkdir()
    report = Report(out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(1))
    workdir = Path(tempfile.mkdtemp(prefix="ui_check-"))
    stack: Stack | None = None
    options, note = stack_options(args.setup)
    print(f"ui_check: setup {args.setup}, firmware {args.firmware}, checks {args.checks}, "
          f"UIs {', '.join(args.uis)}, output {out}", flush=True)
    if note:
        print(f"ui_check: {note}", flush=True)
    try:
        with ExitStack() as cleanup:
            port = free_port()
            web: list[tuple[WebUI, str]] = []
            for kind, source in (("mainsail", args.mainsail), ("fluidd", args.fluidd)):
                if kind not in args.uis:
                    continue
                ui: WebUI = (Mainsail if kind == "mainsail" else Fluidd)(source.resolve(), port)
                try:
                    folder = ui.prepare(workdir / kind)
                except Exception as exc:  # noqa: BLE001
                    report.add(kind, "UI copy", FAIL, f"{type(exc).__name__}: {exc}")
                    continue
                web.append((ui, cleanup.enter_context(serve_directory(folder))))
            origins = tuple(url for _, url in web)
            t0 = time.monotonic()
            stack = start_stack(workdir / "stack", args.firmware, moonraker_port=port,
                                cors_domains=origins, **options)
            print(f"ui_check: stack up in {time.monotonic() - t0:.1f}s (Moonraker "
                  f"{stack.moonraker.url}, heater object '{stack.heater_object}')", flush=True)
            if web:
                browser = cleanup.enter_context(Chromium(workdir / "chromium"))
                pages = []
                for ui, url in web:
                    print(f"ui_check: {ui.name} at {url}", flush=True)
                    opened = check_web_ui(ui, url, browser, stack, report, args.checks)
                    pages += [opened] if opened is not None else []
                print("ui_check: live notices in " + ", ".join(p.ui.name for p in pages),
                      flush=True)
                check_notices(pages, stack, report)
                for opened in pages:
                    close_page(opened.ui, opened.page, report)
            if "klipperscreen" in args.uis:
                print("ui_check: klipperscreen", flush=True)
                source = args.klipperscreen.resolve()
                if not (source / "screen.py").exists():
                    report.add("klipperscreen", "starts and connects", FAIL,
                               f"no screen.py in {source}: not a KlipperScreen source tree")
                else:
                    check_klipperscreen(source, workdir, stack, args.setup, report)
    except Exception as exc:  # noqa: BLE001 - the stack or browser failed to start
        traceback.print_exc()
        report.add("stack", "start", FAIL, f"{type(exc).__name__}: {exc}")
    finally:
        if stack is not None:
            stack.stop()
            for path in (stack.moonraker.log_path, stack.klippy.log_path, stack.sim.log_path):
                if path.exists():
                    shutil.copyfile(path, out / "logs" / path.name)
        if args.keep:
            print(f"ui_check: working folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - began
    counts = {s: sum(c.status == s for c in report.checks) for s in (PASS, FAIL, NOT_AVAILABLE)}
    summary = (f"ui_check: {counts[PASS]} checks passed, {counts[FAIL]} failed, "
               f"{counts[NOT_AVAILABLE]} not available, in {elapsed:.0f}s "
               f"(setup {args.setup})")
    text = report.table() + "\n\n" + summary + "\n"
    print("\n" + text)
    print("Screenshots:")
    for path in report.screenshots:
        print(f"  {path}")
    (out / "report.txt").write_text(text)
    (out / "checks.json").write_text(json.dumps({
        "setup": args.setup, "seconds": round(elapsed, 1),
        "checks": [asdict(c) for c in report.checks],
        "screenshots": [str(p) for p in report.screenshots],
    }, indent=2) + "\n")
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
