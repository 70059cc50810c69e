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
import time
from typing import TYPE_CHECKING, Any, Callable

from .backoff import Backoff
from .config import MQTT_FIRMWARES, DeviceConfig, drying_ranges, read_device_config
from .controller import KLIPPER_GRACE_S, DeviceController
from .dragonbreath_link import DragonBreathLink
from .drying import DryingError
from .esphome_mqtt import EsphomeMqttProtocol
from .filtration import FilterError
from .klippy_relay import KlippyRelay
from .link import DeviceLink
from .model import as_number
from .mqtt_link import MqttDeviceLink
from .power_devices import create_drying_device, create_filter_device, drying_request
from .power_devices import device_name as power_device_name
from .stock_mqtt import StockMqttProtocol
from .stock_ws_link import StockWebSocketLink
from .supervisor import LinkSupervisor

if TYPE_CHECKING:
    from moonraker.common import WebRequest
    from moonraker.confighelper import ConfigHelper

STATUS_EVENT = "panda_breath:panda_breath_status_changed"
#: At most one status notification per this many seconds (the last state wins).
NOTIFY_INTERVAL_S = 0.5
#: How long Moonraker's shutdown may wait for the OFF frames to leave.
EXIT_FLUSH_S = 1.5


class PandaBreathDevice:
    """One configured device: its controller, its link and the supervised task running it."""

    def __init__(
        self, cfg: DeviceConfig, controller: DeviceController, link: DeviceLink,
        supervisor: LinkSupervisor,
    ) -> None:
        self.cfg = cfg
        self.controller = controller
        self.link = link
        self.supervisor = supervisor
        self.task: asyncio.Task[None] | None = None
        #: Moonraker power devices for the drying cycle and the filtration
        #: (firmwares that have them).
        self.drying_device: Any = None
        self.filter_device: Any = None
        self.section_config: Any = None
        #: The "unreachable" warning is shown (or its check is scheduled).
        self.offline_warned = False
        self.fault_warning: str | None = None
        self.offline_check: asyncio.TimerHandle | None = None


