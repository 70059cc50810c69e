"""Carries chamber readings into Klipper's ``heater_panda_breath`` objects and targets back.

Readings go through the extra's ``heater_panda_breath/update`` endpoint, never
through G-code: a G-code script would wait behind ``TEMPERATURE_WAIT`` and the
wait would never see the temperature it waits for.  Each reply carries the
heater's current target, and a status subscription (renewed on every
``klippy_ready``, as Moonraker drops subscriptions on disconnect) reports
target changes too, so a lost remote-method call is reconciled within a push.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .model import DeviceReport

if TYPE_CHECKING:
    from .controller import DeviceController

UPDATE_ENDPOINT = "heater_panda_breath/update"
OBJECT_PREFIX = "heater_panda_breath "


class KlippyRelay:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.eventloop = server.get_event_loop()
        self.klippy_apis: Any = None
        self.ready = False
        self.controllers: dict[str, DeviceController] = {}
        self._in_flight: set[str] = set()
        self._pending: dict[str, DeviceReport] = {}
        self.push_errors: dict[str, str | None] = {}
        self.last_push: dict[str, float] = {}
        self.heater_found: dict[str, bool | None] = {}
        self._warnings: dict[str, str] = {}

    def attach(self, controller: DeviceController) -> None:
        self.controllers[controller.heater] = controller
        self.heater_found[controller.heater] = None
        self.push_errors[controller.heater] = None

    # Temperature pushes ------------------------------------------------------

    def submit(self, controller: DeviceController, report: DeviceReport) -> None:
        """Queue the newest reading; at most one push per heater is in flight."""
        if not self.ready:
            return
        heater = controller.heater
        self._pending[heater] = report
        if heater not in self._in_flight:
            self._in_flight.add(heater)
            self.eventloop.create_task(self._push_loop(controller))

    async def _push_loop(self, controller: DeviceController) -> None:
        heater = controller.heater
        try:
            while self.ready and heater in self._pending:
                report = self._pending.pop(heater)
                await self._push(controller, report)
        finally:
            self._in_flight.discard(heater)

    async def _push(self, controller: DeviceController, report: DeviceReport) -> None:
        heater = controller.heater
        params: dict[str, Any] = {"heater": heater, "temperature": report.chamber_temp}
        heater_on = report.heater_on if report.heater_on is not None else controller.heater_on
        if heater_on is not None:
            params["heater_on"] = bool(heater_on)
        if controller.device_target is not None:
            params["device_target"] = float(controller.device_target)
        if controller.link is not None:
            params["link"] = controller.link.state
        params["fault"] = ", ".join(sorted(controller.faults)) or None
        seen_version = controller.target_version
        try:
            result = await self.klippy_apis._send_klippy_request(UPDATE_ENDPOINT, params)
        except Exception as exc:  # noqa: BLE001 - Klippy errors arrive as ServerError
            self._push_failed(controller, str(exc))
            return
        self.last_push[heater] = self.eventloop.get_loop_time()
        if self.push_errors.get(heater) is not None or not self.heater_found.get(heater):
            self.push_errors[heater] = None
            self.heater_found[heater] = True
            self._clear_warning(heater)
            controller.on_status_changed()
        if isinstance(result, dict):
            controller.adopt_klipper_target(result.get("target"), seen_version)

    def _push_failed(self, controller: DeviceController, message: str) -> None:
        heater = controller.heater
        if self.push_errors.get(heater) == message:
            return
        self.push_errors[heater] = message
        controller.on_status_changed()
        if "not valid for heater" in message or "Unknown" in message or "not found" in message:
            self.heater_found[heater] = False
            self._warn(
                heater,
                f"[panda_breath {controller.name}]: Klipper has no heater named '{heater}'. "
                f"Add a [heater_panda_breath {heater}] section to printer.cfg, or set the "
                f"'heater' option to the name used there.",
            )
        else:
            logging.info("panda_breath [%s]: temperature push failed: %s", controller.name, message)

    # Klippy lifecycle --------------------------------------------------------

    async def on_klippy_ready(self) -> None:
        self.ready = True
        if not self.controllers:
            return
        objects: dict[str, list[str] | None] = {
            OBJECT_PREFIX + heater: ["target"] for heater in self.controllers
        }
        await self._check_heaters()
        try:
            status = await self.klippy_apis.subscribe_objects(objects, self._on_status_update)
        except Exception as exc:  # noqa: BLE001
            logging.info("panda_breath: subscribing to heater targets failed: %s", exc)
            return
        self._on_status_update(status)
        # Feed the heater at once rather than at the device's next frame, so
        # Klipper accepts a target right after it (re)starts.
        for controller in self.controllers.values():
            link = controller.link
            fresh = link is not None and link.is_up() and (link.last_frame_age() or 0) < 10
            if controller.chamber_temp is not None and fresh:
                self.submit(controller, DeviceReport(chamber_temp=controller.chamber_temp))

    def on_klippy_gone(self) -> None:
        self.ready = False
        self._pending.clear()

    async def _check_heaters(self) -> None:
        try:
            status = await self.klippy_apis.query_objects(
                {"heaters": ["available_heaters"], "configfile": ["settings"]}
            )
        except Exception as exc:  # noqa: BLE001
            logging.info("panda_breath: querying Klipper's heaters failed: %s", exc)
            return
        available = set(status.get("heaters", {}).get("available_heaters", []))
        settings = status.get("configfile", {}).get("settings", {})
        for heater, controller in self.controllers.items():
            full_name = OBJECT_PREFIX + heater
            found = full_name in available
            self.heater_found[heater] = found
            if not found:
                self._warn(
                    heater,
                    f"[panda_breath {controller.name}]: Klipper has no [{full_name}] section; "
                    f"the chamber heater cannot be controlled from Klipper. Add it to "
                    f"printer.cfg or set 'heater' to the name used there.",
                )
                continue
            self._clear_warning(heater)
            max_temp = settings.get(full_name, {}).get("max_temp")
            if isinstance(max_temp, (int, float)) and not isinstance(max_temp, bool):
                controller.max_target = min(controller.device_max_target, float(max_temp))
            controller.on_status_changed()

    def _on_status_update(self, status: dict[str, Any], eventtime: float | None = None) -> None:
        for heater, controller in self.controllers.items():
            fields = status.get(OBJECT_PREFIX + heater)
            if isinstance(fields, dict) and "target" in fields:
                controller.adopt_klipper_target(fields["target"], None)

    # Warnings ----------------------------------------------------------------

    def _warn(self, heater: str, message: str) -> None:
        if self._warnings.get(heater) != message:
            self._warnings[heater] = message
            self.server.add_warning(message, warn_id=f"panda_breath_heater_{heater}")

    def _clear_warning(self, heater: str) -> None:
        if self._warnings.pop(heater, None) is not None:
            self.server.remove_warning(f"panda_breath_heater_{heater}")

    def describe(self, heater: str) -> dict[str, Any]:
        last = self.last_push.get(heater)
        now = self.eventloop.get_loop_time()
        return {
            "klippy_ready": self.ready,
            "klipper_heater_found": self.heater_found.get(heater),
            "last_push_age": None if last is None else round(now - last, 2),
            "push_error": self.push_errors.get(heater),
        }
