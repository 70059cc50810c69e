"""The whole product on one machine: simulator (+ Mosquitto), klippy + extra, Moonraker + component.

``start_stack`` is what the end-to-end tests and ``scripts/demo`` run; the
firmware picks the path: a stock version (``v1.0.0`` … ``v1.0.4``) talks
WebSocket, ``esphome`` and ``stock_mqtt`` talk MQTT through a private broker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from . import wait_until
from .configs import panda_section, printer_cfg
from .impairment import Impairment
from .klippy import Klippy
from .moonraker import Moonraker
from .mosquitto import Mosquitto
from .printer_data import PrinterData
from .sim import SimProcess

STOCK_FIRMWARES = ("v1.0.0", "v1.0.1", "v1.0.2", "v1.0.3", "v1.0.4")
MQTT_FIRMWARES = ("esphome", "stock_mqtt")
FIRMWARES = STOCK_FIRMWARES + MQTT_FIRMWARES + ("dragonbreath",)
#: The simulated v1.0.4 device's MAC, as its MQTT topics carry it.
DEVICE_ID = "ACEBE68FE51C"
#: Moonraker's [mqtt] instance_name (its status topic is <instance>/moonraker/status).
MQTT_INSTANCE = "testprinter"
HEATER_OBJECT = "heater_panda_breath chamber"
#: The Klipper object holding the chamber's target in each heater setup.
HEATER_OBJECTS = {"heater_panda_breath": HEATER_OBJECT, "heater_generic": "heater_generic chamber"}

S = TypeVar("S", bound="Stack")


@dataclass
class Stack:
    """The running parts, in start order, and shortcuts to drive and observe them."""

    workdir: Path
    firmware: str
    sim: SimProcess
    klippy: Klippy
    moonraker: Moonraker
    broker: Mosquitto | None = None
    parts: list[Any] = field(default_factory=list)
    heater_object: str = HEATER_OBJECT
    heater: str = "chamber"
    #: The bad Wi-Fi link between the bridge and the device (``start_stack(impair=...)``).
    impair: Impairment | None = None

    def wait_sim(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
        what: str = "simulator state",
    ) -> dict[str, Any]:
        """Poll the device's true state until ``predicate`` holds; return that state."""
        return wait_until(
            lambda: (s := self.sim.state()) and predicate(s) and s, timeout, 0.05, what
        )

    def device(self, name: str = "panda_breath") -> dict[str, Any]:
        """The component's view of the device (/server/panda_breath/status)."""
        return self.moonraker.panda_status(name)

    def wait_device(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
        what: str = "bridge status",
    ) -> dict[str, Any]:
        return wait_until(lambda: (d := self.device()) and predicate(d) and d, timeout, 0.05,
                          what)

    def heater_status(self) -> dict[str, Any]:
        return self.moonraker.query({self.heater_object: None})[self.heater_object]

    def set_target(self, target: float) -> None:
        self.moonraker.gcode(f"SET_HEATER_TEMPERATURE HEATER={self.heater} TARGET={target}")

    def logs(self) -> str:
        return self.moonraker.log_text() + "\n" + self.klippy.log_text()

    def stop(self) -> None:
        """Stop everything, Moonraker first (so the device is told to go off)."""
        for part in reversed(self.parts):
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - keep tearing down the rest
                pass
        self.parts.clear()


def mqtt_section(port: int) -> str:
    return f"[mqtt]\naddress: 127.0.0.1\nport: {port}\ninstance_name: {MQTT_INSTANCE}\n"


def panda_mqtt_section(firmware: str, **options: Any) -> str:
    values: dict[str, Any] = {"firmware": firmware, "heater": "chamber"}
    if firmware == "stock_mqtt":
        values.update(device_id=DEVICE_ID, silence_timeout=3)
    values.update(options)
    body = "\n".join(f"{k}: {v}" for k, v in values.items() if v is not None)
    return f"[panda_breath]\n{body}\n"


