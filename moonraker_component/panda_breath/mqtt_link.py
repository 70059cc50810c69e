"""A device link over Moonraker's own MQTT client (ESPHome and stock v1.0.4).

The bridge opens no broker connection of its own: it subscribes and publishes
through Moonraker's ``[mqtt]`` component, so there is one broker
configuration, and Moonraker's retained last will
(``<instance>/moonraker/status`` = ``{"server": "offline"}``) tells a device
with a host watchdog when the host is gone.

The link is up while the broker is connected *and* the device says it is
available (its retained birth/will topic).  Losing either is a device drop
for the controller: nothing is sent while down, and the whole desired state
is resent when both are back.  Retained states that arrive while the device
is marked offline are left-overs of a dead device and are not passed on.

The stock firmware streams its state about twice a second, so a stock link
also goes down after ``silence_timeout`` without a message.  ESPHome devices
publish only on change or every few seconds, depending on their YAML, so an
ESPHome link relies on the broker's will instead (sent 1.5 keep-alives, about
23 s, after the device vanishes) and Klipper's stale-temperature check.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .link import LINK_CLOSED, LINK_CONNECTED, LINK_CONNECTING, LINK_DISCONNECTED, DeviceLink
from .model import MODE_ON, DeviceReport, FrameError
from .mqtt_common import MqttProtocol, Publish
from .typing_compat import Protocol

if TYPE_CHECKING:
    from .link import LinkListener  # annotations only

#: Commands and heartbeats are sent at least once (the broker acknowledges
#: them, so ``flush`` at shutdown means "the broker has the OFF").
COMMAND_QOS = 1
#: After a write, a device report that still shows the state before it is an
#: echo in flight, not a contradiction, for this long.
SETTLE_S = 1.0
#: How often the link checks its timers (heartbeat, silence).
TICK_S = 0.25


class MqttClient(Protocol):
    """The part of Moonraker's ``MQTTClient`` the link uses."""

    def is_connected(self) -> bool: ...

    def subscribe_topic(
        self, topic: str, callback: Callable[[bytes], Any], qos: int | None = None
    ) -> Any: ...

    def unsubscribe(self, hdl: Any) -> None: ...

    def publish_topic(
        self, topic: str, payload: Any = None, qos: int | None = None, retain: bool = False
    ) -> Any: ...


class EchoWindow:
    """Hides state that only shows our last command not applied yet.

    The device publishes its state between our messages (ESPHome after
    every set point, the stock firmware on its own clock), so for a moment
    after a write it still reports the state before it.  Taken at face
    value, that is a "contradiction" that makes the controller rewrite
    everything, or (after an OFF) "uncommanded heating" counted once per
    topic.  A device that really disagrees still says so after
    ``SETTLE_S``, and the controller acts then.
    """

    def __init__(self) -> None:
        self._until = 0.0
        self._target = 0.0

    def open(self, target: float) -> None:
        """``target`` was just written."""
        self._target = target
        self._until = time.monotonic() + SETTLE_S

    def close(self) -> None:
        self._until = 0.0

    def filter(self, report: DeviceReport) -> DeviceReport:
        if time.monotonic() >= self._until:
            return report
        target = self._target
        if target > 0.0:
            if report.work_on is False or (report.mode is not None and report.mode != MODE_ON):
                report.work_on = None
                report.mode = None
            if report.device_target is not None and (
                abs(report.device_target - round(target)) >= 1
            ):
                report.device_target = None
        else:
            if report.work_on:
                report.work_on = None
                report.mode = None
            if report.heater_on:
                report.heater_on = None
        return report


