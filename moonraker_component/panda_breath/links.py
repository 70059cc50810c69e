"""Which link each ``firmware`` gets, built from its section (``config.DeviceConfig``).

Like Moonraker's power component maps a device ``type`` to its class: one
small builder per firmware, in a table.  The MQTT firmwares share Moonraker's
own broker connection (``mqtt``); the others open their own sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backoff import Backoff
from .config import DeviceConfig
from .dragonbreath_link import DragonBreathLink
from .esphome_mqtt import EsphomeMqttProtocol
from .link import DeviceLink, LinkListener
from .mqtt_link import MqttDeviceLink
from .stock_mqtt import StockMqttProtocol
from .stock_ws_link import StockWebSocketLink

#: How long an outage is retried every quarter second before backing off: a
#: device restart or a Wi-Fi blink is over by then, and a LAN connect is cheap.
QUICK_RETRY_S = 60.0


def reconnect_backoff(cfg: DeviceConfig) -> Backoff:
    """How a link spaces its reconnects: quick through a short outage, then backing off."""
    return Backoff(first=0.25, cap=cfg.reconnect_max_delay, quick_for=QUICK_RETRY_S)


def restart_backoff(cfg: DeviceConfig) -> Backoff:
    """How the supervisor spaces restarts of a failing link task (a bug: no quick phase)."""
    return Backoff(first=0.25, cap=cfg.reconnect_max_delay)


def _stock(cfg: DeviceConfig, listener: LinkListener, mqtt: Any) -> DeviceLink:
    assert cfg.host is not None
    return StockWebSocketLink(
        listener, cfg.name, cfg.host, cfg.port,
        connect_timeout=cfg.connect_timeout, silence_timeout=cfg.silence_timeout,
        backoff=reconnect_backoff(cfg), reassert_interval=cfg.reassert_interval,
    )


def _esphome(cfg: DeviceConfig, listener: LinkListener, mqtt: Any) -> DeviceLink:
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
        listener, cfg.name, mqtt, esphome, heartbeat_interval=cfg.heartbeat_interval or None,
    )


def _stock_mqtt(cfg: DeviceConfig, listener: LinkListener, mqtt: Any) -> DeviceLink:
    assert cfg.topic_prefix is not None and cfg.device_id is not None
    stock = StockMqttProtocol(cfg.device_id, cfg.topic_prefix, cfg.device_max_temp)
    return MqttDeviceLink(
        listener, cfg.name, mqtt, stock,
        silence_timeout=cfg.silence_timeout, availability_implied_by_state=True,
    )


def _dragonbreath(cfg: DeviceConfig, listener: LinkListener, mqtt: Any) -> DeviceLink:
    assert cfg.host is not None
    return DragonBreathLink(
        listener, cfg.name, cfg.host, cfg.port, token=cfg.token,
        connect_timeout=cfg.connect_timeout, silence_timeout=cfg.silence_timeout,
        backoff=reconnect_backoff(cfg), lease_timeout=cfg.lease_timeout,
    )


#: ``firmware`` option -> its link (config.FIRMWARES names the same ones).
LINK_BUILDERS: dict[str, Callable[[DeviceConfig, LinkListener, Any], DeviceLink]] = {
    "stock": _stock,
    "esphome": _esphome,
    "stock_mqtt": _stock_mqtt,
    "dragonbreath": _dragonbreath,
}


def make_link(cfg: DeviceConfig, listener: LinkListener, mqtt: Any) -> DeviceLink:
    """The link for ``cfg``'s firmware, reporting to ``listener``."""
    return LINK_BUILDERS[cfg.firmware](cfg, listener, mqtt)