class PandaBreath:
    def __init__(self, config: ConfigHelper) -> None:
        self.server = config.get_server()
        self.eventloop = self.server.get_event_loop()
        self.relay = KlippyRelay(self.server)
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
        # Only with Moonraker's -g: lets the fault suite prove a failed link recovers.
        self.server.register_endpoint(
            "/server/panda_breath/clear_fault", ["POST"], self._handle_clear_fault
        )
        register_debug = getattr(self.server, "register_debug_endpoint", None)
        if register_debug is not None:
            register_debug("/debug/panda_breath/fail_link", ["POST"], self._handle_fail_link)
        self.server.register_notification(STATUS_EVENT)
        self.server.register_remote_method("panda_breath_set_target", self._on_set_target)
        self.server.register_remote_method("panda_breath_clear_fault", self._on_clear_fault)
        self.server.register_remote_method("panda_breath_start_drying", self._on_start_drying)
        self.server.register_remote_method("panda_breath_stop_drying", self._on_stop_drying)
        self.server.register_remote_method("panda_breath_set_filter", self._on_set_filter)
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
        link = self._make_link(cfg, controller)
        controller.link = link
        self.relay.attach(controller)
        supervisor = LinkSupervisor(
            link, Backoff(first=0.25, cap=cfg.reconnect_max_delay),
            lambda failure: self._on_link_failure(cfg, failure),
        )
        device = PandaBreathDevice(cfg, controller, link, supervisor)
        device.section_config = section_config
        self.devices[cfg.name] = device
        if (link.supports_drying or link.supports_filter) and self.power is None:
            self.power = _load_power(self.server, section_config)

    def _make_link(self, cfg: DeviceConfig, controller: DeviceController) -> DeviceLink:
        if cfg.firmware == "stock":
            assert cfg.host is not None
            return StockWebSocketLink(
                controller,
                cfg.name,
                cfg.host,
                cfg.port,
                connect_timeout=cfg.connect_timeout,
                silence_timeout=cfg.silence_timeout,
                backoff=Backoff(first=0.25, cap=cfg.reconnect_max_delay),
                reassert_interval=cfg.reassert_interval,
            )
        if cfg.firmware == "esphome":
            assert cfg.topic_prefix is not None
            esphome = EsphomeMqttProtocol(
                prefix=cfg.topic_prefix,
                climate_id=cfg.climate_id,
                chamber_sensor_id=cfg.chamber_sensor_id,
                ptc_sensor_id=cfg.ptc_sensor_id,
                band=cfg.band,
                max_target=cfg.device_max_temp,
            )
            # No silence check: ESPHome publishes on change or on its own
            # schedule; the broker's will and Klipper's stale check cover it.
            return MqttDeviceLink(
                controller, cfg.name, self.mqtt, esphome,
                heartbeat_interval=cfg.heartbeat_interval or None,
            )
        if cfg.firmware == "stock_mqtt":
            assert cfg.topic_prefix is not None and cfg.device_id is not None
            stock = StockMqttProtocol(cfg.device_id, cfg.topic_prefix, cfg.device_max_temp)
            return MqttDeviceLink(
                controller, cfg.name, self.mqtt, stock,
                silence_timeout=cfg.silence_timeout,
                availability_implied_by_state=True,
            )
        if cfg.firmware == "dragonbreath":
            assert cfg.host is not None
            return DragonBreathLink(
                controller, cfg.name, cfg.host, cfg.port, token=cfg.token,
                connect_timeout=cfg.connect_timeout, silence_timeout=cfg.silence_timeout,
                backoff=Backoff(first=0.25, cap=cfg.reconnect_max_delay),
                lease_timeout=cfg.lease_timeout,
            )
        raise NotImplementedError(f"firmware '{cfg.firmware}' is not supported yet")

    # Moonraker's MQTT client ---------------------------------------------------

    def _check_mqtt(self, cfg: DeviceConfig, config: ConfigHelper) -> None:
        """An MQTT firmware needs Moonraker's [mqtt] component; without it the
        section is a configuration error (the bridge opens no broker connection
        of its own)."""
        if cfg.firmware not in MQTT_FIRMWARES or cfg.errors:
            return
        if self.mqtt is None and self._mqtt_problem is None:
            self.mqtt, self._mqtt_problem = _load_mqtt(self.server, config)
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
        self._check_reachability()

    async def _add_power_devices(self) -> None:
        if self.power is None:
            return
        for device in self.devices.values():
            config, controller = device.section_config, device.controller
            if device.link.supports_drying:
                device.drying_device = await self._add_power_device(
                    device, "drying", "drying", functools.partial(
                        create_drying_device, config, controller,
                        temperature=device.cfg.drying_temperature, hours=device.cfg.drying_hours))
            if device.link.supports_filter:
                device.filter_device = await self._add_power_device(
                    device, "filter", "filtration",
                    functools.partial(create_filter_device, config, controller))

    async def _add_power_device(
        self, device: PandaBreathDevice, kind: str, what: str, create: Callable[..., Any]
    ) -> Any:
        """Moonraker's power device ``kind`` for ``device``; None (and a warning) if it failed."""
        name = power_device_name(device.cfg.name, kind)
        try:
            power_device = create(name=name)
            await self.power.add_device(name, power_device)
        except Exception as exc:  # noqa: BLE001 - optional; heating goes on
            logging.exception("panda_breath [%s]: power device not added", device.cfg.name)
            self.server.add_warning(
                f"[{device.cfg.section}]: the power device '{name}' could not be added "
                f"({exc}); {what} from the UIs is not available.",
                warn_id=f"panda_breath_{kind}_{device.cfg.name}",
            )
            return None
        return power_device

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
        self._schedule_notify()

    async def on_exit(self) -> None:
        """Moonraker is stopping: the device goes off while the socket is still open."""
        self._closing = True
        for device in self.devices.values():
            device.controller.force_off("Moonraker stopping")
        await asyncio.gather(
            *(d.link.flush(EXIT_FLUSH_S) for d in self.devices.values()), return_exceptions=True
        )

    async def close(self) -> None:
        self._closing = True
        if self._notify_handle is not None:
            self._notify_handle.cancel()
        for device in self.devices.values():
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

    def _controller_for(self, heater: Any, what: str) -> DeviceController | None:
        """The device whose Klipper heater a remote method names; None (logged) if none."""
        controller = self.relay.controllers.get(str(heater))
        if controller is None:
            logging.info("panda_breath: %s for unknown heater %r ignored", what, heater)
        return controller

    def _on_set_target(self, heater: Any = None, target: Any = None, **_extra: Any) -> None:
        """Remote method called by the Klipper extra on every target change."""
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
        """Remote method for a Klipper macro (examples: PANDA_BREATH_CLEAR_FAULT).

        The same explicit user action as POST /server/panda_breath/clear_fault;
        a remote method has no reply, so the outcome shows in the heater's
        ``fault`` and in moonraker.log.
        """
        controller = self._controller_for(heater, "fault clear")
        if controller is None:
            return
        if controller.requests.clear_fault():
            logging.info("panda_breath [%s]: fault clear requested from Klipper", controller.name)
        else:
            self.relay.report_error(
                controller, "fault not cleared: this firmware clears its faults by itself, or "
                "the device is not reachable")

    def _on_start_drying(
        self, heater: Any = None, temperature: Any = None, hours: Any = None, **_extra: Any
    ) -> None:
        """Remote method for PANDA_BREATH_DRY_START (examples; HelixScreen sends it).

        The same cycle as the power device; a refusal is an error line in
        Klipper's console (a remote method has no reply).
        """
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
            controller.requests.start_drying(*request)
        except DryingError as exc:
            self.relay.report_error(controller, "drying not started: %s" % exc)
        except Exception:  # noqa: BLE001 - a request must never take the component down
            logging.exception("panda_breath [%s]: drying request failed", controller.name)

    def _on_stop_drying(self, heater: Any = None, **_extra: Any) -> None:
        """Remote method for PANDA_BREATH_DRY_STOP."""
        controller = self._controller_for(heater, "drying stop")
        if controller is not None:
            controller.requests.stop_drying()

    def _on_set_filter(self, heater: Any = None, on: Any = None, **_extra: Any) -> None:
        """Remote method for PANDA_BREATH_FILTER ON=1|0 (examples): the filter power device.

        A refusal is an error line in Klipper's console.
        """
        controller = self._controller_for(heater, "filter")
        if controller is None:
            return
        if isinstance(on, bool) or on in (0, 1):
            try:
                controller.requests.set_filter(bool(on))
            except FilterError as exc:
                self.relay.report_error(controller, "filter not switched: %s" % exc)
        else:
            self.relay.report_error(controller, "filter not switched: ON must be 1 or 0, not %r"
                                    % (on,))

    # Status --------------------------------------------------------------------

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

    async def _handle_clear_fault(self, web_request: WebRequest) -> dict[str, Any]:
        """The explicit user action that clears a latched device fault (DragonBreath).

        The bridge never clears one on its own: the device latched it for a reason.
        """
        name = web_request.get_str("name", next(iter(self.devices), ""))
        device = self.devices.get(name)
        if device is None:
            raise self.server.error(f"no panda_breath device named '{name}'", 404)
        if not device.controller.requests.clear_fault():
            raise self.server.error(
                f"[{device.cfg.section}]: nothing to clear (this firmware clears its faults "
                "by itself, or the device is not reachable)", 409,
            )
        logging.info("panda_breath [%s]: fault clear requested by the user", name)
        return {"name": name, "requested": True}

    async def _handle_fail_link(self, web_request: WebRequest) -> dict[str, Any]:
        name = web_request.get_str("name", next(iter(self.devices), ""))
        device = self.devices.get(name)
        if device is None:
            raise self.server.error(f"no panda_breath device named '{name}'", 404)
        return {"name": name, "injected": device.supervisor.inject_failure()}

    # Unreachable devices ------------------------------------------------------

    def _check_reachability(self) -> None:
        """Warn in every UI when a device has been out of reach for a while.

        At target 0 nothing else would show an outage: the heater object
        just keeps its last temperature.
        """
        for device in self.devices.values():
            since = device.link.down_since
            warn_id = f"panda_breath_offline_{device.cfg.name}"
            if since is None or self._closing:
                if device.offline_check is not None:
                    device.offline_check.cancel()
                    device.offline_check = None
                if device.offline_warned:
                    device.offline_warned = False
                    self.server.remove_warning(warn_id)
                continue
            wait = since + device.cfg.offline_warning_delay - time.time()
            if wait > 0:
                if device.offline_check is None:
                    device.offline_check = self.eventloop.delay_callback(
                        wait + 0.05, self._offline_check_due, device
                    )
            elif not device.offline_warned:
                device.offline_warned = True
                reason = device.link.last_error or "no connection yet"
                self.server.add_warning(
                    f"[{device.cfg.section}]: the Panda Breath has been unreachable since "
                    f"{time.strftime('%H:%M:%S', time.localtime(since))} ({reason}). "
                    "Klipper's chamber reading is not current; targets cannot reach the "
                    "device.",
                    warn_id=warn_id,
                )

    def _check_faults(self) -> None:
        """A fault the device reports is a warning in every UI while it lasts."""
        for device in self.devices.values():
            warn_id = f"panda_breath_fault_{device.cfg.name}"
            text = device.controller.fault_text()
            if not text or self._closing:
                if device.fault_warning is not None:
                    device.fault_warning = None
                    self.server.remove_warning(warn_id)
                continue
            if text == device.fault_warning:
                continue
            device.fault_warning = text
            how = (
                "it is latched: clear it with POST /server/panda_breath/clear_fault"
                f"?name={device.cfg.name} once the cause is fixed"
                if device.link.arbitrates else "it stays off until the fault clears"
            )
            self.server.add_warning(
                f"[{device.cfg.section}]: the device reports a fault ({text}); {how}.",
                warn_id=warn_id,
            )

    def _offline_check_due(self, device: PandaBreathDevice) -> None:
        device.offline_check = None
        self._check_reachability()

    def _schedule_notify(self) -> None:
        self._check_reachability()
        self._check_faults()
        for device in self.devices.values():
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


