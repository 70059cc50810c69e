"""Building blocks of the Panda Breath device simulator (``scripts/panda_breath_sim.py``).

The simulator is a faithful peer of the real device: it speaks the stock
WebSocket protocol (v1.0.0 .. v1.0.4, with each build's quirks), the v1.0.4
native MQTT interface and the ESPHome MQTT topics, and runs a thermal model so
that heating is observable. One concept per module:

- ``thermal``   chamber air / PTC element physics
- ``firmware``  what differs between the firmware builds
- ``device``    the parts every firmware shares (clock, relay, faults, flash)
- ``stock``     the stock firmware's settings, control loop and drying timer
- ``stock_ws``  the stock WebSocket protocol (snapshot, periodic frames, writes)
- ``stock_mqtt`` the v1.0.4 Home Assistant MQTT interface
- ``esphome``   the ESPHome build (bang_bang climate over MQTT)
- ``dragonbreath`` the DragonBreath firmware (HTTP API v2, event stream, lease watchdog);
  ``Simulator(firmware="dragonbreath")`` builds its ``DragonBreathSimulator``
- ``http_server`` the small asyncio HTTP/SSE listener DragonBreath is served by
- ``mqtt_link`` a paho client bridged onto the asyncio loop
- ``journal``   counters and the log of received frames shown in ``/sim/state``
- ``server``    the HTTP/WebSocket listener (``/ws``, ``/sim/state``, ``/sim/control``)
- ``faults``    fault schedules and the control-action table
- ``hostile``   hostile payloads (deep, huge numbers, NaN, unicode, giant, ...)
- ``secrets``   the fake Wi-Fi/AP passwords the snapshot carries in clear text
- ``simulator`` the ``Simulator`` that ties them together
"""

from pbsim.firmware import FIRMWARES
from pbsim.secrets import SECRET_AP_PASSWORD, SECRET_STRINGS, SECRET_WIFI_PASSWORD
from pbsim.simulator import SimOptions, Simulator

__all__ = [
    "FIRMWARES",
    "SECRET_AP_PASSWORD",
    "SECRET_STRINGS",
    "SECRET_WIFI_PASSWORD",
    "SimOptions",
    "Simulator",
]