def start_stack(
    workdir: Path,
    firmware: str = "v1.0.3",
    *,
    time_scale: float = 30.0,
    sim_args: tuple[str, ...] = (),
    sim_port: int | None = None,
    stale_timeout: float = 30.0,
    printer_extra: str = "",
    panda_options: dict[str, Any] | None = None,
    extra_moonraker_config: str = "",
    moonraker_port: int | None = None,
    cors_domains: tuple[str, ...] = (),
    moonraker_debug: bool = False,
    moonraker_python: Path | None = None,
    klippy_mcu: str = "file",
    heater_setup: str = "heater_panda_breath",
    heater: str = "chamber",
    printer_data: bool = False,
    stack_class: type[S] = Stack,  # type: ignore[assignment]
    impair: str | None = None,
) -> S:
    """Start every part and return once Klipper's heater has its first reading.

    Klipper refuses a target above 0 until the heater is fed, so callers can
    set targets straight away.  On any failure the parts already started are
    stopped before the error propagates.  ``printer_data=True`` lays the parts
    out as on a printer (``testbed.printer_data``: WORKDIR/printer_data, the
    usual macros), so Moonraker and the UIs raise no path or configuration
    warnings; the demo runs that way.  ``impair`` (a profile of ``scripts/impair.py``,
    e.g. ``"clear"``) puts the Wi-Fi proxy on the device's link: between the
    component and the device, or for MQTT between the device and the broker.
    """
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware must be one of {', '.join(FIRMWARES)}")
    parts: list[Any] = []
    proxy: Impairment | None = None
    try:
        broker = None
        sim_firmware = firmware
        device_args: tuple[str, ...] = ()
        if firmware in MQTT_FIRMWARES:
            broker = Mosquitto(workdir / "broker").start()
            parts.append(broker)
            if impair is not None:
                proxy = Impairment(workdir / "impair", broker.port, profile=impair).start()
                parts.append(proxy)
            sim_firmware = "esphome" if firmware == "esphome" else "v1.0.4"
            # The example ESPHome firmware runs the fan with the heater.
            device_args = ("--device-id", DEVICE_ID, "--frame-interval", "1")
            if firmware == "esphome":
                device_args += ("--esphome-fan-with-heat",)
        sim = SimProcess(
            workdir / "sim", port=sim_port, firmware=sim_firmware, time_scale=time_scale,
            mqtt=proxy.port if proxy is not None else broker,
            extra_args=device_args + tuple(sim_args),
        )
        sim.start()
        parts.append(sim)
        device_port = sim.port
        if impair is not None and broker is None:
            proxy = Impairment(workdir / "impair", sim.port, profile=impair).start()
            parts.append(proxy)
            device_port = proxy.port
        layout = PrinterData(workdir) if printer_data else None
        if layout is not None:
            klippy = layout.klippy(
                printer_cfg(layout.gcodes, heater=heater, stale_timeout=stale_timeout,
                            extra=printer_extra, setup=heater_setup),
                mcu=klippy_mcu,
            )
        else:
            klippy = Klippy(
                workdir / "klippy",
                printer_cfg(workdir / "gcodes", heater=heater, stale_timeout=stale_timeout,
                            extra=printer_extra, setup=heater_setup),
                mcu=klippy_mcu,
            )
        klippy.start()
        parts.append(klippy)
        panda_options = {"heater": heater, **(panda_options or {})}
        if broker is not None:
            panda = mqtt_section(broker.port) + panda_mqtt_section(firmware, **panda_options)
        elif firmware == "dragonbreath":
            panda = panda_section(device_port, firmware="dragonbreath", **panda_options)
        else:
            panda = panda_section(device_port, **panda_options)
        moonraker = Moonraker(
            workdir / "moonraker", klippy.socket_path,
            extra_config=panda + extra_moonraker_config,
            port=moonraker_port, cors_domains=cors_domains, debug=moonraker_debug,
            python=moonraker_python, data_path=layout.root if layout is not None else None,
        )
        moonraker.start()
        parts.append(moonraker)
        moonraker.wait_component_ready()
    except BaseException:
        for part in reversed(parts):
            try:
                part.stop()
            except Exception:  # noqa: BLE001
                pass
        raise
    heater_object = HEATER_OBJECTS[heater_setup].replace(" chamber", " " + heater)
    return stack_class(workdir, firmware, sim, klippy, moonraker, broker, parts,
                       heater_object, heater, proxy)
