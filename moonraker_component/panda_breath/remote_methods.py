"""The remote methods Klipper calls on the bridge (the extra and the example macros).

A remote method has no reply: a refusal becomes an error line in Klipper's
console (``KlippyRelay.report_error``), and a call naming no configured
heater is logged and ignored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .config import drying_ranges
from .controller import DeviceController
from .drying import DryingError
from .filtration import FilterError
from .klippy_relay import KlippyRelay
from .model import as_number
from .power_devices import drying_request

if TYPE_CHECKING:
    from .device import PandaBreathDevice


class RemoteMethods:
    def __init__(self, server: Any, relay: KlippyRelay,
                 devices: dict[str, PandaBreathDevice]) -> None:
        self.eventloop = server.get_event_loop()
        self.relay = relay
        #: controller name -> its device (filled as sections are read)
        self.devices = devices
        server.register_remote_method("panda_breath_set_target", self._on_set_target)
        server.register_remote_method("panda_breath_clear_fault", self._on_clear_fault)
        server.register_remote_method("panda_breath_start_drying", self._on_start_drying)
        server.register_remote_method("panda_breath_stop_drying", self._on_stop_drying)
        server.register_remote_method("panda_breath_set_filter", self._on_set_filter)

    def _controller_for(self, heater: Any, what: str) -> DeviceController | None:
        """The device whose Klipper heater a remote method names; None (logged) if none."""
        controller = self.relay.controllers.get(str(heater))
        if controller is None:
            logging.info("panda_breath: %s for unknown heater %r ignored", what, heater)
        return controller

    def _on_set_target(self, heater: Any = None, target: Any = None, **_extra: Any) -> None:
        """Called by the Klipper extra on every target change."""
        controller = self._controller_for(heater, "target")
        if controller is None:
            return
        number = as_number(target)
        if number is None:
            logging.info("panda_breath [%s]: target that is not a finite number ignored",
                         controller.name)
            return
        controller.set_target(number, "klipper")

    def _on_clear_fault(self, heater: Any = None, **_extra: Any) -> None:
        """For a Klipper macro (examples: PANDA_BREATH_CLEAR_FAULT).

        The same explicit user action as POST /server/panda_breath/clear_fault;
        the outcome shows in the heater's ``fault`` and in moonraker.log.
        """
        controller = self._controller_for(heater, "fault clear")
        if controller is not None:
            self.eventloop.create_task(self._clear_fault(controller))

    async def _clear_fault(self, controller: DeviceController) -> None:
        requests = self.devices[controller.name].requests
        await requests.first_state()
        why = requests.clear_fault()
        if why is None:
            logging.info("panda_breath [%s]: fault clear requested from Klipper", controller.name)
        else:
            self.relay.report_error(controller, "fault not cleared: " + why)

    def _on_start_drying(
        self, heater: Any = None, temperature: Any = None, hours: Any = None, **_extra: Any
    ) -> None:
        """For PANDA_BREATH_DRY_START (examples; HelixScreen sends it): the power device's cycle."""
        controller = self._controller_for(heater, "drying")
        if controller is None:
            return
        self.eventloop.create_task(self._start_drying(controller, temperature, hours))

    async def _start_drying(self, controller: DeviceController, temperature: Any,
                            hours: Any) -> None:
        try:
            cfg = self.devices[controller.name].cfg
            request = drying_request(
                temperature, hours, *drying_ranges(cfg.firmware, cfg.device_max_temp))
            # The macro may follow a target change (TURN_OFF_HEATERS) that the
            # KlipperScreen setup forwards only at its next poll: ask first.
            await self.relay.refresh_target(controller)
            await self.devices[controller.name].requests.first_state()
            self.devices[controller.name].requests.start_drying(*request)
        except DryingError as exc:
            self.relay.report_error(controller, "drying not started: %s" % exc)
        except Exception:  # noqa: BLE001 - a request must never take the component down
            logging.exception("panda_breath [%s]: drying request failed", controller.name)

    def _on_stop_drying(self, heater: Any = None, **_extra: Any) -> None:
        """For PANDA_BREATH_DRY_STOP."""
        controller = self._controller_for(heater, "drying stop")
        if controller is not None:
            self.devices[controller.name].requests.stop_drying()

    def _on_set_filter(self, heater: Any = None, on: Any = None, **_extra: Any) -> None:
        """For PANDA_BREATH_FILTER ON=1|0 (examples): the filter power device."""
        controller = self._controller_for(heater, "filter")
        if controller is None:
            return
        if isinstance(on, bool) or on in (0, 1):
            self.eventloop.create_task(self._set_filter(controller, bool(on)))
        else:
            self.relay.report_error(controller, "filter not switched: ON must be 1 or 0, not %r"
                                    % (on,))

    async def _set_filter(self, controller: DeviceController, on: bool) -> None:
        requests = self.devices[controller.name].requests
        await requests.first_state()
        try:
            requests.set_filter(on)
        except FilterError as exc:
            self.relay.report_error(controller, "filter not switched: %s" % exc)
