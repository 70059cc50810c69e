"""A front end's view of Moonraker: one WebSocket client subscribed to printer objects.

It counts what every Mainsail, Fluidd or KlipperScreen tab receives: the
``notify_status_update`` messages that name each subscribed object (and the
fields they carried), and every other notification by method.  The quiet
test and ``scripts/bench --scale`` read these counts.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


class UiClient:
    """Subscribes to ``objects`` and counts the notifications that follow."""

    def __init__(self, moonraker_url: str) -> None:
        self.ws: ClientConnection = connect(
            moonraker_url.replace("http://", "ws://") + "/websocket", max_queue=None,
            open_timeout=5, max_size=None,
        )
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._replies: dict[int, Any] = {}
        #: object -> notify_status_update messages that named it
        self.updates: Counter[str] = Counter()
        #: (object, field) -> how many of those messages carried the field
        self.fields: Counter[tuple[str, str]] = Counter()
        #: notification method -> count (notify_status_update included)
        self.methods: Counter[str] = Counter()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                message = json.loads(raw)
                with self._changed:
                    if "id" in message:
                        self._replies[message["id"]] = message
                    elif "method" in message:
                        self._count(message)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass

    def _count(self, message: dict[str, Any]) -> None:
        method = message["method"]
        self.methods[method] += 1
        if method != "notify_status_update":
            return
        status = (message.get("params") or [{}])[0]
        for name, fields in status.items():
            self.updates[name] += 1
            for field in fields if isinstance(fields, dict) else ():
                self.fields[(name, field)] += 1

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 10.0) -> Any:
        request_id = next(self._ids)
        self.ws.send(json.dumps({"jsonrpc": "2.0", "method": method, "id": request_id,
                                 "params": params or {}}))
        with self._changed:
            if not self._changed.wait_for(lambda: request_id in self._replies, timeout):
                raise TimeoutError(f"no reply to {method}")
            reply = self._replies.pop(request_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def subscribe(self, objects: list[str]) -> dict[str, Any]:
        """Subscribe to every field of ``objects``; returns their status now."""
        result = self.call("printer.objects.subscribe",
                           {"objects": {name: None for name in objects}})
        return dict(result["status"])

    def reset(self) -> None:
        """Start counting afresh."""
        with self._changed:
            self.updates.clear()
            self.fields.clear()
            self.methods.clear()

    def snapshot(self) -> tuple[Counter[str], Counter[tuple[str, str]], Counter[str]]:
        """Copies of (updates per object, updates per field, notifications per method)."""
        with self._changed:
            return Counter(self.updates), Counter(self.fields), Counter(self.methods)

    def close(self) -> None:
        self.ws.close()
        self._reader.join(timeout=2)

    def __enter__(self) -> UiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
