"""HelixScreen's chamber panel, as a reader of Moonraker: what it would discover and show.

A model written from the contract in ``../shared/reference/
dragonbreath-and-helixscreen.md`` Part C (discovery scoring C.2, the
``panda_breath`` backend's fields and rules C.3, the ceiling C.4), not
HelixScreen's code.  ``HelixReader`` talks to a real Moonraker the way
HelixScreen does: ``printer.objects.list``, discovery, then one
``printer.objects.subscribe`` whose initial status and every
``notify_status_update`` delta feed the :class:`ChamberPanel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from testbed import wait_until
from testbed.ui_client import UiClient

#: Registry order decides ties: the first backend with the highest score wins.
BACKENDS = ("generic", "dragonbreath", "panda_breath")
#: Only these objects are scored, with this weight added to score x 10.
TYPE_WEIGHTS = {"heater_generic": 2, "temperature_fan": 1}
GENERIC_KEYWORDS = (("CHAMBER", 100), ("ENCLOSURE", 90), ("CAVITY", 85))
AIR_QUALITY_TOKENS = ("TVOC", "VOC", "CO2", "GAS", "HUMIDITY", "IAQ", "AQI", "PM25", "PM10",
                      "PARTICULATE", "PRESSURE")
#: Keys that mark a ``panda_breath`` frame as the stock-style backend's.
PANDA_KEYS = ("connected", "work_mode", "work_on", "device_target", "auto_enabled",
              "auto_target", "auto_filtertemp", "auto_hotbedtemp", "filament_temp",
              "filament_timer", "remaining_seconds", "filament_drying_active")
WORK_MODE_KLIPPER = 2
#: Consecutive ``connected: false`` reports before the offline banner shows.
OFFLINE_REPORTS = 4
#: The panda_breath backend's ceiling when the heater's section has no max_temp.
CONSERVATIVE_MAX_TEMP = 60.0
DEFAULT_MAX_TEMP = 80.0


def _tokens(upper: str) -> list[str]:
    return upper.replace("_", " ").split()


def generic_score(name: str) -> int:
    upper = name.upper()
    matched = [(k, s) for k, s in GENERIC_KEYWORDS if k in upper]
    if not matched and "BOX" in _tokens(upper):
        matched = [("BOX", 60)]
    if not matched:
        return 0
    keyword, score = matched[0]
    if upper != keyword:
        score -= 1
    if any(token in _tokens(upper) for token in AIR_QUALITY_TOKENS):
        score -= 40
    return max(score, 1)


def backend_score(backend: str, name: str) -> int:
    lower = name.lower()
    if backend == "generic":
        return generic_score(name)
    if backend == "dragonbreath":
        return 95 if "dragonbreath" in lower else 0
    return 95 if "panda_breath" in lower or "pandabreath" in lower else 0


@dataclass
class Discovery:
    heater: str | None = None
    backend: str | None = None

    @property
    def diagnostics_object(self) -> str | None:
        return None if self.backend in (None, "generic") else self.backend


def discover(objects: list[str]) -> Discovery:
    """The chamber heater and backend HelixScreen picks from Klipper's object list."""
    best = Discovery()
    best_rank = 0
    for obj in objects:
        kind, _, name = obj.partition(" ")
        if kind not in TYPE_WEIGHTS or not name:
            continue
        score, backend = 0, None
        for candidate in BACKENDS:
            s = backend_score(candidate, name)
            if s > score:
                score, backend = s, candidate
        rank = score * 10 + TYPE_WEIGHTS[kind] if score else 0
        if rank > best_rank:
            best_rank, best = rank, Discovery(obj, backend)
    return best


