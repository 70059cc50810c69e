"""The real stack for the MQTT firmwares: Mosquitto, the simulator on MQTT, klippy, Moonraker.

Moonraker gets an ``[mqtt]`` section pointing at the private broker and a
``[panda_breath]`` section with ``firmware: esphome`` or ``stock_mqtt``; the
simulator joins the same broker as the device.  ``MqttStack.retained`` reads
a retained topic with a separate paho client, the way another subscriber
(the device's watchdog, Home Assistant) would see it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from testbed import wait_until
from testbed.configs import printer_cfg
from testbed.klippy import Klippy
from testbed.moonraker import Moonraker
from testbed.mosquitto import Mosquitto
from testbed.sim import SimProcess

DEVICE_ID = "ACEBE68FE51C"
INSTANCE = "testprinter"
HEATER_OBJECT = "heater_panda_breath chamber"


@dataclass
class MqttStack:
    workdir: Path
    broker: Mosquitto
    sim: SimProcess
    klippy: Klippy
    moonraker: Moonraker
    firmware: str
    parts: list[Any] = field(default_factory=list)

    # Simulator -----------------------------------------------------------

    def wait_sim(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
                 what: str = "simulator state") -> dict[str, Any]:
        return wait_until(lambda: (s := self.sim.state()) and predicate(s) and s, timeout, 0.05,
                          what)

    def mqtt_frames(self, since: float = 0.0) -> list[dict[str, Any]]:
        """MQTT messages the device received after ``since`` (wall-clock time)."""
        return [
            f for f in self.sim.state()["recent_frames"]
            if f.get("transport") == "mqtt" and f["time"] > since
        ]

    # Moonraker -----------------------------------------------------------

    def device(self) -> dict[str, Any]:
        return self.moonraker.panda_status("panda_breath")

    def wait_device(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0,
                    what: str = "bridge status") -> dict[str, Any]:
        return wait_until(lambda: (d := self.device()) and predicate(d) and d, timeout, 0.05,
                          what)

    def heater_status(self) -> dict[str, Any]:
        return self.moonraker.query({HEATER_OBJECT: None})[HEATER_OBJECT]

    def set_target(self, target: float) -> None:
        self.moonraker.gcode(f"SET_HEATER_TEMPERATURE HEATER=chamber TARGET={target}")

    def logs(self) -> str:
        return self.moonraker.log_text() + "\n" + self.klippy.log_text()

    # Broker --------------------------------------------------------------

    def retained(self, topic: str, timeout: float = 3.0) -> str | None:
        """The retained payload of ``topic`` as a fresh subscriber gets it (None: nothing)."""
        got: list[str] = []
        done = threading.Event()
        client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2)

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            c.subscribe(topic)

        def on_message(c: Any, userdata: Any, message: Any) -> None:
            if message.retain:
                got.append(message.payload.decode())
            done.set()

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            done.wait(timeout)
        finally:
            client.disconnect()
            client.loop_stop()
        return got[0] if got else None

    def stop_all(self) -> None:
        for part in reversed(self.parts):
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - keep tearing down the rest
                pass


def panda_mqtt_section(firmware: str, **options: Any) -> str:
    values: dict[str, Any] = {"firmware": firmware, "heater": "chamber"}
    if firmware == "stock_mqtt":
        values.update(device_id=DEVICE_ID, silence_timeout=3)
    values.update(options)
    body = "\n".join(f"{k}: {v}" for k, v in values.items() if v is not None)
    return f"[panda_breath]\n{body}\n"


def mqtt_section(port: int) -> str:
    return f"[mqtt]\naddress: 127.0.0.1\nport: {port}\ninstance_name: {INSTANCE}\n"


def build_mqtt_stack(
    workdir: Path,
    firmware: str,
    time_scale: float = 30.0,
    sim_args: tuple[str, ...] = ("--frame-interval", "1"),
    panda_options: dict[str, Any] | None = None,
    stale_timeout: float = 30.0,
) -> MqttStack:
    """Start every part; ``firmware`` is "esphome" or "stock_mqtt" (the sim plays v1.0.4)."""
    parts: list[Any] = []
    try:
        broker = Mosquitto(workdir / "broker").start()
        parts.append(broker)
        sim = SimProcess(
            workdir / "sim",
            firmware="esphome" if firmware == "esphome" else "v1.0.4",
            time_scale=time_scale,
            mqtt=broker,
            # The example YAML runs the fan with the heater (the earlier
            # project's did not, and its element tripped the 90 °C guard).
            extra_args=(
                "--device-id", DEVICE_ID,
                *(("--esphome-fan-with-heat",) if firmware == "esphome" else ()),
                *sim_args,
            ),
        )
        sim.start()
        parts.append(sim)
        klippy = Klippy(workdir / "klippy",
                        printer_cfg(workdir / "gcodes", stale_timeout=stale_timeout))
        klippy.start()
        parts.append(klippy)
        moonraker = Moonraker(
            workdir / "moonraker",
            klippy.socket_path,
            extra_config=mqtt_section(broker.port)
            + panda_mqtt_section(firmware, **(panda_options or {})),
        )
        moonraker.start()
        parts.append(moonraker)
        moonraker.wait_component_ready()
        # Klipper refuses a target until its heater has a temperature.
        wait_until(
            lambda: moonraker.panda_status("panda_breath")["last_push_age"] is not None,
            10.0, what="a first temperature in Klipper",
        )
    except BaseException:
        for part in reversed(parts):
            try:
                part.stop()
            except Exception:  # noqa: BLE001
                pass
        raise
    return MqttStack(workdir, broker, sim, klippy, moonraker, firmware, parts)
