"""Live notices: what a person must know now, in every open UI at once.

A Moonraker warning reaches a UI only when it loads ``/server/info`` (at
connect or reload); an entry of Moonraker's announcements component is sent
to every open page (``notify_announcement_update``), and Mainsail and Fluidd
show it in their notification bell at once.  So each condition of ours is
an announcement as well as a warning, plus one console line when it starts
(``!! ...``, as Moonraker's own announcements do) and one when it ends.

One entry per key (device and condition): a changed text or priority
replaces the entry (Moonraker has no update call), an ended condition
removes it, and entries of ours left over from an earlier run are removed
at start-up.  Every change goes through one task, in order: Moonraker names
an entry by its feed and the second it was added, so a remove must be done
before an add of the same key.
"""

from __future__ import annotations

import logging
import re
from typing import Any, NamedTuple

#: Every feed of ours starts with this; the rest names the device and condition.
FEED_PREFIX = "panda_breath"
#: Where the bell's entry links to: the devices' live state.
STATUS_PATH = "/server/panda_breath/status"


class Notice(NamedTuple):
    title: str
    text: str
    #: Moonraker's priorities: "high" or "normal".
    priority: str


def feed_name(key: str) -> str:
    return FEED_PREFIX + "_" + re.sub(r"[^A-Za-z0-9_]+", "_", key)


def status_url(server: Any) -> str:
    """The status endpoint on this Moonraker, as a UI on another machine reaches it."""
    info = server.get_host_info()
    address = str(info.get("address") or "")
    if address.lower() in ("", "all", "0.0.0.0", "::"):
        address = "%s.local" % info.get("hostname", "localhost")
    elif ":" in address:
        address = "[%s]" % address
    return "http://%s:%s%s" % (address, info.get("port", 7125), STATUS_PATH)


class Notices:
    """This component's announcements, kept equal to what is wanted."""

    def __init__(self, server: Any) -> None:
        self.server = server
        #: key -> the notice that should be shown now
        self.wanted: dict[str, Notice] = {}
        #: key -> (the notice shown, its entry_id)
        self.shown: dict[str, tuple[Notice, str]] = {}
        self._announcements: Any = None
        self._started = False
        self._task: Any = None
        self._dirty = False

    def show(self, key: str, notice: Notice, console: str | None = None) -> None:
        """``key``'s condition holds, as ``notice`` says; ``console`` is written
        when it starts (not when its text changes)."""
        if key not in self.wanted and console:
            self._console(console)
        if self.wanted.get(key) != notice:
            self.wanted[key] = notice
            self._kick()

    def end(self, key: str, console: str | None = None) -> None:
        """``key``'s condition is over; ``console`` is written if it held."""
        if self.wanted.pop(key, None) is None:
            return
        if console:
            self._console(console)
        self._kick()

    def holds(self, key: str) -> bool:
        return key in self.wanted

    async def start(self) -> None:
        """Remove the entries an earlier run of ours left, then show what is wanted."""
        try:
            self._announcements = self.server.lookup_component("announcements")
            entries = await self._announcements.get_announcements(True)
        except Exception as exc:  # noqa: BLE001 - no announcements: console and warnings only
            logging.info("panda_breath: Moonraker's announcements are not available: %s", exc)
            self._announcements = None
            entries = []
        for entry in entries:
            if str(entry.get("feed", "")).startswith(FEED_PREFIX + "_"):
                await self._remove(str(entry.get("entry_id")))
        self._started = True
        self._kick()

    def _console(self, line: str) -> None:
        self.server.send_event("server:gcode_response", line)

    def _kick(self) -> None:
        self._dirty = True
        if self._started and self._announcements is not None and self._task is None:
            self._task = self.server.get_event_loop().create_task(self._sync())

    async def _sync(self) -> None:
        try:
            while self._dirty:
                self._dirty = False
                for key in list(self.shown):
                    if self.wanted.get(key) != self.shown[key][0]:
                        await self._remove(self.shown.pop(key)[1])
                for key, notice in list(self.wanted.items()):
                    if key not in self.shown:
                        self.shown[key] = (notice, self._add(key, notice))
        except Exception:  # noqa: BLE001 - a notice must never take the component down
            logging.exception("panda_breath: updating Moonraker's announcements failed")
        finally:
            self._task = None

    def _add(self, key: str, notice: Notice) -> str:
        entry = self._announcements.add_internal_announcement(
            notice.title, notice.text, status_url(self.server), notice.priority, feed_name(key))
        return str(entry.get("entry_id", ""))

    async def _remove(self, entry_id: str) -> None:
        try:
            await self._announcements.remove_announcement(entry_id)
        except Exception as exc:  # noqa: BLE001 - already gone (dismissed and pruned)
            logging.info("panda_breath: announcement %s not removed: %s", entry_id, exc)
