"""A paho-mqtt client whose callbacks run on the simulator's asyncio loop.

paho runs its network loop in its own thread (``loop_start``); every callback
hops to the asyncio loop with ``call_soon_threadsafe`` so that device state is
only ever touched from one thread. paho reconnects by itself with a short
back-off when the broker goes away. Publishing is thread-safe in paho 2.x.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger("pbsim.mqtt")


@dataclass(frozen=True)
class Broker:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Broker:
        """``HOST:PORT`` (or just ``PORT`` for 127.0.0.1)."""
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = "127.0.0.1", text
        return cls(host or "127.0.0.1", int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class MqttLink:
    """One MQTT session of the simulated device: birth on connect, will, subscriptions."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        broker: Broker,
        client_id: str,
        will_topic: str,
        subscriptions: list[str],
        on_connected: Callable[[], None],
        on_message: Callable[[str, bytes, bool], None],
        keepalive: int = 15,
    ) -> None:
        self.loop = loop
        self.broker = broker
        self.will_topic = will_topic
        self.subscriptions = subscriptions
        self.on_connected = on_connected
        self.on_message = on_message
        self.connected = False
        self.connects = 0
        self.published = 0
        self.keepalive = keepalive
        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
        )
        self._client.will_set(will_topic, "offline", qos=0, retain=True)
        self._client.reconnect_delay_set(min_delay=0.2, max_delay=2)  # type: ignore[arg-type]
        self._client.on_connect = self._paho_connect
        self._client.on_disconnect = self._paho_disconnect
        self._client.on_message = self._paho_message

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive)
        self._client.loop_start()

    async def stop(self) -> None:
        """Clean shutdown: announce ``offline`` (retained), then disconnect."""
        if self.connected:
            self._client.publish(self.will_topic, "offline", qos=0, retain=True)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self.connected = False

    async def abort(self) -> None:
        """Vanish without DISCONNECT (power loss): the broker publishes the will itself."""
        await asyncio.to_thread(self._client.loop_stop)
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.connected = False

    # -- publishing ------------------------------------------------------------------------
    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> bool:
        if not self.connected:
            return False
        self._client.publish(topic, payload, qos=0, retain=retain)
        self.published += 1
        return True

    # -- paho thread -> asyncio loop ------------------------------------------------------
    def _hop(self, func: Callable[..., None], *args: object) -> None:
        try:
            self.loop.call_soon_threadsafe(func, *args)
        except RuntimeError:  # loop already closed during shutdown
            pass

    def _paho_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect to %s refused: %s", self.broker, reason_code)
            return
        for topic in self.subscriptions:
            client.subscribe(topic, qos=0)
        self._hop(self._connected)

    def _connected(self) -> None:
        self.connected = True
        self.connects += 1
        log.info("MQTT connected to %s", self.broker)
        self._client.publish(self.will_topic, "online", qos=0, retain=True)
        self.on_connected()

    def _paho_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._hop(self._disconnected, str(reason_code))

    def _disconnected(self, reason: str) -> None:
        if self.connected:
            log.info("MQTT disconnected from %s (%s)", self.broker, reason)
        self.connected = False

    def _paho_message(self, client, userdata, message) -> None:
        self._hop(self.on_message, message.topic, bytes(message.payload), bool(message.retain))


class DeviceMqtt:
    """The device's MQTT client across reboots: a new session per boot (v1.0.4, ESPHome)."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        will_topic: str,
        subscriptions: list[str],
        on_connected: Callable[[], None],
        on_message: Callable[[str, bytes, bool], None],
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.will_topic = will_topic
        self.subscriptions = subscriptions
        self.on_connected = on_connected
        self.on_message = on_message
        self.link: MqttLink | None = None

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.link = MqttLink(
            loop, self.broker, self.client_id, self.will_topic, self.subscriptions,
            on_connected=self.on_connected, on_message=self.on_message,
        )
        self.link.start()

    async def stop(self, power_cut: bool = False) -> None:
        """Clean (``offline`` announced) or, on a power cut, without DISCONNECT (the will)."""
        link, self.link = self.link, None
        if link is not None:
            await (link.abort() if power_cut else link.stop())

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> bool:
        return self.link is not None and self.link.publish(topic, payload, retain)

    def info(self, counters: dict[str, int]) -> dict[str, Any]:
        link = self.link
        return {
            "broker": str(self.broker),
            "connected": self.connected,
            "connects": link.connects if link else 0,
            "published": link.published if link else 0,
            "commands_received": counters.get("mqtt_commands_received", 0),
            "commands_applied": counters.get("mqtt_commands_applied", 0),
            "commands_ignored": counters.get("mqtt_commands_ignored", 0),
            "states_published": counters.get("mqtt_states_published", 0),
        }
