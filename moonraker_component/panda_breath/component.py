"""The Moonraker component: wires device links, controllers and Klippy together.

One ``[panda_breath]`` or ``[panda_breath NAME]`` section per device.  The
component registers the ``panda_breath_set_target`` remote method the Klipper
extra calls, switches every device off when Klipper shuts down or
disconnects and when Moonraker stops, and serves
``/server/panda_breath/status`` plus a rate-limited
``notify_panda_breath_status_changed`` websocket notification.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

from .config import MQTT_FIRMWARES, DeviceConfig, read_device_config
from .controller import KLIPPER_GRACE_S, DeviceController
from .device import PandaBreathDevice
from .device_notices import DeviceNotices
from .device_warnings import DeviceWarnings
from .klippy_relay import KlippyRelay
from .links import make_link, restart_backoff
from .moonraker_components import load_mqtt, load_power
from .mqtt_link import MqttDeviceLink
from .notices import Notices
from .power_devices import add_power_device, create_drying_device, create_filter_device
from .remote_methods import RemoteMethods
from .supervisor import LinkSupervisor

if TYPE_CHECKING:
    from moonraker.common import WebRequest
    from moonraker.confighelper import ConfigHelper

STATUS_EVENT = "panda_breath:panda_breath_status_changed"
#: At most one status notification per this many seconds (the last state wins).
NOTIFY_INTERVAL_S = 0.5
#: How long Moonraker's shutdown may wait for the OFF frames to leave.
EXIT_FLUSH_S = 1.5


class PandaBreath:
    def __init__(self, config: ConfigHelper) -> None:
        self.server = config.get_server()
        self.eventloop = self.server.get_event_loop()
        self.relay = KlippyRelay(self.server)
        self.notices = Notices(self.server)
        self.devices: dict[str, PandaBreathDevice] = {}
        self._notify_handle: asyncio.TimerHandle | None = None
        self._last_notify = 0.0
        self._closing = False
        #: Moonraker's own MQTT client, loaded when a section needs it.
        self.mqtt: Any = None
        #: Moonraker's power component, which lists our drying and filter devices.
        self.power: Any = None
        self._mqtt_problem: str | None = None
        for section in _device_sections(config):
            self._add_device(config.getsection(section))
        if self.mqtt is not None:
            self.server.register_event_handler("mqtt:connected", self._on_mqtt_connected)
            self.server.register_event_handler("mqtt:disconnected", self._on_mqtt_disconnected)
        self.server.register_endpoint(
            "/server/panda_breath/status", ["GET"], self._handle_status_request
        )
        self.server.register_endpoint(
            "/server/panda_breath/clear_fault", ["POST"], self._handle_clear_fault
        )
        # Only with Moonraker's -g (older Moonrakers lack it): lets the fault
        # suite prove a failed link recovers.
        register_debug = getattr(self.server, "register_debug_endpoint", None)
        if register_debug is not None:
            register_debug("/debug/panda_breath/fail_link", ["POST"], self._handle_fail_link)
        self.server.register_notification(STATUS_EVENT)
        self.remote_methods = RemoteMethods(self.server, self.relay, self.devices)
        self.server.register_event_handler("server:klippy_ready", self._on_klippy_ready)
        self.server.register_event_handler("server:klippy_shutdown", self._on_klippy_shutdown)
        self.server.register_event_handler("server:klippy_disconnect", self._on_klippy_disconnect)

    def _add_device(self, section_config: Any) -> None:
        cfg = read_device_config(section_config)
        self._check_mqtt(cfg, section_config)
        heater_owner = next(
            (d.cfg.section for d in self.devices.values() if d.cfg.heater == cfg.heater), None
        )
        if heater_owner is not None:
            cfg.errors.append(
                f"option 'heater': '{cfg.heater}' is already driven by [{heater_owner}]"
            )
        if cfg.errors:
            self.server.add_warning(
                f"[{cfg.section}]: device not started because of configuration errors:\n"
                + "\n".join("  " + err for err in cfg.errors),
                warn_id=f"panda_breath_config_{cfg.name}",
            )
            return
        controller = DeviceController(
            cfg.name, cfg.heater, cfg.device_max_temp, self.relay, self._schedule_notify,
            temperature_offset=cfg.temperature_offset, chamber_sensor=cfg.chamber_sensor,
            regulation_interval=cfg.regulation_interval,
        )
        link = make_link(cfg, controller, self.mqtt)
        controller.link = link
        self.relay.attach(controller)
        supervisor = LinkSupervisor(
            link, restart_backoff(cfg), lambda failure: self._on_link_failure(cfg, failure),
        )
        warnings = DeviceWarnings(self.server, cfg, link, controller)
        self.devices[cfg.name] = PandaBreathDevice(
            cfg, controller, link, supervisor, warnings, section_config, DeviceNotices(
                self.notices, cfg, link, controller, lambda: self.relay.objects[cfg.heater]))
        if (link.supports_drying or link.supports_filter) and self.power is None:
            self.power = load_power(self.server, section_config)

    # Moonraker's MQTT client ---------------------------------------------------

    def _check_mqtt(self, cfg: DeviceConfig, config: ConfigHelper) -> None:
        """An MQTT firmware needs Moonraker's [mqtt] component; without it the
        section is a configuration error (the bridge opens no broker connection
        of its own)."""
        if cfg.firmware not in MQTT_FIRMWARES or cfg.errors:
            return
        if self.mqtt is None and self._mqtt_problem is None:
            self.mqtt, self._mqtt_problem = load_mqtt(self.server, config)
        if self.mqtt is None:
            cfg.errors.append(
                f"option 'firmware': '{cfg.firmware}' reaches the device through Moonraker's "
                f"MQTT client, but {self._mqtt_problem}"
            )

    def _mqtt_links(self) -> list[MqttDeviceLink]:
        return [d.link for d in self.devices.values() if isinstance(d.link, MqttDeviceLink)]

    def _on_mqtt_connected(self) -> None:
        for link in self._mqtt_links():
            link.on_broker_connected()

    def _on_mqtt_disconnected(self) -> None:
        for link in self._mqtt_links():
            link.on_broker_disconnected()

    # Moonraker lifecycle -------------------------------------------------------

    async def component_init(self) -> None:
        self.relay.klippy_apis = self.server.lookup_component("klippy_apis")
        for device in self.devices.values():
            device.task = self.eventloop.create_task(device.supervisor.run())
        await self._add_power_devices()
        self.eventloop.delay_callback(KLIPPER_GRACE_S, self._end_startup_grace)
        await self.notices.start()  # after removing the last run's entries
        for device in self.devices.values():
            device.warnings.update()
            device.notices.update()

    async def _add_power_devices(self) -> None:
        if self.power is None:
            return
        for device in self.devices.values():
            cfg, config, controller = device.cfg, device.section_config, device.controller
            if device.link.supports_drying:
                device.drying_device = await add_power_device(
                    self.server, self.power, cfg, "drying", "drying", functools.partial(
                        create_drying_device, config, controller, device.requests,
                        temperature=cfg.drying_temperature, hours=cfg.drying_hours))
            if device.link.supports_filter:
                device.filter_device = await add_power_device(
                    self.server, self.power, cfg, "filter", "filtration",
                    functools.partial(create_filter_device, config, controller,
                                      device.requests))

    def _end_startup_grace(self) -> None:
        for device in self.devices.values():
            device.controller.assume_off_if_unknown()

    def _on_link_failure(self, cfg: DeviceConfig, failure: str) -> None:
        """A bug of ours stopped the link; it restarts, and the owner is told."""
        self.server.add_warning(
            f"[{cfg.section}]: the device link stopped on an internal error ({failure}) and "
            "was restarted; the desired state is resent on reconnect. Please report this "
            "with moonraker.log.",
            warn_id=f"panda_breath_link_{cfg.name}",
        )
        self.devices[cfg.name].notices.link_failed(failure)
        self._schedule_notify()

    async def on_exit(self) -> None:
        """Moonraker is stopping: the device goes off while the socket is still open."""
        self._closing = True
        for device in self.devices.values():
            device.warnings.closing = device.notices.closing = True
            device.controller.force_off("Moonraker stopping")
        await asyncio.gather(
            *(d.link.flush(EXIT_FLUSH_S) for d in self.devices.values()), return_exceptions=True
        )

    async def close(self) -> None:
        self._closing = True
        if self._notify_handle is not None:
            self._notify_handle.cancel()
        for device in self.devices.values():
            device.warnings.closing = device.notices.closing = True
            device.supervisor.stop()
            await device.link.close()
        tasks = [d.task for d in self.devices.values() if d.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=2.0)
            for task in pending:
                task.cancel()

    # Klippy events -------------------------------------------------------------

    async def _on_klippy_ready(self) -> None:
        await self.relay.on_klippy_ready()

    def _on_klippy_shutdown(self) -> None:
        for device in self.devices.values():
            device.controller.force_off("Klipper shutdown")

    def _on_klippy_disconnect(self) -> None:
        self.relay.on_klippy_gone()
        for device in self.devices.values():
            device.controller.force_off("Klipper disconnected")

    # Status and endpoints ------------------------------------------------------

    def status(self) -> dict[str, Any]:
        devices = {}
        for name, device in self.devices.items():
            info = device.controller.describe()
            info["firmware"] = device.cfg.firmware
            if device.cfg.firmware == "stock":
                info["host"] = device.cfg.host
                info["port"] = device.cfg.port
            info.update(self.relay.describe(device.cfg.heater))
            info["link_failures"] = device.supervisor.failures
            info["last_link_failure"] = device.supervisor.last_failure
            devices[name] = info
        return {"devices": devices}

    async def _handle_status_request(self, web_request: WebRequest) -> dict[str, Any]:
        return self.status()

    def _device_named(self, web_request: WebRequest) -> PandaBreathDevice:
        name = web_request.get_str("name", next(iter(self.devices), ""))
        device = self.devices.get(name)
        if device is None:
            raise self.server.error(f"no panda_breath device named '{name}'", 404)
        return device

    async def _handle_clear_fault(self, web_request: WebRequest) -> dict[str, Any]:
        """The explicit user action that clears a latched device fault (DragonBreath).

        The bridge never clears one on its own: the device latched it for a reason.
        """
        device = self._device_named(web_request)
        await device.requests.first_state()
        why = device.requests.clear_fault()
        if why is not None:
            raise self.server.error(f"[{device.cfg.section}]: fault not cleared: {why}", 409)
        logging.info("panda_breath [%s]: fault clear requested by the user", device.cfg.name)
        return {"name": device.cfg.name, "requested": True}

    async def _handle_fail_link(self, web_request: WebRequest) -> dict[str, Any]:
        device = self._device_named(web_request)
        return {"name": device.cfg.name, "injected": device.supervisor.inject_failure()}

    # Notifications -------------------------------------------------------------

    def _schedule_notify(self) -> None:
        for device in self.devices.values():
            device.warnings.update()
            device.notices.update()
            for power_device in (device.drying_device, device.filter_device):
                if power_device is not None:
                    power_device.sync()
        if self._notify_handle is not None or self._closing:
            return
        now = self.eventloop.get_loop_time()
        delay = max(0.0, self._last_notify + NOTIFY_INTERVAL_S - now)
        self._notify_handle = self.eventloop.delay_callback(delay, self._send_notify)

    def _send_notify(self) -> None:
        self._notify_handle = None
        self._last_notify = self.eventloop.get_loop_time()
        self.server.send_event(STATUS_EVENT, self.status())


def _device_sections(config: Any) -> list[str]:
    return [
        section
        for section in config.get_prefix_sections("panda_breath")
        if section == "panda_breath" or section.startswith("panda_breath ")
    ]