def _load_mqtt(server: Any, config: Any) -> tuple[Any, str | None]:
    """Moonraker's mqtt component, or None and the reason it is not there."""
    if not config.has_section("mqtt"):
        return None, (
            "moonraker.conf has no [mqtt] section. Add one with the broker's address "
            "(the broker the device uses) and restart Moonraker."
        )
    failed = getattr(server, "failed_components", None)
    failed_before = isinstance(failed, list) and "mqtt" in failed
    try:
        mqtt = server.load_component(config, "mqtt", None)
    except Exception as exc:  # noqa: BLE001 - "previously failed to load" is a ServerError
        mqtt = None
        logging.info("panda_breath: Moonraker's mqtt component is unavailable: %s", exc)
    if mqtt is None:
        if isinstance(failed, list) and "mqtt" in failed and not failed_before:
            # Our load was the first: Moonraker's own start-up loop loads
            # [mqtt] again and reports the failure.  Left in the list, the
            # name would make that loop raise "previously failed to load"
            # and stop Moonraker altogether.
            failed.remove("mqtt")
        return None, (
            "Moonraker's [mqtt] component failed to load (its error is in moonraker.log; "
            "/server/info lists it under failed_components)."
        )
    return mqtt, None


def _load_power(server: Any, config: Any) -> Any:
    """Moonraker's power component (loaded here if no [power] section asked for it)."""
    try:
        return server.load_component(config, "power", None)
    except Exception as exc:  # noqa: BLE001 - drying from the UIs is optional
        logging.info("panda_breath: Moonraker's power component is unavailable: %s", exc)
        return None


def _device_sections(config: Any) -> list[str]:
    return [
        section
        for section in config.get_prefix_sections("panda_breath")
        if section == "panda_breath" or section.startswith("panda_breath ")
    ]