@dataclass
class ChamberPanel:
    """What the chamber panel shows; fields absent from a frame are "no news"."""

    discovery: Discovery
    ceiling: float = DEFAULT_MAX_TEMP
    temperature: float | None = None
    target: float | None = None
    power_percent: int | None = None
    offline: bool = False
    offline_run: int = 0
    external: bool = False
    drying: bool = False
    drying_remaining_s: int | None = None
    drying_target_c: int | None = None
    drying_duration_min: int | None = None
    frames: int = 0
    work_on_reports: list[bool] = field(default_factory=list)  # the test's view, not a panel's
    connected_reports: list[bool] = field(default_factory=list)

    def apply(self, status: dict[str, Any]) -> None:
        self.frames += 1
        heater = status.get(self.discovery.heater or "")
        if isinstance(heater, dict):
            if _is_number(heater.get("temperature")):
                self.temperature = float(heater["temperature"])
            if _is_number(heater.get("target")):
                self.target = float(heater["target"])
            if _is_number(heater.get("power")):
                self.power_percent = min(100, max(0, round(heater["power"] * 100)))
        diag = status.get(self.discovery.diagnostics_object or "")
        if self.discovery.backend == "panda_breath" and isinstance(diag, dict):
            self._apply_panda_breath(diag)

    def _apply_panda_breath(self, diag: dict[str, Any]) -> None:
        if not any(key in diag for key in PANDA_KEYS):
            return
        if "connected" in diag:
            # An unreadable value is not evidence that the device is gone.
            connected = diag["connected"] if isinstance(diag["connected"], bool) else True
            self.connected_reports.append(connected)
            if connected:
                self.offline_run = 0
                self.offline = False
            else:
                self.offline_run += 1
                if self.offline_run >= OFFLINE_REPORTS:
                    self.offline = True
        if isinstance(diag.get("work_on"), bool):
            self.work_on_reports.append(diag["work_on"])
        if "work_mode" in diag and "work_on" in diag:
            mode = diag["work_mode"] if _is_int(diag["work_mode"]) else WORK_MODE_KLIPPER
            on = diag["work_on"] if isinstance(diag["work_on"], bool) else False
            self.external = on and mode != WORK_MODE_KLIPPER
        if isinstance(diag.get("filament_drying_active"), bool):
            self.drying = diag["filament_drying_active"]
        if _is_int(diag.get("remaining_seconds")):
            self.drying_remaining_s = max(0, diag["remaining_seconds"])
        if _is_number(diag.get("filament_temp")):
            self.drying_target_c = round(diag["filament_temp"])
        if _is_int(diag.get("filament_timer")):
            self.drying_duration_min = diag["filament_timer"] * 60


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def ceiling(settings: dict[str, Any], heater: str, backend: str | None) -> float:
    """The keypad's ceiling: the section's max_temp, else the backend's cap, else 80."""
    section = settings.get(heater.lower(), {})
    if _is_number(section.get("max_temp")):
        return float(section["max_temp"])
    if backend in ("panda_breath", "dragonbreath"):
        return CONSERVATIVE_MAX_TEMP
    return DEFAULT_MAX_TEMP


class HelixReader(UiClient):
    """A Moonraker WebSocket client that discovers and subscribes like HelixScreen."""

    def __init__(self, moonraker_url: str) -> None:
        self.panel: ChamberPanel | None = None
        self.discovery = Discovery()
        super().__init__(moonraker_url)

    def _count(self, message: dict[str, Any]) -> None:
        super()._count(message)
        if message["method"] == "notify_status_update" and self.panel:
            self.panel.apply(message["params"][0])

    def start(self) -> ChamberPanel:
        """Object list -> discovery -> subscription; returns the panel it feeds."""
        objects = self.call("printer.objects.list")["objects"]
        self.discovery = discover(objects)
        assert self.discovery.heater is not None, f"no chamber heater among {objects}"
        config = self.call("printer.objects.query",
                           {"objects": {"configfile": ["settings"]}})
        settings = config["status"]["configfile"]["settings"]
        with self._changed:
            self.panel = ChamberPanel(
                self.discovery, ceiling(settings, self.discovery.heater, self.discovery.backend)
            )
        subscription: dict[str, Any] = {self.discovery.heater: None}
        if self.discovery.diagnostics_object:
            subscription[self.discovery.diagnostics_object] = None
        initial = self.call("printer.objects.subscribe", {"objects": subscription})
        with self._changed:
            self.panel.apply(initial["status"])
        return self.panel

    def wait(self, predicate: Callable[[ChamberPanel], bool], timeout: float, what: str) -> None:
        def holds() -> bool:
            with self._changed:
                return self.panel is not None and predicate(self.panel)
        wait_until(holds, timeout, 0.05, what)
