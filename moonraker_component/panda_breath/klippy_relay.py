"""Carries chamber readings into Klipper's ``heater_panda_breath`` objects and targets back.

Readings go through the extra's ``heater_panda_breath/update`` endpoint, never
through G-code: a G-code script would wait behind ``TEMPERATURE_WAIT`` and the
wait would never see the temperature it waits for.  Each reply carries the
heater's current target, and a status subscription (renewed on every
``klippy_ready``, as Moonraker drops subscriptions on disconnect) reports
target changes too, so a lost remote-method call is reconciled within a push.

Klipper's heater object also shows what ``klipper_state`` decides (link,
fault, power, the device's set point and target range, drying, HelixScreen's
object).  That changes without a reading (an outage brings no frames), so
every change is pushed at once, without a temperature; only device readings
carry one, and Klipper's staleness check stays honest.

Only changes travel: a reading equal to the one Klipper has is not pushed,
except as a keep-alive a third of the heater's ``stale_timeout`` after the
last push (10 s at the default 30 s).  Keep-alives ride on device frames, so a
device that goes quiet still goes stale in Klipper; a third leaves room for
two lost keep-alives (or slow frames) before Klipper calls the reading stale.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .klipper_state import klipper_state
from .model import DeviceReport

if TYPE_CHECKING:
    from .controller import DeviceController

UPDATE_ENDPOINT = "heater_panda_breath/update"
OBJECT_PREFIX = "heater_panda_breath "
#: The opt-in KlipperScreen setup: a stock heater fed by the extra's sensor type.
GENERIC_PREFIX = "heater_generic "
GENERIC_SENSOR_TYPE = "panda_breath"
#: The longest console line a refusal makes.
MAX_CONSOLE_CHARS = 300
#: The extra's default ``stale_timeout``, for a heater whose settings do not say.
DEFAULT_STALE_TIMEOUT_S = 30.0
#: An unchanged reading is pushed again after this share of ``stale_timeout``.
KEEPALIVE_SHARE = 1.0 / 3.0


def console_error(heater_object: str, message: str) -> str:
    """``!! <Klipper's heater object>: <message>``, one line of a readable length."""
    return "!! " + " ".join(f"{heater_object}: {message}".split())[:MAX_CONSOLE_CHARS]


