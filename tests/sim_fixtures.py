"""Fixtures and helpers for the simulator's own tests (real WebSocket and MQTT clients).

Test modules bind the fixtures they use by assignment (``make_sim = sim_fixtures.make_sim``)
so that pytest finds them and ruff does not see test arguments as redefined imports.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from panda_breath_sim import create_simulator
from pbsim.core import SimCore
from pbsim.stock_sim import StockSimulator
from testbed.mosquitto import Mosquitto
from websockets.asyncio.client import ClientConnection, connect

SimFactory = Callable[..., Awaitable[Any]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """Start in-process simulators (fast frames by default); all are stopped afterwards."""
    started: list[SimCore] = []

    async def factory(**options: Any) -> Any:
        options.setdefault("frame_interval", 0.1)
        options.setdefault("reboot_down_time", 0.3)
        sim = create_simulator(**options)
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto on a free loopback port."""
    with Mosquitto(tmp_path / "broker") as instance:
        yield instance


async def ws_open(sim: StockSimulator | str, timeout: float = 2.0) -> tuple[ClientConnection, dict]:
    """Connect a real WebSocket client and return it with the connect snapshot."""
    url = sim if isinstance(sim, str) else sim.ws_url
    ws = await connect(url, open_timeout=timeout, max_size=None, max_queue=None)
    snapshot = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return ws, snapshot


def http_get(url: str) -> tuple[int, dict]:
    """A blocking GET (run it in a thread): the status and the JSON body, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def recv_json(ws: ClientConnection, timeout: float = 2.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def collect(ws: ClientConnection, seconds: float) -> list[tuple[float, Any]]:
    """Every message received for ``seconds``: (monotonic time, raw message)."""
    out: list[tuple[float, Any]] = []
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return out
        try:
            message = await asyncio.wait_for(ws.recv(), remaining)
        except asyncio.TimeoutError:
            return out
        out.append((time.monotonic(), message))


async def send(ws: ClientConnection, payload: Any) -> None:
    await ws.send(json.dumps(payload))


async def eventually(
    predicate: Callable[[], Any], timeout: float = 3.0, what: str = "condition"
) -> Any:
    """Poll ``predicate`` on the event loop until truthy (the simulator keeps running)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def settle(sim: SimCore, frames: int) -> None:
    """Wait until the simulator has received ``frames`` WS frames in total."""
    await eventually(lambda: sim.state()["frames_received"] >= frames, what=f"{frames} frames")


@dataclass
class Message:
    topic: str
    payload: str
    retain: bool
    at: float


class MqttProbe:
    """A real MQTT client that records everything on its subscriptions."""

    def __init__(self, broker: Mosquitto, *topics: str) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"probe-{time.monotonic_ns()}",
        )
        self.topics = topics
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise RuntimeError("MQTT probe could not subscribe")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe([(t, 0) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append(
                Message(msg.topic, msg.payload.decode("utf-8", "replace"), bool(msg.retain),
                        time.monotonic())
            )

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> str | None:
        found = self.on(topic)
        return found[-1].payload if found else None

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=0, retain=retain).wait_for_publish(5)

    def _match(self, topic: str, predicate: Callable[[str], bool], after: float) -> Message | None:
        return next((m for m in self.on(topic) if m.at >= after and predicate(m.payload)), None)

    def _missing(self, topic: str) -> AssertionError:
        return AssertionError(f"no matching message on {topic}: {self.on(topic)[-3:]}")

    async def wait(self, topic: str, predicate: Callable[[str], bool] = bool,
                   timeout: float = 4.0, after: float = 0.0) -> Message:
        """Wait (async) for a message on ``topic`` after ``after`` that matches ``predicate``."""
        deadline = time.monotonic() + timeout
        while (found := self._match(topic, predicate, after)) is None:
            if time.monotonic() > deadline:
                raise self._missing(topic)
            await asyncio.sleep(0.02)
        return found

    def wait_sync(self, topic: str, predicate: Callable[[str], bool] = bool,
                  timeout: float = 4.0, after: float = 0.0) -> Message:
        deadline = time.monotonic() + timeout
        while (found := self._match(topic, predicate, after)) is None:
            if time.monotonic() > deadline:
                raise self._missing(topic)
            time.sleep(0.02)
        return found

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def probe_factory() -> Iterator[Callable[..., MqttProbe]]:
    probes: list[MqttProbe] = []

    def factory(broker: Mosquitto, *topics: str) -> MqttProbe:
        probe = MqttProbe(broker, *topics)
        probes.append(probe)
        return probe

    yield factory
    for probe in probes:
        probe.close()


def json_payload(text: str | None) -> dict:
    assert text is not None
    return json.loads(text)
