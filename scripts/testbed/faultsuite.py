"""The engine of ``scripts/faults``: fault rows, the per-firmware harness and the soak.

``scripts/faults.py`` documents every row and its bound; this module does the
work.  One :class:`Harness` per firmware path owns one real stack
(``testbed.stack.start_stack``: simulator, klippy + extra, Moonraker + the
component, Mosquitto for the MQTT paths) and reuses it for every row,
restarting only the part a fault broke.  Each :class:`Fault` puts the stack in
its starting state, injects the fault, waits for the end state on the
simulator's ``GET /sim/state`` (the device's truth) and returns one
:class:`Rep` per repetition.  After every repetition the harness counts
Klipper shutdowns the fault did not intend (``Transition to shutdown state``
in klippy's log) and scans the new part of Moonraker's and klippy's logs for
the simulator's secrets and raw frame text.

Outcomes are honest: a row that cannot apply to a path is ``n/a`` with the
reason, a simulator or component feature that is missing is ``not available``
(:class:`NotAvailable`), a row the machine cannot run is ``not run``, and the
stock firmware's lack of a watchdog is ``documented``, never a pass.

DragonBreath decides itself who controls it (a host lease, other controllers,
latched faults), so several rows have their own run there (``Fault.db``); its
hostile rows use the simulator's ``malformed`` action on the event stream, as
on the other paths.  A latched fault is
cleared only the way a user would: ``POST /server/panda_breath/clear_fault``.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pbsim.secrets import SECRET_AP_PASSWORD, SECRET_WIFI_PASSWORD, SECRET_WIFI_SSID

from testbed import ProcessError, wait_until
from testbed.configs import panda_section
from testbed.moonraker import MoonrakerError
from testbed.resync import answered_at, host_writes
from testbed.stack import (
    FIRMWARES,
    MQTT_FIRMWARES,
    MQTT_INSTANCE,
    STOCK_FIRMWARES,
    Stack,
    mqtt_section,
    panda_mqtt_section,
    start_stack,
)

DRAGONBREATH = "dragonbreath"

#: Klipper's target before most faults.
TARGET = 45
#: The target a row switches to while the device is out of reach, to prove convergence.
NEW_TARGET = 40
#: The component's defaults (the suite runs with them, not the tests' quick timings;
#: tests/test_faults_script.py checks they match).
SILENCE_TIMEOUT = 12.0
RECONNECT_MAX_DELAY = 5.0
REASSERT_INTERVAL = 20.0
#: Wall-clock state interval of the simulated MQTT devices (start_stack passes
#: ``--frame-interval 1``; the v1.0.4 state topic runs at 2 Hz).
MQTT_STATE_INTERVAL = {"stock_mqtt": 0.5, "esphome": 1.0}
#: Models examples/esphome/panda_breath.yaml: OFF on Moonraker's offline status,
#: and when no command or heartbeat came for host_timeout_ms (60 s).
ESPHOME_WATCHDOG_ARGS = (
    "--esphome-host-topic", f"{MQTT_INSTANCE}/moonraker/status",
    "--esphome-command-timeout", "60",
)
HOSTILE_KINDS = (
    "json", "types", "oversize", "binary", "deep", "huge_number", "nonfinite", "unicode",
    "wrong_root", "giant",
)
#: Longest uncommanded heat in the soak (wall s).  A stock device that boots
#: heating from flash can only be switched off once the component reconnects;
#: after a burst of faults (no connection lived the 2 s that resets the
#: backoff) the next attempt may be up to reconnect_max_delay away, plus the
#: connect and the 0.2 s sampling.
SOAK_HEAT_BOUND = RECONNECT_MAX_DELAY + 1.0
#: The name the name-resolution row gives the component as ``host``.
DEVICE_NAME = "panda-breath-sim.test"
SILENCE_S = 30.0
#: The stock WebSocket's silent-socket bound: the silence is seen at most
#: silence_timeout after the fault, then the link waits for its close to be
#: answered (up to CLOSE_WAIT_S, 5.5 s, when a silent device does not answer;
#: the simulator does), then 1 s to connect and resend.
SILENT_SOCKET_BOUND = SILENCE_TIMEOUT + 5.5 + 1.0
#: stock_mqtt's hung device: stopped longer than silence_timeout, so the
#: component must see the silence (within MQTT_SILENCE_SEEN: the last state up
#: to 0.5 s before the hang, the link's 0.25 s tick, the suite's 0.1 s poll).
MQTT_HANG_S = SILENCE_TIMEOUT + 4.0
MQTT_SILENCE_SEEN = SILENCE_TIMEOUT + 1.5
OCCUPY_S = 4.0
OUTAGE_S = 4.0
SIGKILL_WATCH_S = 2.0
HOLD_S = 0.3
#: A restarted device is in Klipper's state this soon after it answers again (issue 19).
ANSWER_TO_SYNC_BOUND = 0.5
#: The component treats a connection that lived 2 s as healthy (the next drop is
#: retried at once); faults are injected on a link at least this steady.
STEADY_S = 2.2
POLL_S = 0.05

#: What must never reach a log: the snapshot's passwords, and raw device frame text.
LOG_MARKERS: dict[str, str] = {
    "wifi password": SECRET_WIFI_PASSWORD,
    "ap password": SECRET_AP_PASSWORD,
    "wifi ssid (snapshot)": SECRET_WIFI_SSID,
    "raw frame {\"settings\":": '{"settings":',
    "raw frame \"warehouse_temper\":": '"warehouse_temper":',
    "raw frame \"wifi\":": '"wifi":',
    "raw state \"printer_bind\":": '"printer_bind":',
    "raw binary frame": "not json",
    "raw padding": "x" * 64,
    "raw deep nesting": "[" * 64,
    "raw huge number": "9" * 64,
}
SHUTDOWN_LINE = "Transition to shutdown state:"

# DragonBreath ------------------------------------------------------------------------------------
#: The component's ``lease_timeout`` (the device's ``comms_ms``): the shortest it allows.
DB_LEASE_TIMEOUT = 10.0
#: The control token the simulated device and the component share (a fake secret: it must
#: never reach a log; Moonraker's own dump of its configuration is not counted).
DB_TOKEN = "sim-db-Tok3n-9Wq4Lz"
#: The other controller's target in the take-over rows.
DB_OTHER_TARGET = 38
#: How long another controller's state must stand, untouched by the bridge.
TAKEOVER_HOLD_S = 3.0
#: How long a latched fault must stay latched with the bridge connected (it never clears one).
FAULT_HOLD_S = 2.5
#: How long the DragonBreath event stream is silenced (half-open stream).
DB_SILENCE_S = 8.0
#: The component's stream-silence limit: min(6 s, silence_timeout / 2).
DB_STREAM_SILENCE = min(6.0, SILENCE_TIMEOUT / 2)
#: The component retries a lost event stream after 1, 2, 4 ... s (from 1 s again once a
#: stream lived 30 s); the rows that drop it three times in a row see up to 4 s.
DB_STREAM_RETRY_BOUND = 4.0 + 1.0
LOG_MARKERS["dragonbreath token"] = DB_TOKEN
LOG_MARKERS["raw state \"state_revision\":"] = '"state_revision":'
#: Moonraker logs its whole configuration (the token with it) when it starts.
CONFIG_DUMP = re.compile(r"#{20} Moonraker Configuration #{20}.*?All Configuration Files:",
                         re.DOTALL)


class NotAvailable(Exception):
    """The simulator or the component does not offer what this row needs (yet)."""


# -- the device's truth per path ---------------------------------------------------------------


def heating(firmware: str, target: float) -> Callable[[dict[str, Any]], bool]:
    """The simulated device heats at ``target`` the way the component writes it."""
    if firmware == DRAGONBREATH:  # power_on at T under a lease taken by a Klipper actor
        return lambda s: (s["mode"] == "power_on" and s["requested_c"] == target
                          and (s.get("lease") or {}).get("kind") == "klipper")
    if firmware == "esphome":
        low, high = target - 0.5, target + 0.5

        def esp(state: dict[str, Any]) -> bool:
            e = state.get("esphome") or {}
            return (e.get("mode") == "heat" and abs(e.get("low", -1) - low) < 0.01
                    and abs(e.get("high", -1) - high) < 0.01)

        return esp
    if firmware == "stock_mqtt":
        return lambda s: s["work_on"] is True and s["mode"] == "on" and s["set_temp"] == target
    return lambda s: s["work_on"] is True and s["work_mode"] == 2 and s["set_temp"] == target


def is_off(firmware: str) -> Callable[[dict[str, Any]], bool]:
    if firmware == DRAGONBREATH:
        return lambda s: s["mode"] == "off"
    if firmware == "esphome":
        return lambda s: (s.get("esphome") or {}).get("mode") == "off"
    return lambda s: s["work_on"] is False


def desired(firmware: str, target: float) -> Callable[[dict[str, Any]], bool]:
    return heating(firmware, target) if target > 0 else is_off(firmware)


def heats(state: dict[str, Any]) -> bool:
    """Any heat at all: a powered device commanded on, or its relay closed."""
    return bool(state.get("up")) and (bool(state.get("work_on")) or bool(state.get("heater_on")))


def describe_state(firmware: str, state: dict[str, Any] | None) -> str:
    if not state:
        return "unknown"
    if firmware == DRAGONBREATH:
        if state.get("fault_latched"):
            return f"OFF, fault {state.get('fault_reason')!r}"
        if state.get("mode") == "off":
            return "OFF"
        lease = state.get("lease") or {}
        return (f"{state.get('mode')} {state.get('requested_c')} (source {state.get('source')}, "
                f"lease {lease.get('kind')})")
    if firmware == "esphome":
        e = state.get("esphome") or {}
        if e.get("mode") == "off":
            return "OFF"
        return f"heat {e.get('low')}..{e.get('high')}"
    if state.get("work_on") is False:
        return "OFF"
    return f"heating {state.get('set_temp')} (mode {state.get('work_mode') or state.get('mode')})"


# -- results -------------------------------------------------------------------------------------


@dataclass
class Rep:
    """One repetition of one row."""

    ended: str  # "desired 45", "OFF", "heats on", "error", ...
    ok: bool | None  # None: an outcome documented as a limit, not a verdict
    seconds: float | None = None
    note: str = ""
    intended_shutdowns: int = 0
    shutdowns: int = 0  # filled by the harness: shutdowns the fault did not intend
    shutdown_messages: list[str] = field(default_factory=list)
    secrets: dict[str, int] = field(default_factory=dict)
    #: Reboot rows: seconds from the device's first answer to in sync (testbed.resync).
    answer_to_sync: float | None = None


@dataclass
class Row:
    fault: str
    firmware: str
    expect: str
    bound: float | None
    status: str  # ok, MISS, error, documented, n/a, not available, not run
    reps: list[Rep] = field(default_factory=list)
    reason: str = ""

    @property
    def times(self) -> list[float]:
        return [r.seconds for r in self.reps if r.seconds is not None]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def max(self) -> float | None:
        return max(self.times) if self.times else None

    @property
    def shutdowns(self) -> int:
        return sum(r.shutdowns for r in self.reps)

    @property
    def secrets(self) -> int:
        return sum(sum(r.secrets.values()) for r in self.reps)

    @property
    def ended(self) -> str:
        kinds: dict[str, int] = {}
        for rep in self.reps:
            kinds[rep.ended] = kinds.get(rep.ended, 0) + 1
        if not kinds:
            return "-"
        if len(kinds) == 1:
            return next(iter(kinds))
        return ", ".join(f"{k} x{n}" for k, n in kinds.items())

    @property
    def failed(self) -> bool:
        return self.status in ("MISS", "error")

    def finish(self) -> Row:
        """Derive the status from the repetitions (rows already n/a etc. are kept)."""
        if self.status != "pending":
            return self
        if any(r.ended == "error" for r in self.reps):
            self.status = "error"
        elif any(r.ok is False for r in self.reps) or self.shutdowns or self.secrets or (
            self.bound is not None and self.max is not None and self.max > self.bound
        ):
            self.status = "MISS"
        elif self.reps and all(r.ok is None for r in self.reps):
            self.status = "documented"
        else:
            self.status = "ok"
        notes = sorted({r.note for r in self.reps if r.note})
        if notes and not self.reason:
            self.reason = "; ".join(notes)
        self._finish_answer_to_sync()
        return self

    def _finish_answer_to_sync(self) -> None:
        """Reboot rows: the answer-to-sync times (median, worst) and their 0.5 s bound."""
        times = [r.answer_to_sync for r in self.reps if r.answer_to_sync is not None]
        if not times:
            return
        summary = "in sync %.3f s (median), %.3f s (worst) after the device answered, %d runs" % (
            statistics.median(times), max(times), len(times))
        if max(times) > ANSWER_TO_SYNC_BOUND:
            summary += f" (bound {ANSWER_TO_SYNC_BOUND:g} s)"
            if self.status == "ok":
                self.status = "MISS"
        self.reason = f"{summary}; {self.reason}" if self.reason else summary

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault, "firmware": self.firmware, "expect": self.expect,
            "ended": self.ended, "status": self.status, "bound_s": self.bound,
            "median_s": self.median, "max_s": self.max, "shutdowns": self.shutdowns,
            "secrets": self.secrets, "reason": self.reason,
            "reps": [asdict(r) for r in self.reps],
        }


# -- logs ------------------------------------------------------------------------------------------


class LogWatch:
    """Byte offsets into the stack's logs, to scan only what a repetition wrote."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def paths(self) -> list[Path]:
        m, k = self.stack.moonraker, self.stack.klippy
        return [m.log_path, m.stdout_path, k.log_path, k.output_path]

    def mark(self) -> dict[Path, int]:
        return {p: (p.stat().st_size if p.exists() else 0) for p in self.paths()}

    def new_text(self, mark: dict[Path, int]) -> dict[Path, str]:
        out = {}
        for path in self.paths():
            if not path.exists():
                continue
            start = mark.get(path, 0)
            if path.stat().st_size < start:
                start = 0  # rotated or recreated
            with open(path, "rb") as f:
                f.seek(start)
                out[path] = CONFIG_DUMP.sub("", f.read().decode("utf-8", "replace"))
        return out

    def scan(self, mark: dict[Path, int]) -> tuple[list[str], dict[str, int]]:
        """(shutdown messages, {marker: occurrences}) in what was written since ``mark``."""
        shutdowns: list[str] = []
        found: dict[str, int] = {}
        for path, text in self.new_text(mark).items():
            if path == self.stack.klippy.log_path:
                shutdowns += [line.split(SHUTDOWN_LINE, 1)[1].strip()[:120]
                              for line in text.splitlines() if SHUTDOWN_LINE in line]
            for name, marker in LOG_MARKERS.items():
                n = text.count(marker)
                if n:
                    found[f"{name} in {path.name}"] = found.get(f"{name} in {path.name}", 0) + n
        return shutdowns, found


