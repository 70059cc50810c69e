"""The real stack for the MQTT firmwares: Mosquitto, the simulator on MQTT, klippy, Moonraker.

Moonraker gets an ``[mqtt]`` section pointing at the private broker and a
``[panda_breath]`` section with ``firmware: esphome`` or ``stock_mqtt``; the
simulator joins the same broker as the device.  ``MqttStack.retained`` reads
a retained topic with a separate paho client, the way another subscriber
(the device's watchdog, Home Assistant) would see it.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as paho
from testbed.stack import (
    DEVICE_ID,
    HEATER_OBJECT,
    MQTT_INSTANCE,
    Stack,
    panda_mqtt_section,
    start_stack,
)

INSTANCE = MQTT_INSTANCE
__all__ = ["DEVICE_ID", "HEATER_OBJECT", "INSTANCE", "MqttStack", "panda_mqtt_section",
           "start_stack"]


class MqttStack(Stack):
    """A stack on a private broker, with what only the MQTT tests need."""

    def mqtt_frames(self, since: float = 0.0) -> list[dict[str, Any]]:
        """MQTT messages the device received after ``since`` (wall-clock time)."""
        return [
            f for f in self.sim.state()["recent_frames"]
            if f.get("transport") == "mqtt" and f["time"] > since
        ]

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
        assert self.broker is not None
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            done.wait(timeout)
        finally:
            client.disconnect()
            client.loop_stop()
        return got[0] if got else None