class KlippyRelay:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.eventloop = server.get_event_loop()
        self.klippy_apis: Any = None
        self.ready = False
        self.controllers: dict[str, DeviceController] = {}
        self._in_flight: set[str] = set()
        #: heater -> the next push: a reading, or None for the state alone.
        self._pending: dict[str, DeviceReport | None] = {}
        #: heater -> the state Klipper was last told.
        self._pushed_state: dict[str, dict[str, Any]] = {}
        self.push_errors: dict[str, str | None] = {}
        self.last_push: dict[str, float] = {}
        #: heater -> (the reading Klipper has, when it was pushed).
        self._pushed_reading: dict[str, tuple[float, float]] = {}
        #: heater -> when a reading was last offered (pushed or not), for the status API.
        self.last_reading: dict[str, float] = {}
        self.pushes: dict[str, int] = {}
        #: heater -> its stale_timeout in printer.cfg (read when Klipper is ready).
        self.stale_timeouts: dict[str, float] = {}
        self.heater_found: dict[str, bool | None] = {}
        #: heater -> the Klipper object that holds its target (per setup)
        self.objects: dict[str, str] = {}
        self._warnings: dict[str, str] = {}

    def attach(self, controller: DeviceController) -> None:
        self.controllers[controller.heater] = controller
        self.objects[controller.heater] = OBJECT_PREFIX + controller.heater
        self.heater_found[controller.heater] = None
        self.push_errors[controller.heater] = None

    # Temperature pushes ------------------------------------------------------

    def submit(self, controller: DeviceController, report: DeviceReport) -> None:
        """Queue the newest reading unless Klipper has it and no keep-alive is due;
        at most one push per heater is in flight."""
        if not self.ready:
            return
        heater, now = controller.heater, self.eventloop.get_loop_time()
        self.last_reading[heater] = now
        pushed = self._pushed_reading.get(heater)
        if (pushed is not None and pushed[0] == controller.klipper_reading(report)
                and now - pushed[1] < self.keepalive_interval(heater)):
            return
        self._pending[heater] = report
        self._start(controller)

    def keepalive_interval(self, heater: str) -> float:
        """How long an unchanged reading waits before it is pushed again."""
        return self.stale_timeouts.get(heater, DEFAULT_STALE_TIMEOUT_S) * KEEPALIVE_SHARE

    def state_changed(self, controller: DeviceController) -> None:
        """Queue a push of the state alone, unless Klipper already has it."""
        heater = controller.heater
        if not self.ready or heater in self._pending:
            return  # a queued push carries the newest state anyway
        if self._pushed_state.get(heater) == klipper_state(controller, time.monotonic()):
            return
        self._pending[heater] = None
        self._start(controller)

    def report_error(self, controller: DeviceController, message: str) -> None:
        """A refused request: one error line in the console, written the way
        Moonraker writes its own (every UI and KlipperScreen show it, and
        Moonraker's G-code store keeps it), and in moonraker.log."""
        logging.info("panda_breath [%s]: %s", controller.name, message)
        self.server.send_event(
            "server:gcode_response", console_error(self.objects[controller.heater], message))

    def _start(self, controller: DeviceController) -> None:
        heater = controller.heater
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

    async def _push(self, controller: DeviceController, report: DeviceReport | None) -> None:
        heater = controller.heater
        state = klipper_state(controller, time.monotonic())
        params: dict[str, Any] = {"heater": heater, **state}
        reading = None if report is None else controller.klipper_reading(report)
        if reading is not None:
            params["temperature"] = reading
            # Set before the await, so a reading equal to this one waits
            self._pushed_reading[heater] = (reading, self.eventloop.get_loop_time())
        seen_version = controller.target_version
        try:
            result = await klippy_request(self.klippy_apis, UPDATE_ENDPOINT, params)
        except Exception as exc:  # noqa: BLE001 - Klippy errors arrive as ServerError
            self._pushed_reading.pop(heater, None)
            self._push_failed(controller, str(exc))
            return
        self._pushed_state[heater] = state
        self.pushes[heater] = self.pushes.get(heater, 0) + 1
        if state["drying"]:  # the countdown, each second
            self.eventloop.delay_callback(1.0, self.state_changed, controller)
        if "temperature" in params:
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
        # The reading first, before anything else: Klipper refuses a target
        # once stale_timeout has passed without one, and a queued print or a
        # [delayed_gcode] may set one right now.
        for controller in self.controllers.values():
            link = controller.link
            fresh = link is not None and link.is_up() and (link.last_frame_age() or 0) < 10
            if controller.chamber_temp is not None and fresh:
                self.submit(controller, DeviceReport(chamber_temp=controller.chamber_temp))
            else:
                self.state_changed(controller)
        await self._check_heaters()
        objects: dict[str, list[str] | None] = {
            self.objects[heater]: ["target"] for heater in self.controllers
        }
        for controller in self.controllers.values():
            if controller.chamber_sensor:
                objects[controller.chamber_sensor] = ["temperature"]
        try:
            status = await self.klippy_apis.subscribe_objects(objects, self._on_status_update)
        except Exception as exc:  # noqa: BLE001
            logging.info("panda_breath: subscribing to heater targets failed: %s", exc)
            return
        self._on_status_update(status)

    def on_klippy_gone(self) -> None:
        self.ready = False
        self._pending.clear()
        self._pushed_state.clear()
        self._pushed_reading.clear()

    async def refresh_target(self, controller: DeviceController) -> None:
        """Ask Klipper for the heater's target now, before acting on a request."""
        name = self.objects[controller.heater]
        try:
            status = await self.klippy_apis.query_objects({name: ["target"]})
        except Exception as exc:  # noqa: BLE001 - Klippy errors arrive as ServerError
            logging.info("panda_breath [%s]: querying the target failed: %s",
                         controller.name, exc)
            return
        fields = status.get(name)
        if isinstance(fields, dict) and "target" in fields:
            controller.adopt_klipper_target(fields["target"], None)

    async def _check_heaters(self) -> None:
        try:
            status = await self.klippy_apis.query_objects(
                {"heaters": ["available_heaters"], "configfile": ["settings"]}
            )
        except Exception as exc:  # noqa: BLE001
            logging.info("panda_breath: querying Klipper's heaters failed: %s", exc)
            return
        available = set(status.get("heaters", {}).get("available_heaters", []))
        await self._check_chamber_sensors()
        settings = status.get("configfile", {}).get("settings", {})
        for heater, controller in self.controllers.items():
            full_name = OBJECT_PREFIX + heater
            generic = GENERIC_PREFIX + heater
            if full_name not in available and generic in available and (
                settings.get(generic, {}).get("sensor_type") == GENERIC_SENSOR_TYPE
            ):
                full_name = generic  # the KlipperScreen setup
            self.objects[heater] = full_name
            found = full_name in available
            self.heater_found[heater] = found
            if not found:
                self._warn(
                    heater,
                    f"[panda_breath {controller.name}]: Klipper has no [{full_name}] section "
                    f"(nor a [{generic}] with sensor_type: {GENERIC_SENSOR_TYPE}); the chamber "
                    f"heater cannot be controlled from Klipper. Add one to printer.cfg or set "
                    f"'heater' to the name used there.",
                )
                continue
            self._clear_warning(heater)
            # Targets are limited by the heater's device_max_temp (and, on
            # older extras, by max_temp, which used to be the target limit too).
            section = settings.get(full_name, {})
            stale = section.get("stale_timeout")
            if isinstance(stale, (int, float)) and not isinstance(stale, bool) and stale > 0:
                self.stale_timeouts[heater] = float(stale)
            limits = [controller.device_max_target] + [
                float(value) for value in (section.get("device_max_temp"), section.get("max_temp"))
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            ]
            controller.max_target = min(limits)
            controller.on_status_changed()

    async def _check_chamber_sensors(self) -> None:
        """A chamber_sensor Klipper does not have is a warning naming the option."""
        sensors = {c.chamber_sensor: c for c in self.controllers.values() if c.chamber_sensor}
        if not sensors:
            return
        try:
            objects = set(await self.klippy_apis.get_object_list())
        except Exception as exc:  # noqa: BLE001
            logging.info("panda_breath: listing Klipper's objects failed: %s", exc)
            return
        for name, controller in sensors.items():
            warn_id = f"panda_breath_sensor_{controller.name}"
            if name in objects:
                if self._warnings.pop(warn_id, None) is not None:
                    self.server.remove_warning(warn_id)
                continue
            message = (
                f"[panda_breath {controller.name}]: option 'chamber_sensor': Klipper has no "
                f"object '{name}'; Klipper's heater gets no reading until it exists."
            )
            if self._warnings.get(warn_id) != message:
                self._warnings[warn_id] = message
                self.server.add_warning(message, warn_id=warn_id)

    def _on_status_update(self, status: dict[str, Any], eventtime: float | None = None) -> None:
        for heater, controller in self.controllers.items():
            fields = status.get(self.objects[heater])
            if isinstance(fields, dict) and "target" in fields:
                controller.adopt_klipper_target(fields["target"], None)
            if controller.chamber_sensor:
                sensor = status.get(controller.chamber_sensor)
                if isinstance(sensor, dict) and "temperature" in sensor:
                    controller.on_printer_reading(sensor["temperature"])

    # Warnings ----------------------------------------------------------------

    def _warn(self, heater: str, message: str) -> None:
        if self._warnings.get(heater) != message:
            self._warnings[heater] = message
            self.server.add_warning(message, warn_id=f"panda_breath_heater_{heater}")

    def _clear_warning(self, heater: str) -> None:
        if self._warnings.pop(heater, None) is not None:
            self.server.remove_warning(f"panda_breath_heater_{heater}")

    def describe(self, heater: str) -> dict[str, Any]:
        now = self.eventloop.get_loop_time()
        last, offered = self.last_push.get(heater), self.last_reading.get(heater)
        return {
            "klippy_ready": self.ready,
            "klipper_heater_found": self.heater_found.get(heater),
            "last_push_age": None if last is None else round(now - last, 2),
            "last_reading_age": None if offered is None else round(now - offered, 2),
            "pushes": self.pushes.get(heater, 0),
            "keepalive_interval": self.keepalive_interval(heater),
            "push_error": self.push_errors.get(heater),
        }


async def klippy_request(klippy_apis: Any, endpoint: str, params: dict[str, Any]) -> Any:
    """A request to an endpoint of the Klipper extra.

    Moonraker's public Klippy API (``klippy_apis``) has calls only for
    Klipper's own endpoints; the alternative, ``KlippyConnection.request``,
    needs Moonraker's internal ``WebRequest`` built by hand.  The private
    ``_send_klippy_request`` builds it the same way in Moonraker 0.10 and 0.11,
    so it is used here, and only here.
    """
    return await klippy_apis._send_klippy_request(endpoint, params)
