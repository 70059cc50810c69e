"""Loading Moonraker's own components that a section needs: [mqtt] and power.

Both are loaded on demand through ``server.load_component``; what failed is
said in a form the section's warning can carry.
"""

from __future__ import annotations

import logging
from typing import Any


def load_mqtt(server: Any, config: Any) -> tuple[Any, str | None]:
    """Moonraker's mqtt component, or None and the reason it is not there."""
    if not config.has_section("mqtt"):
        return None, (
            "moonraker.conf has no [mqtt] section. Add one with the broker's address "
            "(the broker the device uses) and restart Moonraker."
        )
    failed_before = "mqtt" in _failed_components(server)
    try:
        mqtt = server.load_component(config, "mqtt", None)
    except Exception as exc:  # noqa: BLE001 - "previously failed to load" is a ServerError
        mqtt = None
        logging.info("panda_breath: Moonraker's mqtt component is unavailable: %s", exc)
    if mqtt is None:
        if not failed_before:
            _forget_failure(server, "mqtt")
        return None, (
            "Moonraker's [mqtt] component failed to load (its error is in moonraker.log; "
            "/server/info lists it under failed_components)."
        )
    return mqtt, None


def load_power(server: Any, config: Any) -> Any:
    """Moonraker's power component (loaded here if no [power] section asked for it)."""
    try:
        return server.load_component(config, "power", None)
    except Exception as exc:  # noqa: BLE001 - drying from the UIs is optional
        logging.info("panda_breath: Moonraker's power component is unavailable: %s", exc)
        return None


# Moonraker's private ``failed_components`` list ---------------------------------
#
# Moonraker offers no public way to load a component early without owning its
# failure: when our load is the first to fail, Moonraker's own start-up loop
# loads [mqtt] again and reports the failure, but only if the name is not in
# the list; left there, that loop raises "previously failed to load" and stops
# Moonraker altogether.  These two functions are the only users of the list.


def _failed_components(server: Any) -> list[str]:
    failed = getattr(server, "failed_components", None)
    return failed if isinstance(failed, list) else []


def _forget_failure(server: Any, name: str) -> None:
    failed = _failed_components(server)
    if name in failed:
        failed.remove(name)