# -- name resolution ------------------------------------------------------------------------------


class HostsFile:
    """The private /etc/hosts of this process tree (see ``scripts/faults.py``, mount namespace).

    Edited in place (same inode), so the bind mount over /etc/hosts follows it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.read_text()

    def resolvable(self, on: bool) -> None:
        text = self.base + (f"127.0.0.1 {DEVICE_NAME}\n" if on else "")
        with open(self.path, "r+") as f:
            f.seek(0)
            f.write(text)
            f.truncate()


# -- DragonBreath: hostile events in the device's own stream --------------------------------


# -- the per-firmware harness ---------------------------------------------------------------------


class Harness:
    """One stack for one firmware path, brought back to health between repetitions."""

    def __init__(
        self, workdir: Path, firmware: str, hosts: HostsFile | None = None,
        progress: Callable[[str], None] = lambda _: None, time_scale: float = 30.0,
        impair: str | None = None, lease_timeout: float = DB_LEASE_TIMEOUT,
    ) -> None:
        self.workdir, self.firmware, self.hosts, self.progress = workdir, firmware, hosts, progress
        self.time_scale = time_scale
        #: A profile of scripts/impair.py: the stack's device link runs through the proxy.
        self.impair, self.lease_timeout = impair, lease_timeout
        self.stack: Stack | None = None
        self.host_name: str | None = None  # None: the simulator's IP address
        self.starts = 0
        #: DragonBreath: the relay the component reaches the simulator through.
        self._link_seen: tuple[int, int, int] | None = None
        self._steady_since = 0.0
        #: The component's status at the last poll of wait_both (for notes on a miss).
        self.last_device: dict[str, Any] | None = None

    @property
    def mqtt(self) -> bool:
        return self.firmware in MQTT_FIRMWARES

    @property
    def ws(self) -> bool:
        return self.firmware in STOCK_FIRMWARES

    @property
    def db(self) -> bool:
        return self.firmware == DRAGONBREATH

    @property
    def s(self) -> Stack:
        assert self.stack is not None
        return self.stack

    def panda_options(self) -> dict[str, Any]:
        # None removes the testbed's quick timings: the component's defaults apply.
        options: dict[str, Any] = {"silence_timeout": None, "reconnect_max_delay": None}
        if self.ws and self.host_name:
            options["host"] = self.host_name
        if self.db:
            options.update(lease_timeout=f"{self.lease_timeout:g}", token=DB_TOKEN)
        return options

    def moonraker_config(self) -> str:
        if self.mqtt:
            assert self.s.broker is not None
            return mqtt_section(self.s.broker.port) + panda_mqtt_section(
                self.firmware, **self.panda_options()
            )
        port = self.s.impair.port if self.s.impair is not None else self.s.sim.port
        if self.db:
            return panda_section(port, firmware=DRAGONBREATH, **self.panda_options())
        return panda_section(port, **self.panda_options())

    def start(self) -> None:
        self.starts += 1
        run = self.workdir / f"{self.firmware}-{self.starts}"
        sim_args: tuple[str, ...] = ()
        if self.firmware == "esphome":
            sim_args = ESPHOME_WATCHDOG_ARGS
        if self.db:
            sim_args = ("--db-token", DB_TOKEN)
        self.stack = start_stack(
            run, self.firmware, time_scale=self.time_scale, sim_args=sim_args,
            panda_options=self.panda_options(), moonraker_debug=True, impair=self.impair,
        )
        self.logs = LogWatch(self.stack)

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    # -- helpers --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return self.s.sim.state()

    def device(self) -> dict[str, Any]:
        return self.s.device()

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        """A simulator control action; a 400 for an unknown action/kind is NotAvailable."""
        try:
            return self.s.sim.control(action, **params)
        except ProcessError as exc:
            if "HTTP 400" in str(exc):
                raise NotAvailable(f"simulator: {action} {params}: {exc}") from None
            raise

    def clear_fault(self) -> None:
        """What a user does about a latched DragonBreath fault (the bridge never does it)."""
        self.s.moonraker.post("/server/panda_breath/clear_fault", {"name": "panda_breath"})

    def inject_hostile(self, kind: str) -> int:
        """Hostile device->client payloads of ``kind``; how many reached a client."""
        result = self.control("malformed", kind=kind)
        return int(bool(result.get("sent")))

    def set_target(self, target: float, timeout: float = 10.0) -> None:
        """Klipper's target, retried while Klipper is still starting or stale."""
        def attempt() -> bool:
            self.s.set_target(target)
            return True

        wait_until(attempt, timeout, 0.2, f"Klipper to accept target {target}")

    def wait_state(
        self, predicate: Callable[[dict[str, Any]], bool], t0: float, timeout: float,
    ) -> tuple[float | None, dict[str, Any] | None]:
        """Seconds from ``t0`` (monotonic) until ``predicate(sim state)``; None on timeout."""
        self.last_device = None
        last: dict[str, Any] | None = None
        deadline = t0 + timeout
        while True:
            try:
                last = self.state()
                if predicate(last):
                    return time.monotonic() - t0, last
            except (OSError, ProcessError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                return None, last
            time.sleep(POLL_S)

    def wait_both(
        self, sim_pred: Callable[[dict[str, Any]], bool],
        dev_pred: Callable[[dict[str, Any]], bool], t0: float, timeout: float,
    ) -> tuple[float | None, dict[str, Any] | None]:
        """Like wait_state, but the component's status must hold ``dev_pred`` too."""
        def both(state: dict[str, Any]) -> bool:
            if not sim_pred(state):
                return False
            try:
                device = self.device()
            except (OSError, MoonrakerError, KeyError):
                return False
            self.last_device = {k: device.get(k) for k in (
                "link", "reconnects", "target", "last_error", "link_failures")}
            return dev_pred(device)

        return self.wait_state(both, t0, timeout)

    def holds(self, predicate: Callable[[dict[str, Any]], bool]) -> bool:
        """The end state is still there a moment later (not a transient)."""
        time.sleep(HOLD_S)
        try:
            return predicate(self.state())
        except (OSError, ProcessError):
            return False

    def outcome(
        self, expect_target: float, seconds: float | None, state: dict[str, Any] | None,
        bound: float, extra_ok: bool = True, note: str = "",
    ) -> Rep:
        """A Rep from a wait: reached and held in time -> ok."""
        want = desired(self.firmware, expect_target)
        label = f"desired {expect_target:g}" if expect_target > 0 else "OFF"
        if seconds is None:
            why = f"end state not reached in {bound:g} s + slack"
            if state is not None and want(state) and self.last_device is not None:
                why += f" (device right, component: {self.last_device})"
            return Rep(f"not {label}: {describe_state(self.firmware, state)}", False, None,
                       f"{note}; {why}" if note else why)
        if not self.holds(want):
            return Rep(f"{label} (unstable)", False, seconds, note or "end state did not hold")
        return Rep(label, bool(extra_ok and seconds <= bound), seconds, note)

    # -- health -----------------------------------------------------------------------------------
    def ensure_ready(self) -> None:
        """Every part up, faults cleared, Klipper ready, the link connected; else restart."""
        if self.stack is None:
            self.start()
            return
        try:
            self._heal()
        except Exception as exc:  # noqa: BLE001 - fall back to a fresh stack
            self.progress(f"[{self.firmware}] stack unhealthy ({exc}); restarting it")
            self.stop()
            self.start()

    def _heal(self) -> None:
        s = self.s
        if s.broker is not None and not s.broker.running:
            s.broker.start()
        if not s.sim.running:
            s.sim.start()
        try:
            os.kill(s.sim.pid or 0, signal.SIGCONT)
        except OSError:
            pass
        if not s.klippy.is_running():
            s.klippy.stop()
            s.klippy.start()
        if s.moonraker.proc is None or s.moonraker.proc.poll() is not None:
            s.moonraker.proc = None
            s.moonraker.extra_config = self.moonraker_config()
            s.moonraker.start()
        state = self.state()
        if state.get("silent"):
            self.control("silence", seconds=0)
        if state.get("refusing") and state.get("up"):
            self.control("refuse", seconds=0)
        if state.get("occupied"):
            try:
                self.control("occupy", clients=0, seconds=0)
            except NotAvailable:
                pass
        if state.get("fault_active"):
            self.control("clear_faults")
        if self.db:
            self._heal_db_device(state)
        if s.moonraker.klippy_state() == "shutdown":
            self.firmware_restart()
        wait_until(lambda: s.moonraker.klippy_state() == "ready", 20.0, 0.1, "Klipper ready")
        s.moonraker.wait_component_ready(20.0)
        wait_until(lambda: self.device()["link"] == "connected", 15.0, 0.1, "link connected")
        wait_until(lambda: self.state()["up"], 10.0, 0.1, "device up")
        if self.db:
            self._heal_db_control()

    def _heal_db_device(self, state: dict[str, Any]) -> None:
        """The DragonBreath simulator's own pathologies off again."""
        if state.get("stream_silent"):
            self.control("silence_stream", seconds=0)
        if state.get("phantom_streams"):
            self.control("occupy_streams", n=0)
        if state.get("inhibited"):  # a permanent inhibit clears only by a reboot
            self.control("reboot", down=0.2)
            wait_until(lambda: self.state()["up"], 10.0, 0.1, "device up after the reboot")

    def _heal_db_control(self) -> None:
        """A latched fault cleared as a user would; the lease timeout the component asks for."""
        if self.state()["fault_latched"]:
            self.clear_fault()
            wait_until(lambda: not self.state()["fault_latched"], 5.0, 0.1, "fault cleared")
        wait_until(lambda: self.state()["comms_ms"] == int(self.lease_timeout * 1000), 35.0, 0.2,
                   "the component's lease_timeout at the device")

    def firmware_restart(self) -> None:
        try:
            self.s.moonraker.post("/printer/firmware_restart", timeout=10.0)
        except (OSError, MoonrakerError):
            pass

    def prepare(self, target: float, stream: bool = False) -> None:
        """Healthy, Klipper's target set, the device in that state.

        DragonBreath: heating means the component holds the lease; ``stream``
        also waits for its event stream (after drops it is retried after up
        to 30 s; the state is polled meanwhile).
        """
        self.ensure_ready()
        self.set_target(target)
        self.s.wait_sim(desired(self.firmware, target), 10.0, f"device at target {target}")
        wait_until(lambda: self.device()["target"] == float(target), 5.0, 0.05,
                   "component to know the target")
        if self.db and target > 0:
            wait_until(lambda: self.device()["lease_owned"], 5.0, 0.05, "our lease")
        if self.db and stream:
            wait_until(lambda: self.device()["stream"] == "stream", 35.0, 0.1, "event stream")
        if self.ws:  # the WebSocket link's backoff resets after a 2 s connection
            self.note_link()
            time.sleep(max(0.0, self._steady_since + STEADY_S - time.monotonic()))
            self.note_link()
            time.sleep(max(0.0, self._steady_since + STEADY_S - time.monotonic()))

    def note_link(self) -> None:
        """Remember when the link was last seen to (re)connect (for the steady wait)."""
        try:
            device = self.device()
        except (OSError, MoonrakerError, KeyError):
            return
        proc = self.s.moonraker.proc
        seen = (self.starts, device["reconnects"], proc.pid if proc else 0)
        if device["link"] != "connected" or seen != self._link_seen:
            self._link_seen = seen
            self._steady_since = time.monotonic()

    def use_host(self, name: str | None) -> None:
        """Restart Moonraker so that the component's ``host`` is ``name`` (None: the IP)."""
        if name == self.host_name:
            return
        self.host_name = name
        m = self.s.moonraker
        m.stop()
        m.extra_config = self.moonraker_config()
        m.start()
        m.wait_component_ready(20.0)

    def moonraker_rss_fds(self) -> tuple[int, int]:
        """(VmRSS in kB, open file descriptors) of the Moonraker process."""
        proc = self.s.moonraker.proc
        assert proc is not None
        rss = 0
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return rss, len(os.listdir(f"/proc/{proc.pid}/fd"))


# -- faults ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    expect: str
    run: Callable[[Harness], list[Rep]]
    bound: Callable[[str], float | None]
    #: firmware -> why the row does not apply there
    not_on: dict[str, str] = field(default_factory=dict)
    #: extra rows this fault also reports (same run): names after ``name``
    also: tuple[tuple[str, str, Callable[[str], float | None]], ...] = ()
    #: needs the private /etc/hosts (mount namespace)
    needs_names: bool = False
    #: DragonBreath's own run and expectation, where they differ (it arbitrates control)
    db: Callable[[Harness], list[Rep]] | None = None
    db_expect: str | None = None

    @property
    def rows(self) -> list[str]:
        return [self.name] + [name for name, _, _ in self.also]

    def runner(self, firmware: str) -> Callable[[Harness], list[Rep]]:
        return self.db if firmware == DRAGONBREATH and self.db is not None else self.run

    def expect_for(self, row: str, firmware: str = "") -> str:
        if row == self.name:
            if firmware == DRAGONBREATH and self.db_expect is not None:
                return self.db_expect
            return self.expect
        return next(e for n, e, _ in self.also if n == row)

    def bound_for(self, row: str, firmware: str) -> float | None:
        if row == self.name:
            return self.bound(firmware)
        return next(b for n, _, b in self.also if n == row)(firmware)


def const(value: float | None) -> Callable[[str], float | None]:
    return lambda _fw: value


NOT_MQTT_DROP = ("the simulator's drop resets WebSocket clients; an MQTT device's lost "
                 "connection is the broker-restart row")
NO_BROKER = "no broker on the WebSocket path"
WS_ONLY = "stock WebSocket only"
ESPHOME_NO_SILENCE = ("ESPHome publishes on change, so the component has no silence check "
                      "by design; the broker's will and Klipper's stale_timeout cover it")


def change_bound(firmware: str) -> float:
    """Stock WebSocket reports no settings: the periodic re-assert; else 2 s + a state interval."""
    if firmware in MQTT_FIRMWARES:
        return 2.0 + MQTT_STATE_INTERVAL[firmware]
    return 30.0


def run_connection_reset(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    before = h.device()["reconnects"]
    wall, t0 = time.time(), time.monotonic()
    result = h.control("drop")
    if h.mqtt and not result.get("dropped"):
        raise NotAvailable("drop reached no connection on this path")
    seconds, state = h.wait_both(
        lambda s: heating(h.firmware, TARGET)(s) and bool(host_writes(s, wall)),
        lambda d: d["link"] == "connected" and d["reconnects"] > before, t0, 10.0,
    )
    return [h.outcome(TARGET, seconds, state, 3.0)]


def run_silent_socket(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    before = h.device()["reconnects"]
    if h.firmware == "stock_mqtt":
        return [_hung_mqtt_device(h, before)]
    wall, t0 = time.time(), time.monotonic()
    h.control("silence", seconds=SILENCE_S)
    try:
        seconds, state = h.wait_both(
            lambda s: heating(h.firmware, TARGET)(s) and bool(host_writes(s, wall)),
            lambda d: d["link"] == "connected" and d["reconnects"] > before, t0, 25.0,
        )
        return [h.outcome(TARGET, seconds, state, SILENT_SOCKET_BOUND)]
    finally:
        h.control("silence", seconds=0)


def _hung_mqtt_device(h: Harness, before: int) -> Rep:
    """stock_mqtt: the simulator's silence covers WebSocket frames only; a hung device
    (SIGSTOP, its broker session stays open) is the real silent case."""
    pid = h.s.sim.pid
    assert pid is not None
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        detected = None
        while time.monotonic() - t0 < MQTT_HANG_S:
            try:
                if detected is None and h.device()["link"] != "connected":
                    detected = time.monotonic() - t0
            except (OSError, MoonrakerError):
                pass
            time.sleep(0.1)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed_wall = time.time()
    seconds, state = h.wait_both(
        lambda s: heating(h.firmware, TARGET)(s) and bool(host_writes(s, resumed_wall)),
        lambda d: d["link"] == "connected" and d["reconnects"] > before, t0, MQTT_HANG_S + 10,
    )
    note = f"hung device (SIGSTOP {MQTT_HANG_S:g} s); silence seen after " + (
        f"{detected:.1f} s" if detected is not None else "never")
    ok = detected is not None and detected <= MQTT_SILENCE_SEEN
    return h.outcome(TARGET, seconds, state, MQTT_HANG_S + 5.0, extra_ok=ok, note=note)


def _timed_from_answer(rep: Rep, state: dict[str, Any] | None) -> Rep:
    """Note on ``rep`` how long after its first answer the rebooted device was in sync."""
    if rep.seconds is not None and state is not None:
        answered = answered_at(state)
        writes = [f["time"] for f in host_writes(state, answered)]
        rep.answer_to_sync = max(writes) - answered if writes else 0.0
    return rep


def run_reboot_saved_heat(h: Harness) -> list[Rep]:
    """Heat saved in flash, then a power blink: the device resumes heating by itself.

    Stock WebSocket: a front-panel press (the device never tells the component),
    then the reboot.  MQTT paths publish a press at once (the component would
    switch it off before the reboot), so the heat goes into flash with the reboot.
    """
    h.prepare(0)
    state0 = h.state()
    before = state0["boot_count"]
    events = h.device()["uncommanded_heating_events"]
    saved = {"work_on": 1, "set_temp": 50}
    if h.ws:
        h.control("button", work_mode=2, **saved)
        if h.state()["flash"].get("work_on") is not True:
            raise NotAvailable("the button did not save heat to flash")
        saved = {}
    t0 = time.monotonic()
    h.control("reboot", down=0.5, **saved)
    seconds, state = h.wait_state(
        lambda s: s["up"] and s["boot_count"] > before and is_off(h.firmware)(s), t0, 10.0)
    rep = _timed_from_answer(h.outcome(0, seconds, state, 5.0), state)
    if h.device()["uncommanded_heating_events"] <= events:
        rep.note = "no uncommanded heating counted (did it boot heating?)"
    return [rep]


def run_reboot_lost_settings(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    state0 = h.state()
    before, wipes = state0["boot_count"], state0["counters"].get("flash_wipes", 0)
    t0 = time.monotonic()
    h.control("reboot", down=0.5, wipe=1)
    if h.state()["counters"].get("flash_wipes", 0) <= wipes:
        raise NotAvailable("the simulator's reboot ignored wipe=1")
    seconds, state = h.wait_state(
        lambda s: s["up"] and s["boot_count"] > before and heating(h.firmware, TARGET)(s)
        and bool(host_writes(s, time.time() - (s["uptime"] or 0))), t0, 12.0)
    return [_timed_from_answer(h.outcome(TARGET, seconds, state, 5.0), state)]


def _device_change(h: Harness, **button: Any) -> list[Rep]:
    h.prepare(TARGET)
    t0 = time.monotonic()
    result = h.control("button", **button)
    if not result.get("applied"):
        raise NotAvailable(f"button {button} applied nothing")
    seconds, state = h.wait_state(heating(h.firmware, TARGET), t0, change_bound(h.firmware) + 10)
    return [h.outcome(TARGET, seconds, state, change_bound(h.firmware))]


def hostile(kind: str) -> Callable[[Harness], list[Rep]]:
    def run(h: Harness) -> list[Rep]:
        h.prepare(TARGET, stream=h.db)  # DragonBreath: into its event stream
        before = h.device()
        if not h.inject_hostile(kind):
            raise NotAvailable(f"malformed kind={kind} reached nothing on this path")
        time.sleep(0.3)
        t0 = time.monotonic()
        h.s.moonraker.gcode("TURN_OFF_HEATERS")
        seconds, state = h.wait_state(is_off(h.firmware), t0, 10.0)
        try:
            wait_until(lambda: h.device()["link"] == "connected", 10.0, 0.1, "link connected")
            link_ok = True
        except TimeoutError:
            link_ok = False
        after = h.device()
        dropped = after["frames_dropped"] - before["frames_dropped"]
        note = "" if link_ok else "link not connected again within 10 s"
        rep = h.outcome(0, seconds, state, 2.0, extra_ok=link_ok, note=note)
        if after["reconnects"] > before["reconnects"]:
            rep.note = (rep.note + "; " if rep.note else "") + "session was reset"
        rejected = after["fields_rejected"] - before["fields_rejected"]
        if dropped <= 0 and rejected <= 0 and after["reconnects"] == before["reconnects"]:
            rep.note = (rep.note + "; " if rep.note else "") + "nothing counted as dropped"
        return [rep]

    return run


def run_broker_restart(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    assert h.s.broker is not None
    before = h.device()["reconnects"]
    wall, t0 = time.time(), time.monotonic()
    h.s.broker.restart()
    seconds, state = h.wait_both(
        lambda s: heating(h.firmware, TARGET)(s) and bool(host_writes(s, wall)),
        lambda d: d["link"] == "connected" and d["reconnects"] > before, t0, 20.0,
    )
    return [h.outcome(TARGET, seconds, state, 8.0)]


def run_moonraker_stop(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    t0 = time.monotonic()
    h.s.moonraker.stop()
    seconds, state = h.wait_state(is_off(h.firmware), t0, 10.0)
    if h.db and state is not None and state["fault_latched"]:
        # A clean stop sends OFF (no lease left to expire): no fault.
        return [h.outcome(0, seconds, state, 2.0, extra_ok=False,
                          note=f"fault latched: {state['fault_reason']}")]
    return [h.outcome(0, seconds, state, 2.0)]


def kill_moonraker(h: Harness) -> float:
    """SIGKILL Moonraker (the host dies as far as the device can tell); when it was."""
    m = h.s.moonraker
    proc = m.proc
    assert proc is not None
    t0 = time.monotonic()
    proc.kill()
    proc.wait(5)
    m.proc = None
    return t0


def run_moonraker_kill(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    t0 = kill_moonraker(h)
    if h.firmware == "esphome":
        seconds, state = h.wait_state(is_off(h.firmware), t0, 10.0)
        first = h.outcome(0, seconds, state, 2.0)
        if first.ok:
            first.ended = "OFF (device watchdog)"
    else:
        time.sleep(SIGKILL_WATCH_S)
        state = h.state()
        if heating(h.firmware, TARGET)(state):
            first = Rep("heats on", None, None,
                        "documented: stock firmware has no watchdog; it heats on after "
                        f"Moonraker died (watched {SIGKILL_WATCH_S:g} s)")
        else:
            first = Rep(describe_state(h.firmware, state), False, None,
                        "stock firmware was expected to heat on")
    restarted_wall, t1 = time.time(), time.monotonic()
    m = h.s.moonraker
    m.extra_config = h.moonraker_config()
    m.start()
    seconds, state = h.wait_both(
        heating(h.firmware, TARGET), lambda d: d["link"] == "connected" and d["target"] == TARGET,
        t1, 30.0,
    )
    false_off = state is not None and h.firmware != "esphome" and any(
        _is_off_write(f) for f in host_writes(state, restarted_wall))
    second = h.outcome(TARGET, seconds, state, 15.0, extra_ok=not false_off,
                       note="switched off on a guess after the restart" if false_off else "")
    return [first, second]


def _is_off_write(frame: dict[str, Any]) -> bool:
    payload = frame.get("payload")
    if isinstance(payload, dict):
        settings = payload.get("settings") if isinstance(payload.get("settings"), dict) else payload
        return settings.get("work_on") in (False, "OFF")
    return False


def run_klippy_shutdown(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    t0 = time.monotonic()
    h.s.moonraker.post("/printer/emergency_stop")
    seconds, state = h.wait_state(is_off(h.firmware), t0, 10.0)
    rep = h.outcome(0, seconds, state, 2.0)
    rep.intended_shutdowns = 1
    h.firmware_restart()
    return [rep]


def klippy_restart(command: str) -> Callable[[Harness], list[Rep]]:
    def run(h: Harness) -> list[Rep]:
        h.prepare(TARGET)
        t0 = time.monotonic()
        try:
            h.s.moonraker.gcode(command, timeout=5.0)
        except Exception:  # noqa: BLE001 - klippy closes its socket while answering
            pass
        seconds, state = h.wait_state(is_off(h.firmware), t0, 10.0)
        rep = h.outcome(0, seconds, state, 3.0)
        return [_new_target_works(h, rep)]

    return run


def _new_target_works(h: Harness, rep: Rep) -> Rep:
    """After Klipper came back, a new target must reach the device."""
    try:
        wait_until(lambda: h.s.moonraker.klippy_state() == "ready", 20.0, 0.1, "Klipper ready")
        h.s.moonraker.wait_component_ready(20.0)
        h.set_target(NEW_TARGET, 15.0)
        h.s.wait_sim(heating(h.firmware, NEW_TARGET), 3.0, "new target at the device")
        if rep.ok:
            rep.ended = f"OFF, then {NEW_TARGET}"
    except (TimeoutError, ProcessError, OSError, MoonrakerError) as exc:
        rep.ok = False
        rep.note = f"a new target did not work afterwards: {exc}"
    return rep


def run_klippy_kill(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    pid = h.s.klippy.pid
    assert pid is not None
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    seconds, state = h.wait_state(is_off(h.firmware), t0, 10.0)
    rep = h.outcome(0, seconds, state, 2.0)
    h.s.klippy.stop()
    h.s.klippy.start()
    return [_new_target_works(h, rep)]


def run_name_resolution(h: Harness) -> list[Rep]:
    if h.hosts is None:
        raise NotAvailable("no private /etc/hosts")
    h.hosts.resolvable(True)
    h.ensure_ready()
    h.use_host(DEVICE_NAME)
    h.prepare(TARGET)
    try:
        h.hosts.resolvable(False)
        h.control("drop")
        t_out = time.monotonic()
        wait_until(lambda: "resolve" in str(h.device()["last_error"] or ""), 10.0, 0.1,
                   "the component to report the failed resolution")
        h.set_target(NEW_TARGET)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_out)))
        still = heating(h.firmware, TARGET)(h.state())
    finally:
        h.hosts.resolvable(True)
    t0 = time.monotonic()
    seconds, state = h.wait_both(heating(h.firmware, NEW_TARGET),
                                 lambda d: d["link"] == "connected", t0, 20.0)
    note = "" if still else "device left its state during the outage"
    return [h.outcome(NEW_TARGET, seconds, state, RECONNECT_MAX_DELAY + 2.0, note=note)]


def run_client_cap(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    refused = h.state()["connections_refused"]
    t0 = time.monotonic()
    h.control("occupy", clients=7, seconds=OCCUPY_S)
    h.control("drop")
    h.set_target(NEW_TARGET)
    seconds, state = h.wait_both(heating(h.firmware, NEW_TARGET),
                                 lambda d: d["link"] == "connected", t0, OCCUPY_S + 20.0)
    was_refused = state is not None and state["connections_refused"] > refused
    note = "" if was_refused else "the component was never refused (cap not reached?)"
    return [h.outcome(NEW_TARGET, seconds, state, OCCUPY_S + RECONNECT_MAX_DELAY + 1.0,
                      extra_ok=was_refused, note=note)]


def run_link_failure(h: Harness) -> list[Rep]:
    h.prepare(TARGET)
    before = h.device().get("link_failures")
    if before is None:
        raise NotAvailable("status has no link_failures")
    t0 = time.monotonic()
    try:
        answer = h.s.moonraker.post("/debug/panda_breath/fail_link")
    except MoonrakerError as exc:
        raise NotAvailable(f"POST /debug/panda_breath/fail_link: {exc}") from None
    if not answer.get("injected"):
        raise NotAvailable(f"fail_link injected nothing: {answer}")
    h.set_target(NEW_TARGET)
    seconds, state = h.wait_both(
        heating(h.firmware, NEW_TARGET),
        lambda d: d["link"] == "connected" and d["link_failures"] > before
        and bool(d.get("last_link_failure")), t0, 15.0)
    return [h.outcome(NEW_TARGET, seconds, state, 3.0)]


# -- DragonBreath's own runs ----------------------------------------------------------------------


def _lease(state: dict[str, Any] | None) -> tuple[Any, ...]:
    lease = (state or {}).get("lease") or {}
    return (lease.get("owner"), lease.get("kind"))


def _append(rep: Rep, note: str) -> None:
    rep.note = f"{rep.note}; {note}" if rep.note else note


def run_db_connection_reset(h: Harness) -> list[Rep]:
    """The event stream reset: the device heats on under the same lease, the stream comes back."""
    h.prepare(TARGET, stream=True)
    state0 = h.state()
    opened, revision, lease = (state0["counters"].get("streams_opened", 0), state0["revision"],
                               _lease(state0))
    reconnects = h.device()["reconnects"]
    t0 = time.monotonic()
    if not h.control("drop_streams").get("dropped"):
        raise NotAvailable("drop_streams reached no stream")
    seconds, state = h.wait_both(
        lambda s: heating(h.firmware, TARGET)(s)
        and s["counters"].get("streams_opened", 0) > opened and s["streams"] >= 1,
        lambda d: d["link"] == "connected" and d["stream"] == "stream", t0, 20.0)
    rep = h.outcome(TARGET, seconds, state, DB_STREAM_RETRY_BOUND)
    untouched = state is not None and state["revision"] == revision and _lease(state) == lease
    if not untouched:
        rep.ok = False
        _append(rep, "the device was written (revision or lease changed)")
    if h.device()["reconnects"] != reconnects:
        rep.ok = False
        _append(rep, "the session was restarted")
    if rep.ok:
        rep.ended = f"desired {TARGET}, same lease"
    return [rep]


def run_db_silent_stream(h: Harness) -> list[Rep]:
    """A half-open event stream: the component notices, polls, and the device heats on."""
    h.prepare(TARGET, stream=True)
    reconnects = h.device()["reconnects"]
    t0 = time.monotonic()
    h.control("silence_stream", seconds=DB_SILENCE_S)
    try:
        seconds, state = h.wait_both(
            heating(h.firmware, TARGET),
            lambda d: d["link"] == "connected" and d["stream"] == "polling", t0, 15.0)
        rep = h.outcome(TARGET, seconds, state, DB_STREAM_SILENCE + 1.0)
        # Heating at T the whole silence, on the same session.
        lost = None
        while time.monotonic() - t0 < DB_SILENCE_S:
            if not heating(h.firmware, TARGET)(h.state()):
                lost = describe_state(h.firmware, h.state())
                break
            time.sleep(0.2)
        if lost is not None or h.device()["reconnects"] != reconnects:
            rep.ok = False
            _append(rep, f"during the silence: {lost or 'the session was restarted'}")
        elif rep.ok:
            rep.ended = f"polling, desired {TARGET}"
        return [rep]
    finally:
        h.control("silence_stream", seconds=0)


def run_db_reboot(h: Harness) -> list[Rep]:
    """Power cycle with the flash erased: DragonBreath boots off (new boot_id, revision 1, its
    default 300 s comms_ms); the component must heat at T again under a new lease."""
    h.prepare(TARGET)
    state0 = h.state()
    boots = state0["boot_count"]
    t0 = time.monotonic()
    try:
        h.control("reboot", down=0.5, wipe=1)
    except OSError:
        pass  # the reboot resets every connection, the one asking for it too
    seconds, state = h.wait_both(
        lambda s: s["up"] and s["boot_count"] > boots and heating(h.firmware, TARGET)(s),
        lambda d: d["link"] == "connected" and d["lease_owned"], t0, 12.0)
    rep = _timed_from_answer(h.outcome(TARGET, seconds, state, 5.0), state)
    try:
        wait_until(lambda: h.state()["comms_ms"] == int(DB_LEASE_TIMEOUT * 1000), 5.0, 0.1,
                   "lease_timeout again")
        _append(rep, f"comms_ms back to {DB_LEASE_TIMEOUT * 1000:.0f} after "
                f"{time.monotonic() - t0:.1f} s")
    except TimeoutError:
        _append(rep, f"comms_ms still {h.state()['comms_ms']} 5 s after the boot "
                "(the component re-sends lease_timeout at most every 30 s)")
    return [rep]


def run_db_client_cap(h: Harness) -> list[Rep]:
    """Both event-stream slots held by others (503 busy): commands still reach the device."""
    h.prepare(TARGET, stream=True)
    refusals = h.device()["stream_refusals"]
    t0 = time.monotonic()
    h.control("occupy_streams", n=2)
    try:
        h.control("drop_streams")
        h.set_target(NEW_TARGET)
        seconds, state = h.wait_both(heating(h.firmware, NEW_TARGET),
                                     lambda d: d["link"] == "connected", t0, 10.0)
        try:  # the stream retry comes 1 ... 30 s after the drop
            wait_until(lambda: h.device()["stream_refusals"] > refusals, 35.0, 0.2,
                       "a 503 busy")
            refused = True
        except TimeoutError:
            refused = False
    finally:
        h.control("occupy_streams", n=0)
    return [h.outcome(NEW_TARGET, seconds, state, 2.0, extra_ok=refused,
                      note="" if refused else "the component was never refused a stream")]


def run_host_killed(h: Harness) -> list[Rep]:
    """Moonraker SIGKILLed while heating: the device's own lease watchdog switches it off.

    Then Moonraker is started again: the bridge shows the latched fault and
    leaves it (the device latched it for a reason); the suite clears it as a
    user would, and Klipper's target (still T) must be back at the device.
    """
    h.prepare(TARGET)
    before = h.state()
    comms_ms = before["comms_ms"]
    left = (before.get("lease") or {}).get("expires_in")
    t0 = kill_moonraker(h)
    seconds, state = h.wait_state(is_off(h.firmware), t0, comms_ms / 1000.0 + 10.0)
    expired = state is not None and state["fault_latched"] and (
        state["fault_reason"] == "controller lease expired" and state["source"] == "watchdog")
    first = h.outcome(0, seconds, state, comms_ms / 1000.0 + 1.0, extra_ok=expired,
                      note="" if expired or state is None else
                      f"ended {describe_state(h.firmware, state)}")
    if seconds is not None and left is not None:
        # The watchdog's own lag: off this long after the lease ran out (it checks every 0.5 s).
        _append(first, f"off {seconds - left:.1f} s after the {comms_ms / 1000:g} s lease ran out")
    if first.ok:
        first.ended = "OFF, lease expired"
    # Moonraker back: the fault is shown and left alone until the user clears it.
    m = h.s.moonraker
    m.extra_config = h.moonraker_config()
    m.start()
    notes = []
    try:
        m.wait_component_ready(20.0)
        wait_until(lambda: h.device()["link"] == "connected" and h.device()["faults"], 10.0,
                   0.1, "the fault in the bridge's status")
        time.sleep(FAULT_HOLD_S)
        state = h.state()
        kept = state["fault_latched"] and is_off(h.firmware)(state)
        if not kept:
            notes.append(f"the latch did not stand: {describe_state(h.firmware, state)}")
        if h.device()["target"] != TARGET:
            notes.append(f"the component lost Klipper's target ({h.device()['target']})")
    except (TimeoutError, ProcessError, OSError, MoonrakerError) as exc:
        return [first, Rep("error", False, None, f"after the restart: {exc}"[:300])]
    t1 = time.monotonic()
    h.clear_fault()
    seconds, state = h.wait_both(heating(h.firmware, TARGET),
                                 lambda d: not d["faults"] and d["lease_owned"], t1, 10.0)
    second = h.outcome(TARGET, seconds, state, 3.0, extra_ok=not notes, note="; ".join(notes))
    if second.ok:
        second.ended = f"fault kept; cleared: {TARGET}"
    return [first, second]


def _take_over(h: Harness, source: str, mode: str, other: float | None,
               klipper_target: float, next_target: float) -> Rep:
    h.prepare(klipper_target)
    wall, t0 = time.time(), time.monotonic()
    h.control("take_over", source=source, mode=mode,
              **({} if other is None else {"target": other}))
    theirs: Callable[[dict[str, Any]], bool] = is_off(h.firmware)
    label = f"{source} {mode}"
    if mode == "power_on":
        theirs = lambda s: (  # noqa: E731
            s["mode"] == "power_on" and s["requested_c"] == other
            and (s.get("lease") or {}).get("kind") == source)
        label = f"{source} {other:g}"
    notes = []
    shown, _ = h.wait_both(
        theirs, lambda d: d["external_control"] == source and d["source"] == source
        and not d["lease_owned"], t0, 5.0)
    if shown is None:
        notes.append(f"the take-over not shown in the status ({h.last_device})")
    fought = None
    while time.monotonic() - t0 < TAKEOVER_HOLD_S:
        now = h.state()
        if not theirs(now):
            fought = describe_state(h.firmware, now)
            break
        time.sleep(0.1)
    writes = [f["payload"].get("command") for f in host_writes(h.state(), wall)]
    if fought is not None or writes:
        notes.append(f"fought: device {fought or 'kept'}, commands {writes}")
    t1 = time.monotonic()
    h.set_target(next_target)
    seconds, state = h.wait_both(heating(h.firmware, next_target),
                                 lambda d: d["external_control"] is None and d["lease_owned"],
                                 t1, 10.0)
    rep = h.outcome(next_target, seconds, state, 2.0, extra_ok=not notes, note="; ".join(notes))
    if rep.ok:
        rep.ended = f"{label} kept {TAKEOVER_HOLD_S:g} s; {next_target:g}"
    return rep


def run_takeover(h: Harness) -> list[Rep]:
    """Another controller acts while Klipper heats: its web page powers on at 38 (its own
    lease), then a front-panel press switches off.  Each must stand; Klipper's next target
    takes the device back."""
    return [
        _take_over(h, "web", "power_on", DB_OTHER_TARGET, TARGET, NEW_TARGET),
        _take_over(h, "button", "off", None, TARGET, NEW_TARGET),
    ]


NOT_DB = "DragonBreath only"
DB_ARBITRATES = ("DragonBreath arbitrates: a change at the device is another controller's "
                 "decision and is not undone (the takeover-* rows check that)")
DB_BOOTS_OFF = ("DragonBreath boots off by design (SSR off first, never resumes heat); its "
                "reboot is the reboot-lost-settings row")
DB_HOST_KILLED = "DragonBreath's lease watchdog: the host-killed rows"
DB_NAMES = ("the DragonBreath session resolves the name once and keeps its address while the "
            "device answers (a reboot shows as a new boot_id, not a reconnect)")
NON_DB = (*STOCK_FIRMWARES, *MQTT_FIRMWARES)


FAULTS: list[Fault] = [
    Fault("connection-reset", f"desired {TARGET}", run_connection_reset,
          lambda fw: DB_STREAM_RETRY_BOUND if fw == DRAGONBREATH else 3.0,
          {fw: NOT_MQTT_DROP for fw in MQTT_FIRMWARES}, db=run_db_connection_reset),
    Fault("silent-socket", f"desired {TARGET}", run_silent_socket,
          lambda fw: {"stock_mqtt": MQTT_HANG_S + 5.0,
                      DRAGONBREATH: DB_STREAM_SILENCE + 1.0}.get(fw, SILENT_SOCKET_BOUND),
          {"esphome": ESPHOME_NO_SILENCE}, db=run_db_silent_stream,
          db_expect=f"polling, desired {TARGET}"),
    Fault("reboot-saved-heat", "OFF", run_reboot_saved_heat, const(5.0),
          {DRAGONBREATH: DB_BOOTS_OFF}),
    Fault("reboot-lost-settings", f"desired {TARGET}", run_reboot_lost_settings, const(5.0),
          db=run_db_reboot),
    Fault("device-change-off", f"desired {TARGET}",
          lambda h: _device_change(h, work_on=0), change_bound, {DRAGONBREATH: DB_ARBITRATES}),
    Fault("device-change-target", f"desired {TARGET}",
          lambda h: _device_change(h, set_temp=38), change_bound,
          {DRAGONBREATH: DB_ARBITRATES}),
    Fault("takeover-web", f"web's {DB_OTHER_TARGET} kept; then {NEW_TARGET}", run_takeover,
          const(2.0), {fw: NOT_DB + " (the device-change-* rows: the bridge restores)"
                       for fw in NON_DB},
          also=(("takeover-button", f"button off kept; then {NEW_TARGET}", const(2.0)),)),
    *[Fault(f"hostile-{kind}", "OFF", hostile(kind), const(2.0)) for kind in HOSTILE_KINDS],
    Fault("broker-restart", f"desired {TARGET}", run_broker_restart, const(8.0),
          {**{fw: NO_BROKER for fw in STOCK_FIRMWARES},
           DRAGONBREATH: "no broker on the HTTP path"}),
    Fault("moonraker-stop", "OFF", run_moonraker_stop, const(2.0)),
    Fault("moonraker-kill", "stock: heats on; esphome: OFF", run_moonraker_kill,
          lambda fw: 2.0 if fw == "esphome" else None, {DRAGONBREATH: DB_HOST_KILLED},
          also=(("moonraker-kill-restart", f"desired {TARGET}", const(15.0)),)),
    Fault("host-killed", "OFF by its lease watchdog", run_host_killed,
          const(DB_LEASE_TIMEOUT + 1.0),
          {fw: NOT_DB + " (no host lease: the moonraker-kill rows)" for fw in NON_DB},
          also=(("host-killed-restart", f"fault kept; cleared: {TARGET}", const(3.0)),)),
    Fault("klippy-shutdown", "OFF", run_klippy_shutdown, const(2.0)),
    Fault("klippy-restart", "OFF, then new target", klippy_restart("RESTART"), const(3.0)),
    Fault("klippy-firmware-restart", "OFF, then new target", klippy_restart("FIRMWARE_RESTART"),
          const(3.0)),
    Fault("klippy-kill", "OFF, then new target", run_klippy_kill, const(2.0)),
    Fault("name-resolution", f"desired {NEW_TARGET}", run_name_resolution,
          const(RECONNECT_MAX_DELAY + 2.0),
          {**{fw: "MQTT paths reach the device through the broker, not by its name"
              for fw in MQTT_FIRMWARES}, DRAGONBREATH: DB_NAMES}, needs_names=True),
    Fault("client-cap", f"desired {NEW_TARGET}", run_client_cap,
          lambda fw: 2.0 if fw == DRAGONBREATH else OCCUPY_S + RECONNECT_MAX_DELAY + 1.0,
          {"esphome": "ESPHome has no WebSocket server",
           "stock_mqtt": "the component does not open the WebSocket on this path"},
          db=run_db_client_cap),
    Fault("link-failure", f"desired {NEW_TARGET}", run_link_failure, const(3.0)),
]
FAULTS_BY_NAME = {f.name: f for f in FAULTS}
ROW_NAMES = [row for f in FAULTS for row in f.rows]


def run_fault(
    h: Harness, fault: Fault, repeat: int, names_problem: str | None,
    progress: Callable[[str], None],
) -> list[Row]:
    """All repetitions of one fault on one path; one Row per reported row."""
    fw = h.firmware
    rows = [Row(r, fw, fault.expect_for(r, fw), fault.bound_for(r, fw), "pending")
            for r in fault.rows]
    if fw in fault.not_on:
        for row in rows:
            row.status, row.reason = "n/a", fault.not_on[fw]
        return rows
    if fault.needs_names and names_problem:
        for row in rows:
            row.status, row.reason = "not run", names_problem
        return rows
    for i in range(repeat):
        try:
            h.ensure_ready()
        except Exception as exc:  # noqa: BLE001 - report, keep going
            for row in rows:
                row.reps.append(Rep("error", False, None, f"stack not ready: {exc}"))
            continue
        mark = h.logs.mark()
        try:
            reps = fault.runner(fw)(h)
        except NotAvailable as exc:
            for row in rows:
                row.status, row.reason, row.reps = "not available", str(exc), []
            progress(f"[{fw}] {fault.name}: not available ({exc})")
            return rows
        except Exception as exc:  # noqa: BLE001 - one broken row must not end the suite
            reps = [Rep("error", False, None, f"{type(exc).__name__}: {exc}"[:300])
                    for _ in rows]
        try:
            shutdowns, found = h.logs.scan(mark)
        except OSError as exc:
            shutdowns, found = [], {f"log scan failed: {exc}": 1}
        h.note_link()
        for row, rep in zip(rows, reps, strict=True):
            unintended = max(0, len(shutdowns) - rep.intended_shutdowns)
            rep.shutdowns = unintended
            rep.shutdown_messages = shutdowns
            rep.secrets = found
            row.reps.append(rep)
            secs = "-" if rep.seconds is None else f"{rep.seconds:.2f} s"
            progress(f"[{fw}] {row.fault} {i + 1}/{repeat}: {rep.ended} in {secs}"
                     + (f" ({rep.note})" if rep.note else "")
                     + (f" shutdowns {unintended}" if unintended else "")
                     + (f" SECRETS {found}" if found else ""))
    if fault.needs_names:
        try:
            h.use_host(None)
        except Exception:  # noqa: BLE001 - the next ensure_ready restarts what is broken
            pass
    return [row.finish() for row in rows]


# -- soak -----------------------------------------------------------------------------------------


def soak_injectors(firmware: str) -> dict[str, Callable[[Harness], None]]:
    """Faults that stop no process, as bare injections (no waiting, no checks)."""
    mqtt = firmware in MQTT_FIRMWARES
    inject: dict[str, Callable[[Harness], None]] = {
        "reboot-saved-heat": lambda h: (
            h.control("reboot", down=0.5, work_on=1, set_temp=50) if mqtt else (
                h.control("button", work_on=1, set_temp=50, work_mode=2),
                h.control("reboot", down=0.5))),
        "reboot-lost-settings": lambda h: h.control("reboot", down=0.5, wipe=1),
        "device-change-off": lambda h: h.control("button", work_on=0),
        "device-change-target": lambda h: h.control("button", set_temp=38),
        "link-failure": lambda h: h.s.moonraker.post("/debug/panda_breath/fail_link"),
    }
    for kind in HOSTILE_KINDS:
        inject[f"hostile-{kind}"] = lambda h, kind=kind: h.control("malformed", kind=kind)
    if not mqtt:
        inject["connection-reset"] = lambda h: h.control("drop")
        inject["silent-socket"] = lambda h: h.control("silence", seconds=SILENCE_S)
        inject["client-cap"] = lambda h: (h.control("occupy", clients=7, seconds=2),
                                          h.control("drop"))
    return inject


class HeatSampler(threading.Thread):
    """Samples the device every ``interval`` s; the longest heat while Klipper's target was 0."""

    def __init__(self, h: Harness, interval: float = 0.2) -> None:
        super().__init__(name="heat-sampler", daemon=True)
        self.h = h
        self.interval = interval
        self.target = 0.0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.runs: list[float] = []
        #: One entry per episode: when, how long, and the last fault injected before it.
        self.episodes: list[dict[str, Any]] = []
        self.samples = 0
        self.errors = 0
        self._since: float | None = None
        self.last_fault: tuple[str, float] = ("-", time.monotonic())
        self._context: dict[str, Any] = {}

    def fault(self, name: str) -> None:
        with self.lock:
            self.last_fault = (name, time.monotonic())

    def set_target(self, target: float) -> None:
        with self.lock:
            self.target = target

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                state = self.h.state()
            except Exception:  # noqa: BLE001 - the device may be rebooting
                self.errors += 1
                continue
            now = time.monotonic()
            self.samples += 1
            with self.lock:
                uncommanded = self.target == 0 and heats(state)
            if uncommanded and self._since is None:
                self._since = now
                name, at = self.last_fault
                self._context = {"after_fault": name, "fault_age_s": round(now - at, 2),
                                 "clients": state.get("clients"), "up": state.get("up")}
            elif not uncommanded and self._since is not None:
                self._end(now)

    def _end(self, now: float) -> None:
        assert self._since is not None
        self.runs.append(now - self._since)
        self.episodes.append({**self._context, "seconds": round(now - self._since, 2)})
        self._since = None

    def finish(self) -> None:
        self.stop_event.set()
        self.join(5)
        if self._since is not None:
            self._end(time.monotonic())


@dataclass
class SoakResult:
    firmware: str
    hours: float
    time_scale: float
    seed: int
    wall_s: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    targets: int = 0
    rss_kb: tuple[int, int] = (0, 0)
    rss_at_boot_kb: int = 0
    fds: tuple[int, int] = (0, 0)
    heat_runs: list[float] = field(default_factory=list)
    heat_episodes: list[dict[str, Any]] = field(default_factory=list)
    heat_bound_s: float = SOAK_HEAT_BOUND
    rss_bound_kb: int = 2048
    settle_timeouts: int = 0
    final_ok: bool = False
    final_note: str = ""
    shutdowns: list[str] = field(default_factory=list)
    secrets: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def longest_heat(self) -> float:
        return max(self.heat_runs, default=0.0)

    def checks(self) -> dict[str, bool]:
        return {
            "rss": self.rss_kb[1] - self.rss_kb[0] < self.rss_bound_kb,
            "fds": self.fds[1] <= self.fds[0] + 2,
            "uncommanded heat": self.longest_heat < self.heat_bound_s,
            "final convergence": self.final_ok,
            "shutdowns": not self.shutdowns,
            "secrets": not self.secrets,
            "errors": not self.errors,
        }

    @property
    def ok(self) -> bool:
        return all(self.checks().values())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(longest_heat_s=self.longest_heat, checks=self.checks(), ok=self.ok)
        return data


def run_soak(
    workdir: Path, firmware: str, hours: float, time_scale: float, seed: int,
    fault_every_min: float, progress: Callable[[str], None],
) -> SoakResult:
    """HOURS of device time on one stack: a random fault every few device-minutes.

    A warm-up round injects every fault kind once (so first-use allocations do
    not count as growth); RSS and file descriptors are taken after it and at
    the end.  Between faults a random target (0 a third of the time) is set;
    the next fault waits until the link is connected again (at most 30 s).
    """
    result = SoakResult(firmware, hours, time_scale, seed)
    rng = random.Random(seed)
    h = Harness(workdir / "soak", firmware, progress=progress, time_scale=time_scale)
    injectors = soak_injectors(firmware)
    t_start = time.monotonic()
    sampler: HeatSampler | None = None
    try:
        h.start()
        result.rss_at_boot_kb = h.moonraker_rss_fds()[0]
        mark = h.logs.mark()
        sampler = HeatSampler(h)
        sampler.start()
        interval = fault_every_min * 60.0 / time_scale

        def cycle(name: str, interval: float) -> None:
            target = 0.0 if rng.random() < 1 / 3 else float(rng.randint(35, 55))
            if target:
                sampler.set_target(target)
            try:
                h.set_target(target, 5.0)
            except TimeoutError as exc:
                result.errors.append(f"target {target:g}: {exc}")
            if not target:
                sampler.set_target(0.0)
            result.targets += 1
            time.sleep(interval / 2)
            try:
                sampler.fault(name)
                injectors[name](h)
                result.faults[name] = result.faults.get(name, 0) + 1
            except NotAvailable as exc:
                result.faults[f"{name} (not available)"] = 1
                progress(f"[soak] {name} not available: {exc}")
            except Exception as exc:  # noqa: BLE001 - record and keep soaking
                result.errors.append(f"{name}: {type(exc).__name__}: {exc}"[:200])
            time.sleep(interval / 2)
            try:
                wait_until(lambda: h.device()["link"] == "connected" and h.state()["up"],
                           30.0, 0.1, "link back")
            except TimeoutError:
                result.settle_timeouts += 1

        warmup = sorted(injectors)
        rng.shuffle(warmup)
        for name in warmup:  # a burst: each fault once, waiting only for the link
            cycle(name, 0.6)
        time.sleep(1.0)
        result.rss_kb = (h.moonraker_rss_fds()[0], 0)
        result.fds = (h.moonraker_rss_fds()[1], 0)
        progress(f"[soak] warm-up done ({len(warmup)} faults); RSS {result.rss_kb[0]} kB, "
                 f"{result.fds[0]} fds; soaking {hours:g} h of device time")
        wall = hours * 3600.0 / time_scale
        soak_start = time.monotonic()
        names = sorted(injectors)
        last_report = soak_start
        while time.monotonic() - soak_start < wall:
            cycle(rng.choice(names), interval)
            if time.monotonic() - last_report > 60:
                last_report = time.monotonic()
                done = (time.monotonic() - soak_start) / wall
                progress(f"[soak] {done:.0%} ({sum(result.faults.values())} faults)")
        # Settle, then prove the device still follows Klipper both ways.
        try:
            h.ensure_ready()
            h.s.sim.control("silence", seconds=0)
            sampler.set_target(float(TARGET))
            h.set_target(TARGET)
            h.s.wait_sim(heating(firmware, TARGET), 2.0 if firmware in MQTT_FIRMWARES
                         else REASSERT_INTERVAL + 10, "final target")
            h.set_target(0)
            sampler.set_target(0.0)
            h.s.wait_sim(is_off(firmware), 2.0, "final OFF")
            result.final_ok = True
        except Exception as exc:  # noqa: BLE001
            result.final_note = f"{type(exc).__name__}: {exc}"[:300]
        time.sleep(1.0)
        rss, fds = h.moonraker_rss_fds()
        result.rss_kb = (result.rss_kb[0], rss)
        result.fds = (result.fds[0], fds)
        result.shutdowns, result.secrets = h.logs.scan(mark)
    except Exception as exc:  # noqa: BLE001
        result.errors.append(f"soak aborted: {type(exc).__name__}: {exc}"[:300])
    finally:
        if sampler is not None:
            sampler.finish()
            result.heat_runs = [round(r, 3) for r in sampler.runs]
            result.heat_episodes = sampler.episodes
        h.stop()
        result.wall_s = time.monotonic() - t_start
    return result


# -- private /etc/hosts ------------------------------------------------------------------------


NAMESPACE_ENV = "PB_FAULTS_MOUNT_NS"


def namespace_command(argv: Iterable[str]) -> list[str] | None:
    """The command that re-runs us in a private mount namespace, or None if impossible."""
    if os.environ.get(NAMESPACE_ENV) or os.geteuid() != 0:
        return None
    try:
        probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    return ["unshare", "--mount", "--propagation", "private", "--", *argv]


def private_hosts(workdir: Path) -> tuple[HostsFile | None, str | None]:
    """Bind-mount a private copy of /etc/hosts over /etc/hosts (inside our namespace)."""
    if not os.environ.get(NAMESPACE_ENV):
        if os.geteuid() != 0:
            return None, "needs root for a private mount namespace (unshare --mount)"
        return None, "unshare --mount is not permitted here"
    copy = workdir / "hosts"
    copy.write_text(Path("/etc/hosts").read_text())
    done = subprocess.run(["mount", "--bind", str(copy), "/etc/hosts"], capture_output=True,
                          text=True)
    if done.returncode != 0:
        return None, f"mount --bind over /etc/hosts failed: {done.stderr.strip()}"
    hosts = HostsFile(copy)
    hosts.resolvable(True)
    check = subprocess.run(["getent", "hosts", DEVICE_NAME], capture_output=True, text=True)
    if "127.0.0.1" not in check.stdout:
        return None, "the private /etc/hosts is not used by the resolver"
    return hosts, None


def dump_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


__all__ = [
    "FAULTS", "FAULTS_BY_NAME", "FIRMWARES", "ROW_NAMES", "Fault", "Harness", "HostsFile",
    "Row", "SoakResult", "dump_json", "namespace_command", "private_hosts", "run_fault",
    "run_soak",
]
