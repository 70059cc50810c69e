"""The warnings one device shows in every UI while they hold.

A device out of reach for ``offline_warning_delay`` (at target 0 nothing
else would show it: the heater object just keeps its last temperature), and
a fault the device reports.  Each goes away when its cause does.
"""

from __future__ import annotations

import time
from typing import Any

from .config import DeviceConfig
from .controller import DeviceController
from .link import DeviceLink, clock


class DeviceWarnings:
    def __init__(self, server: Any, cfg: DeviceConfig, link: DeviceLink,
                 controller: DeviceController) -> None:
        self.server, self.cfg, self.link, self.controller = server, cfg, link, controller
        #: The "unreachable" warning is shown.
        self.offline_warned = False
        self.fault_warning: str | None = None
        self._offline_check: Any = None
        self.closing = False

    def update(self) -> None:
        self._check_reachability()
        self._check_fault()

    def _check_reachability(self) -> None:
        since = self.link.down_since
        warn_id = f"panda_breath_offline_{self.cfg.name}"
        if since is None or self.closing:
            if self._offline_check is not None:
                self._offline_check.cancel()
                self._offline_check = None
            if self.offline_warned:
                self.offline_warned = False
                self.server.remove_warning(warn_id)
            return
        wait = since + self.cfg.offline_warning_delay - time.time()
        if wait > 0:
            if self._offline_check is None:
                self._offline_check = self.server.get_event_loop().delay_callback(
                    wait + 0.05, self._offline_check_due)
        elif not self.offline_warned:
            self.offline_warned = True
            reason = self.link.last_error or "no connection yet"
            self.server.add_warning(
                f"[{self.cfg.section}]: the Panda Breath has been unreachable since "
                f"{clock(since)} ({reason}). "
                "Klipper's chamber reading is not current; targets cannot reach the "
                "device.",
                warn_id=warn_id,
            )

    def _offline_check_due(self) -> None:
        self._offline_check = None
        self._check_reachability()

    def _check_fault(self) -> None:
        warn_id = f"panda_breath_fault_{self.cfg.name}"
        text = self.controller.fault_text()
        if not text or self.closing:
            if self.fault_warning is not None:
                self.fault_warning = None
                self.server.remove_warning(warn_id)
            return
        if text == self.fault_warning:
            return
        self.fault_warning = text
        how = (
            "it is latched: clear it with POST /server/panda_breath/clear_fault"
            f"?name={self.cfg.name} once the cause is fixed"
            if self.link.arbitrates else "it stays off until the fault clears"
        )
        self.server.add_warning(
            f"[{self.cfg.section}]: the device reports a fault ({text}); {how}.",
            warn_id=warn_id,
        )
