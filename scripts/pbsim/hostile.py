"""Hostile device->client payloads for the ``malformed`` action, built from a normal payload.

A bridge must survive whatever a broken or spoofed device sends and still obey
``TURN_OFF_HEATERS`` afterwards. Each kind attacks one parsing assumption:

- ``json``        truncated JSON
- ``types``       strings, null and lists where numbers belong
- ``oversize``    a valid payload padded to ``size`` (default 64 KiB)
- ``binary``      bytes that are not UTF-8 (a binary WS frame)
- ``deep``        valid JSON nested ``depth`` levels (a recursive parser overflows)
- ``huge_number`` a 400-digit integer in every numeric field (float() overflows)
- ``nonfinite``   the literals NaN, Infinity, -Infinity (not JSON, Python emits them)
- ``unicode``     lone surrogates, NUL, RTL marks, emoji and Unicode digits, still valid JSON
- ``wrong_root``  valid JSON of the wrong shape (list, number, string, null at the root)
- ``giant``       a valid payload padded beyond a client's transport limit

The JSON personalities (stock WebSocket, v1.0.4 MQTT state) share
:func:`json_payloads`; DragonBreath's nested state snapshot gets
:func:`nested_payloads`; ESPHome's plain-text topics build theirs in ``pbsim.esphome``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

LEGACY_KINDS = ("json", "types", "oversize", "binary")
NEW_KINDS = ("deep", "huge_number", "nonfinite", "unicode", "wrong_root", "giant")
KINDS = LEGACY_KINDS + NEW_KINDS

DEFAULT_DEPTH = 5000
OVERSIZE_BYTES = 65536
GIANT_WS_BYTES = 2 << 20  # above the bridge's 1 MiB tornado max_message_size
GIANT_MQTT_BYTES = 1 << 20  # above the bridge's 16 KiB MQTT payload limit

HUGE_NUMBER = 10**400 - 1  # 400 nines: a valid JSON integer no float can hold
NONFINITE = (math.nan, math.inf, -math.inf)
WRONG_TYPES: tuple[Any, ...] = ("hot", "yes", None, [45])
BINARY = b"\x00\xff\xfe not json \x00"
#: Strings a careless float() accepts (Arabic-Indic and fullwidth digits) or that
#: break logging and encoding (RTL override, emoji, escaped lone surrogate, NUL).
STRANGE_VALUES = ("\u0664\u0665", "\uff14\uff15", "\u202e54", "\U0001f525", "\\ud83d", "45\\u0000")


def kinds(kind: str) -> tuple[str, ...]:
    """``all`` or one kind, validated."""
    if kind == "all":
        return KINDS
    if kind not in KINDS:
        raise ValueError(f"unknown malformed kind {kind!r}; use one of {', '.join(KINDS)}, all")
    return (kind,)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_payloads(
    kind: str, fields: dict[str, Any], wrap: str | None, size: int, depth: int
) -> list[str | bytes]:
    """Hostile variants of the normal payload ``{wrap: fields}`` (or flat ``fields``).

    ``fields`` should start with the key a client reads first (the temperature).
    """
    numeric = [key for key, value in fields.items() if is_number(value)]
    first = numeric[0] if numeric else next(iter(fields))

    def shaped(body: Any) -> Any:
        return {wrap: body} if wrap else body

    def replaced(values: Any) -> str:
        body = dict(fields)
        for i, key in enumerate(numeric):
            body[key] = values[i % len(values)]
        return json.dumps(shaped(body))

    head = f'{{"{wrap}":' if wrap else ""
    tail = "}" if wrap else ""
    if kind == "json":
        return [head + "{" + json.dumps(first) + ":"]
    if kind == "types":
        return [json.dumps(shaped({key: WRONG_TYPES[i % 4] for i, key in enumerate(numeric)}))]
    if kind in ("oversize", "giant"):
        return [padded(shaped, fields, size)]
    if kind == "binary":
        return [BINARY]
    if kind == "deep":  # {"settings": [[[...]]]}, or the first field nested for a flat root
        return ["{" + json.dumps(wrap or first) + ":" + "[" * depth + "]" * depth + "}"]
    if kind == "huge_number":
        return [replaced([HUGE_NUMBER])]
    if kind == "nonfinite":  # one payload per literal, so every field sees each of them
        return [replaced([literal]) for literal in NONFINITE]
    if kind == "unicode":
        return [head + unicode_object(first, numeric) + tail]
    if kind == "wrong_root":
        roots: list[Any] = [[shaped(fields)], 42, "40", None, True]
        if wrap:
            roots += [{wrap: list(fields.values())}, {wrap: "40"}, {wrap: 40}, {wrap: None}]
        else:
            roots.append({"state": fields})
        return [json.dumps(root) for root in roots]
    raise ValueError(f"unknown malformed kind {kind!r}")


def padded(shaped: Any, fields: dict[str, Any], size: int) -> str:
    """The normal payload plus a ``padding`` string, exactly ``size`` characters if it fits."""
    base = json.dumps(shaped({**fields, "padding": ""}), separators=(",", ":"))
    pad = "x" * max(0, size - len(base))
    return json.dumps(shaped({**fields, "padding": pad}), separators=(",", ":"))


def unicode_object(first: str, numeric: list[str]) -> str:
    """A JSON object (text) with strange keys and values; escapes keep it valid JSON."""
    members = [
        '"\\ud800":"\\udfff"',  # lone surrogates, escaped
        f'"{first}\\u0000":"\\u0000"',  # NUL in a key and a value
        f'"\u202e{first}":"\u200f\U0001f525"',  # RTL override before a real key; RLM + emoji
        f'"{first}\u200b":1',  # a zero-width space makes a lookalike key
    ]
    for i, key in enumerate(numeric):
        members.append(f'"{key}":"{STRANGE_VALUES[i % len(STRANGE_VALUES)]}"')
    return "{" + ",".join(members) + "}"


def _map_leaves(value: Any, change: Callable[[str, Any], Any], key: str = "") -> Any:
    """``value`` with every leaf replaced by ``change(its key, leaf)``."""
    if isinstance(value, dict):
        return {k: _map_leaves(v, change, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_leaves(v, change, key) for v in value]
    return change(key, value)


def nested_payloads(
    kind: str, snapshot: dict[str, Any], keep: tuple[str, ...], size: int, depth: int
) -> list[str | bytes]:
    """Hostile variants of a nested JSON snapshot, each one line (an SSE ``data:`` line).

    Keys in ``keep`` (e.g. ``api_version``) keep their value where the kind
    allows, so a decoder gets past its first check and meets the rest.
    """
    def numbers(values: tuple[Any, ...]) -> str:
        cycle = iter(range(1 << 30))

        def change(key: str, value: Any) -> Any:
            if key in keep or not is_number(value):
                return value
            return values[next(cycle) % len(values)]

        return json.dumps(_map_leaves(snapshot, change))

    text = json.dumps(snapshot, separators=(",", ":"))
    first = keep[0] if keep else "state"
    if kind == "json":
        return [text[: len(text) // 2]]
    if kind == "types":
        return [numbers(WRONG_TYPES)]
    if kind in ("oversize", "giant"):
        return [padded(lambda body: body, snapshot, size)]
    if kind == "binary":
        return [BINARY]
    if kind == "deep":
        return ["{" + ",".join(f"{json.dumps(k)}:{json.dumps(snapshot.get(k))}" for k in keep)
                + ("," if keep else "") + json.dumps(first + "_nested") + ":"
                + "[" * depth + "]" * depth + "}"]
    if kind == "huge_number":
        return [numbers((HUGE_NUMBER,))]
    if kind == "nonfinite":  # one payload per literal, so every field sees each of them
        return [numbers((literal,)) for literal in NONFINITE]
    if kind == "unicode":
        strange = iter(range(1 << 30))

        def odd(key: str, value: Any) -> Any:
            if key in keep or value is None or isinstance(value, bool):
                return value
            return STRANGE_VALUES[next(strange) % len(STRANGE_VALUES)]

        body = json.dumps(_map_leaves(snapshot, odd), ensure_ascii=False)
        return ['{"\\ud800":"\\udfff","mode\\u0000":"\\u0000",' + body[1:]]
    if kind == "wrong_root":
        return [json.dumps(root) for root in ([snapshot], 42, "40", None, True)]
    raise ValueError(f"unknown malformed kind {kind!r}")
