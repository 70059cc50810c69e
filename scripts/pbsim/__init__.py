"""Building blocks of the Panda Breath device simulator (``scripts/panda_breath_sim.py``).

The simulator is a faithful peer of the real device: it speaks the stock
WebSocket protocol (v1.0.0 .. v1.0.4, with each build's quirks), the v1.0.4
native MQTT interface, the ESPHome MQTT topics and the DragonBreath HTTP API,
and runs a thermal model so that heating is observable. One concept per module:

- ``core``      ``SimCore``: what every personality shares (thermal model, flash,
  journal, life cycle, reboot, the fault switches, control dispatch, ``/sim/state``)
- ``options``   ``SimOptions``: everything the CLI can set
- ``simulator`` ``create_simulator``: the personality for a firmware name
- ``thermal``   chamber air / PTC element physics
- ``device``    the hardware every firmware shares (clock, relay, faults, flash)
- ``listener_sim`` the builds served by ``server`` (stock, ESPHome): drop,
  silence, occupy, the front-panel button
- stock: ``firmware`` (what differs between the builds), ``stock`` (settings,
  control loop, drying timer), ``stock_ws`` (the WebSocket protocol),
  ``stock_mqtt`` (v1.0.4's Home Assistant interface), ``stock_sim`` (the personality)
- ESPHome: ``esphome`` (bang_bang climate and its topics), ``esphome_sim`` (the personality)
- DragonBreath: ``dragonbreath`` (modes, lease, latched faults), ``dragonbreath_api``
  (HTTP API v2, event streams), ``dragonbreath_sim`` (the personality)
- transports: ``server`` (WebSocket + ``/sim/*``), ``http_server`` (HTTP/SSE),
  ``mqtt_link`` (a paho client on the asyncio loop)
- ``journal``   counters and the log of received frames shown in ``/sim/state``
- ``faults``    fault schedules and the control-action shorthands
- ``hostile``   hostile payloads (deep, huge numbers, NaN, unicode, giant, ...)
- ``secrets``   the fake Wi-Fi/AP passwords the snapshot carries in clear text
"""
