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
    """The simulated device's MQTT client: a new session per boot, birth on connect, will.

    Counters are those of the current session (zero while the device is down).
    """

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        will_topic: str,
        subscriptions: list[str],
        on_connected: Callable[[], None],
        on_message: Callable[[str, bytes, bool], None],
        keepalive: int = 15,
    ) -> None:
        self.broker, self.client_id, self.will_topic = broker, client_id, will_topic
        self.subscriptions, self.on_connected = subscriptions, on_connected
        self.on_message, self.keepalive = on_message, keepalive
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connected = False
        self.connects = 0
        self.published = 0
        self._client: mqtt.Client | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """A new session (the device booted): connect in paho's thread, reconnect on loss."""
        self.loop = loop
        client = self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
        )
        client.will_set(self.will_topic, "offline", qos=0, retain=True)
        client.reconnect_delay_set(min_delay=0.2, max_delay=2)  # type: ignore[arg-type]
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_message = self._paho_message
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive)
        client.loop_start()

    async def stop(self, power_cut: bool = False) -> None:
        """End the session: cleanly (``offline`` announced, then DISCONNECT) or, on a
        power cut, vanish without DISCONNECT so that the broker publishes the will."""
        client, self._client = self._client, None
        if client is None:
            return
        if power_cut:
            await asyncio.to_thread(client.loop_stop)
            sock = client.socket()
            if isinstance(sock, socket.socket):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        else:
            if self.connected:
                client.publish(self.will_topic, "offline", qos=0, retain=True)
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        self.connected = False
        self.connects = self.published = 0

    # -- publishing ------------------------------------------------------------------------
    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> bool:
        if not self.connected or self._client is None:
            return False
        self._client.publish(topic, payload, qos=0, retain=retain)
        self.published += 1
        return True

    # -- paho thread -> asyncio loop ------------------------------------------------------
    def _hop(self, func: Callable[..., None], *args: object) -> None:
        try:
            assert self.loop is not None
            self.loop.call_soon_threadsafe(func, *args)
        except RuntimeError:  # loop already closed during shutdown
            pass

    def _paho_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect to %s refused: %s", self.broker, reason_code)
            return
        for topic in self.subscriptions:
            client.subscribe(topic, qos=0)
        self._hop(self._connected, client)

    def _connected(self, client: mqtt.Client) -> None:
        if client is not self._client:  # that session has ended meanwhile
            return
        self.connected = True
        self.connects += 1
        log.info("MQTT connected to %s", self.broker)
        client.publish(self.will_topic, "online", qos=0, retain=True)
        self.on_connected()

    def _paho_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._hop(self._disconnected, client, str(reason_code))

    def _disconnected(self, client: mqtt.Client, reason: str) -> None:
        if client is not self._client:
            return
        if self.connected:
            log.info("MQTT disconnected from %s (%s)", self.broker, reason)
        self.connected = False

    def _paho_message(self, client, userdata, message) -> None:
        self._hop(self.on_message, message.topic, bytes(message.payload), bool(message.retain))

    def info(self, counters: dict[str, int]) -> dict[str, Any]:
        """The session and the device's MQTT counters, for ``/sim/state``."""
        return {
            "broker": str(self.broker),
            "connected": self.connected,
            "connects": self.connects,
            "published": self.published,
            **{name: counters.get(f"mqtt_{name}", 0) for name in (
                "commands_received", "commands_applied", "commands_ignored",
                "states_published")},
        }