class MqttDeviceLink(DeviceLink):
    """``firmware: esphome`` and ``stock_mqtt``; see the module docstring."""

    def __init__(
        self,
        listener: LinkListener,
        name: str,
        mqtt: MqttClient,
        protocol: MqttProtocol,
        silence_timeout: float | None = None,
        heartbeat_interval: float | None = None,
        availability_implied_by_state: bool = False,
    ) -> None:
        super().__init__(listener, name)
        self.mqtt, self.protocol, self.silence_timeout = mqtt, protocol, silence_timeout
        self.heartbeat_interval = heartbeat_interval
        #: Stock v1.0.4: a state message means "online" until the availability
        #: topic says otherwise.  ESPHome always sends its birth message.
        self.availability_implied_by_state = availability_implied_by_state
        self.broker_connected = False
        self.device_available: bool | None = None
        self.silent = False
        self.frames_ignored = self.heartbeats_sent = self.publish_errors = 0
        self._handles: list[Any] = []
        self._closing = False
        self._wake = asyncio.Event()
        self._target = 0.0
        self._last_message = 0.0
        self._last_heartbeat = 0.0
        self._echoes = EchoWindow()
        self._state_seen = False
        self._online_pending = False

    # Session -----------------------------------------------------------------

    async def run(self) -> None:
        # A fresh start (also after the supervisor restarted a failed task):
        # what the broker and device said is re-learned from their retained topics.
        self.broker_connected = False
        self._forget_device()
        for topic in self.protocol.topics():
            on_message = functools.partial(self._on_message, topic)
            self._handles.append(self.mqtt.subscribe_topic(topic, on_message))
        if self.mqtt.is_connected():
            self.on_broker_connected()
        else:
            self._evaluate()
        try:
            while not self._closing:
                try:
                    await asyncio.wait_for(self._wake.wait(), TICK_S)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                if not self._closing:
                    self._tick(time.monotonic())
        finally:
            for handle in self._handles:
                try:
                    self.mqtt.unsubscribe(handle)
                except Exception:  # noqa: BLE001 - Moonraker may be tearing MQTT down
                    pass
            self._handles.clear()
            self._set_state(LINK_CLOSED)

    async def close(self) -> None:
        self._closing = True
        was_up = self.is_up()
        self._wake.set()
        self._set_state(LINK_CLOSED)
        if was_up:
            self.listener.on_link_down("closing")

    # Broker events (Moonraker's mqtt:connected / mqtt:disconnected) ---------

    def on_broker_connected(self) -> None:
        if self.broker_connected or self._closing:
            return
        self.broker_connected = True
        self.silent = False
        logging.info("panda_breath [%s]: MQTT broker connected", self.name)
        # Up once the device's (retained) availability arrives.
        self._evaluate()

    def on_broker_disconnected(self) -> None:
        if not self.broker_connected:
            return
        self.broker_connected = False
        self._forget_device()
        logging.info("panda_breath [%s]: MQTT broker connection lost", self.name)
        self._evaluate()

    def _forget_device(self) -> None:
        """Whatever the device said is history: its retained availability
        (or its birth message) tells again after the broker is back."""
        self.device_available = None
        self._state_seen = False
        self._online_pending = False
        self.protocol.reset()

    # Incoming ------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        """Moonraker's MQTT client calls this; nothing may escape into it."""
        if self._closing:
            return
        self._note_frame()
        try:
            report = self.protocol.decode(topic, payload)
        except FrameError as exc:
            # The payload itself is never logged.
            self._drop_frame("on %s: %s" % (topic, exc))
            return
        try:
            self._use(topic, report)
        except Exception:  # noqa: BLE001 - counted, logged, the session goes on
            self.frames_dropped += 1
            if self._log_limited("internal error while handling a message on %s" % topic):
                logging.exception("panda_breath [%s]: handling a message failed", self.name)
            self.listener.on_link_changed()

    def _use(self, topic: str, report: DeviceReport) -> None:
        if report.rejected_fields:
            self.fields_rejected += len(report.rejected_fields)
            self._log_limited("ignored malformed fields: %s" % ", ".join(report.rejected_fields))
        if topic == self.protocol.availability_topic:
            self._on_availability(bool(report.online))
            return
        if self.device_available is False or (
            self.device_available is None and not self.availability_implied_by_state
        ):
            # Retained left-overs of a device that is not there.
            self.frames_ignored += 1
            return
        self._last_message = time.monotonic()
        if self.silent:
            self.silent = False
            logging.info("panda_breath [%s]: device talks again", self.name)
        if self.device_available is None and not self._state_seen:
            self._state_seen = True
            self._online_pending = True
        self._evaluate()
        if not self.is_up():
            self.frames_ignored += 1
            return
        if self._online_pending:
            report.online = True
            self._online_pending = False
        self._pass_on(self._echoes.filter(report))

    def _on_availability(self, available: bool) -> None:
        if available == self.device_available:
            return
        self.device_available = available
        logging.info(
            "panda_breath [%s]: device %s", self.name, "online" if available else "offline"
        )
        if available:
            # Passed on with the device's next message, which the controller
            # takes as the first word of the new session.
            self._online_pending = True
            self._last_message = time.monotonic()
            self._evaluate()
        else:
            self._online_pending = False
            self._pass_on(DeviceReport(online=False))
            self._evaluate()

    # Link state ----------------------------------------------------------------

    def _evaluate(self) -> None:
        available = self.device_available is True or (
            self.device_available is None
            and self.availability_implied_by_state
            and self._state_seen
        )
        up = self.broker_connected and available and not self.silent and not self._closing
        if up:
            if self.state != LINK_CONNECTED:
                self._go_up()
            return
        reason = self._down_reason()
        if self.state == LINK_CONNECTED:
            self._go_down(reason)
        elif not self._closing:
            self.last_error = reason
            self._set_state(LINK_CONNECTING if self.broker_connected and
                            self.device_available is None else LINK_DISCONNECTED)

    def _down_reason(self) -> str:
        if not self.broker_connected:
            return "MQTT broker not connected"
        if self.device_available is False:
            return "device offline"
        if self.silent:
            return "device silent for %.0f s" % (self.silence_timeout or 0)
        return "waiting for the device's availability"

    def _go_up(self) -> None:
        self._note_connected()
        self.connected_since = time.monotonic()
        self.last_error = None
        self._last_message = time.monotonic()
        self._last_heartbeat = 0.0
        logging.info("panda_breath [%s]: device reachable over MQTT (%s)",
                     self.name, self.protocol.base)
        self._set_state(LINK_CONNECTED)
        self.listener.on_link_up()

    def _go_down(self, reason: str) -> None:
        self.last_error = reason
        self._echoes.close()
        logging.info("panda_breath [%s]: device link down (%s)", self.name, reason)
        self._set_state(LINK_DISCONNECTED)
        self.listener.on_link_down(reason)

    def _tick(self, now: float) -> None:
        if not self.is_up():
            return
        if self.silence_timeout and now - self._last_message > self.silence_timeout:
            self.silent = True
            self._evaluate()
            return
        if (
            self.heartbeat_interval
            and self._target > 0.0
            and now - self._last_heartbeat >= self.heartbeat_interval
        ):
            beat = self.protocol.heartbeat(self._target)
            if beat is not None:
                self._publish(beat)
                self.heartbeats_sent += 1
                self._last_heartbeat = now

    # Outgoing ------------------------------------------------------------------

    @property
    def supports_drying(self) -> bool:  # type: ignore[override]
        return hasattr(self.protocol, "encode_drying")

    def send_drying(self, temperature: int, hours: int) -> bool:
        encode = getattr(self.protocol, "encode_drying", None)
        if encode is None or not self.is_up():
            return False
        for publish in encode(temperature, hours):
            self._publish(publish)
        self._echoes.close()  # a drying state is no echo of a target write
        return True

    def send_target(self, target: float) -> bool:
        if not self.is_up():
            return False
        self._target = target
        now = time.monotonic()
        for publish in self.protocol.encode(target):
            self._publish(publish)
            if publish.topic == self.protocol.heartbeat_topic:
                self._last_heartbeat = now
        self._echoes.open(target)
        return True

    def _publish(self, publish: Publish) -> None:
        self.frames_sent += 1
        try:
            result = self.mqtt.publish_topic(
                publish.topic, publish.payload, COMMAND_QOS, publish.retain
            )
        except Exception as exc:  # noqa: BLE001 - Moonraker raises ServerError
            self._publish_failed(exc)
            return
        self._track_write(result, self._publish_failed)

    def _publish_failed(self, exc: BaseException) -> None:
        self.publish_errors += 1
        self._log_limited("publish failed: %s" % (str(exc) or type(exc).__name__))
        self.listener.on_link_changed()

    # Status --------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(mqtt_topics=self.protocol.base, broker_connected=self.broker_connected,
                    device_available=self.device_available, frames_ignored=self.frames_ignored,
                    heartbeats_sent=self.heartbeats_sent, publish_errors=self.publish_errors)
        return info
