"""Fault schedules (``--fault KIND[:SECONDS]@AT``) and parsing of control-action parameters.

A scheduled fault is just a control action run at a start-up offset, so the
CLI, the HTTP endpoint and the Python API share one set of actions (see
``SimCore.control``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pbsim.hostile import NEW_KINDS

#: Shorthand fault kinds for ``--fault`` and ``/sim/control`` -> (action, fixed params).
#: The optional ``:SECONDS`` becomes the action's duration parameter.
FAULT_KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "drop": ("drop", {}),
    "silence": ("silence", {}),
    "reboot": ("reboot", {}),
    "refuse": ("refuse", {}),
    "malformed": ("malformed", {"kind": "json"}),
    "wrong_types": ("malformed", {"kind": "types"}),
    "oversize": ("malformed", {"kind": "oversize"}),
    "binary": ("malformed", {"kind": "binary"}),
    **{kind: ("malformed", {"kind": kind}) for kind in NEW_KINDS},
    "hostile": ("malformed", {"kind": "all"}),
    "reboot_wipe": ("reboot", {"wipe": True}),
    "occupy": ("occupy", {}),
    "ptc_short": ("sensor_fault", {"sensor": "ptc", "code": 1}),
    "ptc_open": ("sensor_fault", {"sensor": "ptc", "code": 2}),
    "warehouse_short": ("sensor_fault", {"sensor": "warehouse", "code": 1}),
    "warehouse_open": ("sensor_fault", {"sensor": "warehouse", "code": 2}),
    "heater_fault": ("sensor_fault", {"sensor": "heater", "code": 1}),
}
#: Which parameter ``:SECONDS`` fills for each action.
DURATION_PARAM = {"silence": "seconds", "refuse": "seconds", "reboot": "down",
                  "sensor_fault": "seconds", "occupy": "seconds"}


@dataclass(frozen=True)
class ScheduledFault:
    kind: str
    at: float
    seconds: float | None = None

    @classmethod
    def parse(cls, spec: str) -> ScheduledFault:
        """``KIND[:SECONDS]@AT``, e.g. ``silence:20@5``, ``reboot@10``, ``ptc_short:30@2``."""
        head, sep, at = spec.partition("@")
        if not sep:
            raise ValueError(f"fault {spec!r}: expected KIND[:SECONDS]@AT_SECONDS")
        kind, _, seconds = head.partition(":")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault {spec!r}: unknown kind; use one of {sorted(FAULT_KINDS)}")
        return cls(kind, float(at), float(seconds) if seconds else None)

    def action(self) -> tuple[str, dict[str, Any]]:
        action, fixed = FAULT_KINDS[self.kind]
        params = dict(fixed)
        if self.seconds is not None and action in DURATION_PARAM:
            params[DURATION_PARAM[action]] = self.seconds
        return action, params


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def optional_float(params: dict[str, Any], name: str) -> float | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    return float(value)


def optional_bool(params: dict[str, Any], name: str) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    return parse_bool(value)
