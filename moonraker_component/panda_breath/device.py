"""One configured ``[panda_breath]`` section and everything running it."""

from __future__ import annotations

import asyncio
from typing import Any

from .config import DeviceConfig
from .controller import DeviceController
from .device_notices import DeviceNotices
from .device_warnings import DeviceWarnings
from .link import DeviceLink
from .supervisor import LinkSupervisor
from .user_requests import UserRequests


class PandaBreathDevice:
    """One configured device: its controller, its link and the supervised task running it."""

    def __init__(
        self, cfg: DeviceConfig, controller: DeviceController, link: DeviceLink,
        supervisor: LinkSupervisor, warnings: DeviceWarnings, section_config: Any,
        notices: DeviceNotices,
    ) -> None:
        self.cfg, self.controller, self.link, self.supervisor = cfg, controller, link, supervisor
        self.warnings, self.notices = warnings, notices
        self.requests = UserRequests(controller)
        self.section_config = section_config
        self.task: asyncio.Task[None] | None = None
        #: Moonraker power devices for the drying cycle and the filtration
        #: (firmwares that have them).
        self.drying_device: Any = None
        self.filter_device: Any = None
