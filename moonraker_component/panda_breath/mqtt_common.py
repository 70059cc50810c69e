"""What both MQTT firmwares share: the protocol's shape, publishes, payload text.

A protocol object turns a Klipper target into ``Publish`` tuples and device
messages into ``DeviceReport``s; the link does the I/O.  Nothing here logs or
keeps a payload: decode errors say what was wrong, never what was sent.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from .model import DeviceReport, FrameError

#: No message of either firmware comes near this; larger ones are dropped unread.
MAX_PAYLOAD_BYTES = 16 * 1024

# A plain decimal number as ESPHome prints it ("38.4", "-5", "1e2"); Python's
# float() would also take "inf", "1_000" and surrounding junk.
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

AVAILABLE = "online"
UNAVAILABLE = "offline"


class Publish(NamedTuple):
    """One MQTT message to send, in order with the others of its command."""

    topic: str
    payload: str
    retain: bool = False


class MqttProtocol:
    """One firmware's topics and payloads; ``MqttDeviceLink`` does the I/O."""

    availability_topic: str
    #: Where a host watchdog on the device is fed; None: the firmware has none.
    heartbeat_topic: str | None = None
    #: The topic prefix, for the status and the log.
    base: str

    def topics(self) -> list[str]:
        """What to subscribe to, availability first: its retained value decides
        whether the retained states after it are current or left over."""
        raise NotImplementedError

    def decode(self, topic: str, payload: bytes) -> DeviceReport:
        """One message as a report; FrameError is the only exception, and a
        decoder bug's one names its type, never the payload."""
        try:
            return self._decode(topic, payload_text(payload))
        except FrameError:
            raise
        except Exception as exc:
            raise FrameError("undecodable frame (%s)" % type(exc).__name__) from None

    def _decode(self, topic: str, text: str) -> DeviceReport:
        raise NotImplementedError

    def encode(self, target: float) -> list[Publish]:
        """What puts the device at ``target`` (0 = off), in order."""
        raise NotImplementedError

    def heartbeat(self, target: float) -> Publish | None:
        """What feeds the device's host watchdog while heating; None: it has none."""
        return None

    def reset(self) -> None:
        """Forget what the device said (after a broker reconnect everything is resent)."""


def payload_text(payload: bytes) -> str:
    """The payload as text, stripped; FrameError for oversized or non-UTF-8 payloads."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FrameError(f"oversized payload ({len(payload)} bytes)")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise FrameError("payload is not UTF-8") from None


def parse_decimal(text: str) -> float | None:
    """A finite decimal number, None for ESPHome's ``nan``; FrameError for anything
    else, including digits beyond float range that float() would make infinite."""
    if text.lower() in ("nan", "-nan", "none"):
        return None
    if not _DECIMAL_RE.fullmatch(text):
        raise FrameError("payload is not a number")
    number = float(text)
    if not math.isfinite(number):
        raise FrameError("payload is out of range")
    return number


def parse_availability(text: str) -> bool:
    """``online`` -> True, ``offline`` -> False (any case); FrameError otherwise."""
    word = text.lower()
    if word == AVAILABLE:
        return True
    if word == UNAVAILABLE:
        return False
    raise FrameError("availability payload is neither online nor offline")


def is_topic_level(text: str) -> bool:
    """One MQTT topic level we may subscribe to: no separators, wildcards or spaces."""
    return bool(text) and not any(ch in text for ch in "/+#") and not any(
        ch.isspace() for ch in text
    )


def is_topic_prefix(text: str) -> bool:
    """A prefix of one or more levels, without wildcards and empty levels."""
    return bool(text) and all(is_topic_level(level) for level in text.split("/"))
