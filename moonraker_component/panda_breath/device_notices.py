"""When one device's conditions start and end, as live notices (``notices``).

- **Out of reach**: once the device has been out of reach for
  ``offline_warning_delay``; it ends as soon as the device is back.  A device
  that drops again within ``FLAP_WINDOW_S`` of such a notice ending flaps:
  the notice comes back at once and stays until the device has stayed
  reachable for ``flap_quiet`` (``offline_warning_delay``, at least
  ``FLAP_QUIET_S``), so a bout of drops is one entry, and a device dropping
  however often starts at most three outage notices a minute, never one per
  drop.
- **Fault**: while the device reports one; a latched one (DragonBreath) says
  how to clear it.
- **Link task failed**: a bug of ours stopped the link and it was restarted;
  it ends once the restarted link has been connected for ``LINK_RECOVERED_S``.

``high`` priority for a latched fault and for an outage or fault while
Klipper's target is above 0 (the print waits for heat it will not get),
``normal`` otherwise.  Texts change only with what they say (the priority,
the fault, the failure count), not with every drop or error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .config import DeviceConfig
from .controller import DeviceController
from .klippy_relay import console_error
from .link import DeviceLink, clock
from .notices import Notice, Notices
from .power_devices import device_name

#: A drop this soon after an outage notice ended is a flapping device.
FLAP_WINDOW_S = 60.0
#: A flapping device's notice ends after at least this long reachable.
FLAP_QUIET_S = 30.0
#: A restarted link connected this long counts as running again.
LINK_RECOVERED_S = 10.0


class DeviceNotices:
    def __init__(self, notices: Notices, cfg: DeviceConfig, link: DeviceLink,
                 controller: DeviceController, heater_object: Callable[[], str]) -> None:
        self.notices, self.cfg, self.link, self.controller = notices, cfg, link, controller
        self.heater_object = heater_object
        self.closing = False
        self.keys = {k: "%s_%s" % (cfg.name, k) for k in ("offline", "fault", "link")}
        #: The shown outage: (wall time it began, the reason then, flapping).
        self._outage: tuple[float, str, bool] | None = None
        #: Monotonic times: the last outage notice ended, the link came up.
        self._outage_ended: float | None = None
        self._up_at: float | None = None
        self._failures = 0
        self._failure = ""
        self._failed_at = 0.0
        self._timer: tuple[float, Any] | None = None

    def update(self) -> None:
        """Something changed (link, fault, target): bring the notices up to date."""
        if self.closing:
            return
        now = time.monotonic()
        if self.link.down_since is None:
            self._up_at = now if self._up_at is None else self._up_at
        else:
            self._up_at = None
        self._check_outage(now)
        self._check_fault()
        self._check_link_task(now)

    @property
    def flap_quiet(self) -> float:
        """How long a flapping device must stay reachable for its notice to end."""
        return max(self.cfg.offline_warning_delay, FLAP_QUIET_S)

    def link_failed(self, failure: str) -> None:
        """The supervisor restarted the link after ``failure``."""
        self._failures += 1
        self._failure = failure
        self._failed_at = time.monotonic()
        self.update()

    # Out of reach ------------------------------------------------------------

    def _check_outage(self, now: float) -> None:
        key, since = self.keys["offline"], self.link.down_since
        if since is not None and self._outage is None:
            flapping = (self._outage_ended is not None
                        and now - self._outage_ended < FLAP_WINDOW_S)
            wait = since + self.cfg.offline_warning_delay - time.time()
            if wait > 0 and not flapping:
                self._recheck(wait)
                return
            self._outage = (since, self.link.last_error or "no connection yet", flapping)
            self.notices.show(key, self._outage_notice(), self._console_line(
                "Panda Breath out of reach since %s (%s); the chamber reading is not current"
                % (clock(self._outage[0]), self._outage[1])))
        elif self._outage is not None:
            began, _reason, flapping = self._outage
            up_for = None if self._up_at is None else now - self._up_at
            if up_for is not None and flapping and up_for < self.flap_quiet:
                self._recheck(self.flap_quiet - up_for)
            elif up_for is not None:
                self._outage, self._outage_ended = None, now
                self.notices.end(key, "%s: Panda Breath reachable again (out of reach since %s)"
                                 % (self.heater_object(), clock(began)))
                return
            self.notices.show(key, self._outage_notice())

    def _outage_notice(self) -> Notice:
        assert self._outage is not None
        began, reason, flapping = self._outage
        target = self.controller.target
        if flapping:
            text = ("keeps dropping off its link (first out of reach at %s); this notice stays "
                    "until it has been reachable for %.0f s" % (
                        clock(began), self.flap_quiet))
        else:
            text = "has been out of reach since %s (%s)" % (clock(began), reason)
        text = "[%s]: the Panda Breath %s. Klipper's chamber reading is the last one received, " \
               "not current; %s." % (self.cfg.section, text, (
                   "Klipper's target %.0f °C cannot reach the device" % target if target > 0
                   else "a target set now reaches the device only when it is back"))
        return Notice(device_name(self.cfg.name, "out of reach"), text,
                      "high" if target > 0 else "normal")

    # Fault -------------------------------------------------------------------

    def _check_fault(self) -> None:
        key, fault = self.keys["fault"], self.controller.fault_text()
        if not fault:
            self.notices.end(key, "%s: Panda Breath fault cleared" % self.heater_object())
            return
        latched = self.link.arbitrates
        how = ("it is latched: once the cause is fixed, clear it with PANDA_BREATH_CLEAR_FAULT "
               "or POST /server/panda_breath/clear_fault?name=%s" % self.cfg.name
               if latched else "the device stays off until the fault clears")
        self.notices.show(key, Notice(
            device_name(self.cfg.name, "fault"),
            "[%s]: the device reports a fault (%s); %s." % (self.cfg.section, fault, how),
            "high" if latched or self.controller.target > 0 else "normal",
        ), self._console_line("Panda Breath fault (%s); %s" % (fault, how)))

    # The link task -------------------------------------------------------------

    def _check_link_task(self, now: float) -> None:
        key = self.keys["link"]
        if not self._failures:
            return
        if self._up_at is not None and self._up_at > self._failed_at:
            up_for = now - self._up_at
            if up_for >= LINK_RECOVERED_S:
                self._failures = 0
                self.notices.end(key, "%s: Panda Breath link running again" % self.heater_object())
                return
            self._recheck(LINK_RECOVERED_S - up_for)
        self.notices.show(key, Notice(
            device_name(self.cfg.name, "link restarted"),
            "[%s]: the device link stopped on an internal error (%s) and was restarted "
            "(%d time%s); the desired state is resent on reconnect. Please report this with "
            "moonraker.log." % (self.cfg.section, self._failure, self._failures,
                                "" if self._failures == 1 else "s"),
            "normal",
        ), self._console_line("Panda Breath link stopped on an internal error (%s) and was "
                              "restarted" % self._failure))

    # Helpers -------------------------------------------------------------------

    def _console_line(self, message: str) -> str:
        return console_error(self.heater_object(), message)

    def _recheck(self, delay: float) -> None:
        """Look again in ``delay`` s (the earliest of the checks asked for wins)."""
        at = time.monotonic() + max(0.0, delay) + 0.05
        if self._timer is not None:
            if self._timer[0] <= at:
                return
            self._timer[1].cancel()
        loop = self.notices.server.get_event_loop()
        self._timer = (at, loop.delay_callback(at - time.monotonic(), self._recheck_due))

    def _recheck_due(self) -> None:
        self._timer = None
        self.update()
