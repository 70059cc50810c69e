"""``SimCore``: what every simulated firmware shares, knowing none of them.

It owns the thermal model, the flash, the journal, the model clock's tick
loop, the life cycle (start, stop, reboot), the fault switches every build has
(sensor faults, refused connections, hostile payloads, forced temperatures)
and the control-action dispatch behind ``/sim/control``. A personality
(``stock_sim``, ``esphome_sim``, ``dragonbreath_sim``) supplies the device, its
listener, its transports and its own actions through the hooks below.

All state lives on one asyncio loop. Wall-clock cadences stay wall clock; the
thermal model and the device's timers run ``time_scale`` times faster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from pbsim import hostile
from pbsim.device import FAULT_FIELDS, DeviceCore, Flash
from pbsim.faults import FAULT_KINDS, ScheduledFault, optional_bool, optional_float
from pbsim.journal import Journal
from pbsim.thermal import ThermalModel, ThermalParams

if TYPE_CHECKING:
    from pbsim.options import SimOptions

log = logging.getLogger("pbsim")

SENSOR_FIELDS = {
    "ptc": "ptc_sensor_status",
    "warehouse": "warehouse_sensor_status",
    "chamber": "warehouse_sensor_status",
    "heater": "ptc_heater_status",
}

Action = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class Listener(Protocol):
    """The personality's TCP listener (it also serves ``/sim/state`` and ``/sim/control``)."""

    port: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SimCore:
    """One simulated device on loopback. ``await start()``, talk to it, ``await stop()``."""

    #: Wall seconds between periodic reports when ``frame_interval`` is not set.
    default_frame_interval = 2.0
    device: DeviceCore
    server: Listener

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.time_scale = float(options.time_scale)
        self.frame_interval = options.frame_interval or self.default_frame_interval
        self.journal = Journal()
        self.flash = Flash(options.state_file)
        self.thermal = ThermalModel(ThermalParams(ambient=options.ambient))
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started_at = self.booted_at = time.monotonic()
        self.boot_count = 1
        self.refuse_until = 0.0
        self.down_until = 0.0
        self._rebooting = False
        self._fault_clears: dict[str, asyncio.TimerHandle] = {}
        self.running = False

    # -- hooks a personality fills in --------------------------------------------------------
    def _loops(self) -> list[Coroutine[Any, Any, None]]:
        """The personality's own periodic tasks, started with the simulator."""
        return []

    def _ticked(self) -> None:
        """After every model step (the device's own loop may publish)."""

    def _connect_transports(self) -> None:
        """At start and after every boot: connect outgoing transports (MQTT)."""

    async def _close_transports(self, power_cut: bool) -> None:
        """At stop (clean) or a reboot (``power_cut``): close outgoing transports."""

    def _cut_connections(self) -> None:
        """A power cut: every client connection to the device dies."""

    def _write_flash(self, **overrides: Any) -> None:
        """Write settings to flash as if saved before the (re)boot (builds that keep some)."""

    def _reboot_overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """The ``reboot`` action's settings to write to flash (none by default)."""
        return {}

    def _send_hostile(self, kind: str, size: int | None, depth: int) -> int:
        raise NotImplementedError

    def _actions(self) -> dict[str, Action]:
        """Control actions by name; a personality adds its own to these."""
        return {
            "refuse": lambda p: self.refuse(float(p.get("seconds", 10))),
            "reboot": lambda p: {"started": self.reboot(
                optional_float(p, "down"), bool(optional_bool(p, "wipe")),
                **self._reboot_overrides(p))},
            "malformed": self._control_malformed,
            "set_temps": self._control_temperatures,
            "thermal": self._control_temperatures,
            "time_scale": lambda p: self.set_time_scale(float(p["value"])),
            "state": lambda p: {"state": self.state()},
            "reset_session_peak": lambda p: self.journal.sessions.reset_peak(),
        }

    def _state(self, now: float) -> dict[str, Any]:
        """The personality's fields of ``/sim/state``."""
        return {}

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> SimCore:
        self._loop = asyncio.get_running_loop()
        await self.server.start()
        self.started_at = self.booted_at = time.monotonic()
        self.running = True
        self._spawn(self._tick_loop())
        for loop in self._loops():
            self._spawn(loop)
        for spec in self.options.faults:
            self._spawn(self._scheduled(ScheduledFault.parse(spec)))
        self._connect_transports()
        log.info(
            "Panda Breath simulator (%s) on %s:%d, time scale %g",
            self.options.firmware, self.options.host, self.port, self.time_scale,
        )
        return self

    async def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        for handle in self._fault_clears.values():
            handle.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_transports(power_cut=False)
        await self.server.stop()
        self.flash.save()

    async def __aenter__(self) -> SimCore:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host(self) -> str:
        return self.options.host

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task failed", exc_info=task.exception())

    async def _tick_loop(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.options.tick_interval)
            now = time.monotonic()
            self.device.advance((now - last) * self.time_scale)
            last = now
            if self.device.up:
                self._ticked()

    async def _paced(self, report: Callable[[], object]) -> None:
        """Call ``report`` every ``frame_interval`` wall seconds while the device is up.

        The cadence does not drift; a late wake-up starts a new one instead of catching up.
        """
        next_at = time.monotonic() + self.frame_interval
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += self.frame_interval
            if next_at < time.monotonic():
                next_at = time.monotonic() + self.frame_interval
            if self.device.up:
                report()

    async def _scheduled(self, fault: ScheduledFault) -> None:
        await asyncio.sleep(fault.at)
        action, params = fault.action()
        log.info("scheduled fault %s at +%gs", fault.kind, fault.at)
        self.control(action, params)

    # -- faults every build shares ---------------------------------------------------------
    def refusing(self) -> bool:
        return not self.device.up or time.monotonic() < self.refuse_until

    def refuse(self, seconds: float) -> None:
        """Refuse new connections for ``seconds`` (open ones stay)."""
        self.refuse_until = time.monotonic() + float(seconds)

    def reboot(
        self, down: float | None = None, wipe: bool = False, **flash_overrides: Any
    ) -> bool:
        """Power-cycle: drop everything, stay down ``down`` s, boot from flash (+ overrides).

        Returns False when a reboot is already in progress. ``wipe`` erases the
        flash first (lost settings): the build boots with its factory defaults.
        """
        if self._rebooting or not self.running:
            return False
        if wipe:
            self.flash.clear()
            self.journal.count("flash_wipes")
        self._rebooting = True
        wait = self.options.reboot_down_time if down is None else float(down)
        self.down_until = time.monotonic() + wait
        self.device.up = False
        self.device.set_relay(False)
        self.device.fan_on = False
        self._cut_connections()
        self._spawn(self._reboot(flash_overrides))
        log.info("rebooting (down %gs)", wait)
        return True

    async def _reboot(self, overrides: dict[str, Any]) -> None:
        await self._close_transports(power_cut=True)
        await asyncio.sleep(max(0.0, self.down_until - time.monotonic()))
        self._write_flash(**overrides)
        self.device.boot()
        self.device.up = True
        self.boot_count += 1
        self.booted_at = time.monotonic()
        self._rebooting = False
        self._connect_transports()
        log.info("booted (boot #%d)", self.boot_count)

    async def wait_up(self, timeout: float = 10.0) -> None:
        """Wait until a reboot in progress has finished."""
        deadline = time.monotonic() + timeout
        while self._rebooting or not self.device.up:
            if time.monotonic() > deadline:
                raise TimeoutError("simulator did not come back up")
            await asyncio.sleep(0.02)

    def sensor_fault(
        self, sensor: str, code: int = 1, reading: float | None = None,
        seconds: float | None = None,
    ) -> str:
        """Set ``ptc``/``warehouse`` sensor status (1 short, 2 open) or ``heater``; 0 clears."""
        name = SENSOR_FIELDS.get(sensor, sensor)
        if name not in FAULT_FIELDS:
            raise ValueError(f"unknown sensor {sensor!r}; use ptc, warehouse or heater")
        pending = self._fault_clears.pop(name, None)
        if pending is not None:
            pending.cancel()
        self.device.set_fault(name, int(code), reading)
        if seconds and code and self._loop is not None:
            self._fault_clears[name] = self._loop.call_later(
                float(seconds), self.device.set_fault, name, 0
            )
        return name

    def clear_faults(self) -> None:
        for name in FAULT_FIELDS:
            if self.device.faults[name]:
                self.sensor_fault(name, 0)

    def send_malformed(
        self, kind: str = "json", count: int = 1, size: int | None = None,
        depth: int = hostile.DEFAULT_DEPTH,
    ) -> int:
        """Send hostile payloads (``pbsim.hostile`` kinds, or ``all``); returns how many.

        Each personality sends them where its clients read (WebSocket frames,
        MQTT state topics, event-stream events). The device's state is
        untouched, so its next regular report is normal again.
        """
        sent = 0
        for _ in range(int(count)):
            for one in hostile.kinds(kind):
                n = self._send_hostile(one, size, int(depth))
                self.journal.count(f"hostile_{one}", n)
                sent += n
        self.journal.count("hostile_count", sent)
        log.info("sent %d hostile payload(s) of kind %s", sent, kind)
        return sent

    def set_temperatures(
        self, chamber: float | None = None, ptc: float | None = None, ambient: float | None = None
    ) -> None:
        """Force model temperatures (e.g. start with a hot chamber)."""
        self.thermal.set_temperatures(chamber, ptc, ambient)

    def set_time_scale(self, value: float) -> None:
        if value <= 0:
            raise ValueError("time scale must be positive")
        self.time_scale = float(value)

    # -- control dispatch (HTTP and CLI schedules) -------------------------------------------
    def control(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a named control action; raises ValueError/KeyError on bad input."""
        p = dict(params or {})
        if action in FAULT_KINDS and FAULT_KINDS[action][0] != action:
            action, fixed = FAULT_KINDS[action]
            p = {**fixed, **p}
        handler = self._actions().get(action)
        if handler is None:
            raise KeyError(f"unknown action {action!r} for {self.options.firmware}")
        return {"ok": True, "action": action, **(handler(p) or {})}

    def _control_malformed(self, p: dict[str, Any]) -> dict[str, Any]:
        size = optional_float(p, "size")
        sent = self.send_malformed(
            p.get("kind", "json"), int(p.get("count", 1)),
            None if size is None else int(size),
            int(p.get("depth", hostile.DEFAULT_DEPTH)),
        )
        return {"sent": sent, "hostile_count": self.journal.counters["hostile_count"]}

    def _control_temperatures(self, p: dict[str, Any]) -> None:
        self.set_temperatures(
            optional_float(p, "chamber"), optional_float(p, "ptc"), optional_float(p, "ambient")
        )

    def http_control(self, query: dict[str, str]) -> tuple[int, Any]:
        """``GET /sim/control?action=NAME&...``: 200 and the result, or 400 and why."""
        action = query.pop("action", "")
        try:
            return 200, self.control(action, query)
        except (KeyError, ValueError, TypeError) as exc:
            return 400, {"ok": False, "action": action, "error": str(exc).strip("'\"")}

    # -- observable state ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The true device state plus counters and recent frames (``GET /sim/state``)."""
        now = time.monotonic()
        d = self.device
        return {
            "firmware": self.options.firmware,
            "port": self.port,
            "time": time.time(),
            "time_scale": self.time_scale,
            "frame_interval": self.frame_interval,
            "up": d.up,
            "rebooting": self._rebooting,
            "boot_count": self.boot_count,
            "uptime": round(now - self.booted_at, 3) if d.up else 0.0,
            "sim_uptime": round(now - self.started_at, 3),
            "model_time": round(d.model_time, 3),
            "chamber_temp": round(self.thermal.chamber, 3),
            "ptc_temp": round(self.thermal.ptc, 3),
            "ambient_temp": round(self.thermal.params.ambient, 3),
            "heater_on": d.relay_on,
            "fan_on": d.fan_on,
            "relay_switches": d.relay_switches,
            "sensor_faults": dict(d.faults),
            "fault_active": d.any_fault(),
            "refusing": self.refusing(),
            "refuse_remaining": round(max(0.0, self.refuse_until - now), 3),
            "counters": dict(self.journal.counters),
            "recent_frames": list(self.journal.recent),
            **self.journal.sessions.state(),
            "flash": {k: v for k, v in self.flash.data.items() if k != "ctl_token"},
            **self._state(now),
        }
