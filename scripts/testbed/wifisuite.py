"""The bad Wi-Fi rows of ``scripts/faults``: the device's link through ``scripts/impair.py``.

One stack per firmware path with the proxy on the device's link (stock and
DragonBreath: between the component and the device; MQTT: between the
device and the broker), the component at its default timings.  While the
proxy plays a profile, Klipper changes its target every few seconds (a third
of them 0); a sampler reads the device's truth every 0.1 s.  Per run:

- each target's latency, from SET_HEATER_TEMPERATURE to the first sample of
  the device in that state; its bound is 1 s plus the profile's longest
  one-way delay (awful: 0.9 s, the floor of any arrival) plus every stall it
  met (a stall overlapping the time from the set to the arrival); a target replaced
  before its bound ran out and never reached is ``superseded``, not late;
- the component's reconnects; the most bridge sessions open at the device
  (sampled every 0.1 s, and the simulator's exact peak) and the longest time
  more than one was open: a connection given up on during a stall reaches
  the device with its close when the stall ends, and the device opens and
  ends it at once; more than SEVERAL_BOUND_S (0.5 s) of that is a miss;
- wrong-target heating: the device commanded to heat while not in Klipper's
  current state (transit time of a change included), total and longest;
- Klipper shutdowns and secrets in the logs (the fault rows' scan).

Passing: no shutdown, no late or lost target, never two bridge sessions for
more than 0.5 s, nothing in the logs.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbed import wait_until
from testbed.faultsuite import DRAGONBREATH, MQTT_FIRMWARES, Harness, desired, is_off

PROFILES = ("mild", "bad", "awful")
#: Seconds of each row in the full suite, and where its first stalls fall.
ROW_SECONDS = {"mild": 60.0, "bad": 60.0, "awful": 75.0}
FIRST_STALL = {"mild": 10.0, "bad": 8.0, "awful": 45.0}
#: awful's 20 s stall comes every 2 min; a row places one early.
FIRST_LONG = 12.0
CHANGE_EVERY_S = 6.0
TARGETS = (45.0, 40.0, 50.0, 38.0, 0.0, 0.0)
SAMPLE_S = 0.1
BOUND_SLACK_S = 1.0
#: The DragonBreath lease must outlive awful's 20 s stall: the device's
#: watchdog would otherwise (rightly) switch it off and latch a fault.
WIFI_LEASE_TIMEOUT = 30.0
#: A second bridge session may show only while one given up on during a stall
#: arrives with its close (the device opens and ends it at once).
SEVERAL_BOUND_S = 0.5
MQTT_SESSIONS = "the bridge holds no session at an MQTT device (both are broker clients)"


@dataclass
class Target:
    value: float
    set_at: float  # wall time of the SET_HEATER_TEMPERATURE
    reached_at: float | None = None
    replaced_at: float | None = None
    bound: float | None = None
    verdict: str = "pending"  # ok, late, superseded, lost

    @property
    def latency(self) -> float | None:
        return None if self.reached_at is None else self.reached_at - self.set_at


@dataclass
class WifiRun:
    firmware: str
    profile: str
    seconds: float
    targets: list[Target] = field(default_factory=list)
    stalls: list[dict[str, float]] = field(default_factory=list)
    #: The profile's longest one-way delay (latency + jitter): the floor of any arrival.
    link_delay_s: float = 0.0
    reconnects: int = 0
    sessions_max: int | None = None
    sessions_peak: int | None = None
    #: The longest time the device had more than one bridge session open (exact).
    several_s: float | None = None
    wrong_heat_s: float = 0.0
    wrong_heat_longest_s: float = 0.0
    shutdowns: list[str] = field(default_factory=list)
    secrets: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        return [t.latency for t in self.targets if t.latency is not None]

    def median_worst(self) -> tuple[float | None, float | None]:
        latencies = self.latencies
        if not latencies:
            return None, None
        return statistics.median(latencies), max(latencies)

    def count(self, verdict: str) -> int:
        return sum(t.verdict == verdict for t in self.targets)

    @property
    def ok(self) -> bool:
        return (not self.errors and not self.shutdowns and not self.secrets
                and self.count("late") == 0 and self.count("lost") == 0
                and (self.several_s is None or self.several_s <= SEVERAL_BOUND_S))

    def to_json(self) -> dict[str, Any]:
        median, worst = self.median_worst()
        return {**asdict(self), "median_s": median, "worst_s": worst, "ok": self.ok}


class Sampler(threading.Thread):
    """Reads the device every SAMPLE_S: arrivals, bridge sessions, wrong-target heat."""

    def __init__(self, h: Harness, run: WifiRun) -> None:
        super().__init__(name="wifi-sampler", daemon=True)
        self.h, self.run_ = h, run
        self.stop_ = threading.Event()
        self.lock = threading.Lock()
        self._wrong_since: float | None = None

    def run(self) -> None:
        last = time.time()
        while not self.stop_.is_set():
            try:
                state = self.h.state()
            except Exception:  # noqa: BLE001 - the simulator is local; retry
                time.sleep(SAMPLE_S)
                continue
            now = time.time()
            with self.lock:
                self._take(state, now, now - last)
            last = now
            self.stop_.wait(SAMPLE_S)

    def _take(self, state: dict[str, Any], now: float, dt: float) -> None:
        run, fw = self.run_, self.run_.firmware
        if fw not in MQTT_FIRMWARES:
            run.sessions_max = max(run.sessions_max or 0, int(state["bridge_sessions"]))
        current = run.targets[-1] if run.targets else None
        for t in run.targets:
            if t.reached_at is None and t.replaced_at is None and desired(fw, t.value)(state):
                t.reached_at = now
        heating = bool(state.get("up")) and not is_off(fw)(state)
        wrong = heating and current is not None and not desired(fw, current.value)(state)
        if wrong:
            run.wrong_heat_s += dt
            self._wrong_since = self._wrong_since or now
            run.wrong_heat_longest_s = max(run.wrong_heat_longest_s, now - self._wrong_since)
        else:
            self._wrong_since = None

    def set_target(self, value: float) -> Target:
        with self.lock:
            now = time.time()
            for t in self.run_.targets:
                if t.reached_at is None and t.replaced_at is None:
                    t.replaced_at = now
            target = Target(value, now)
            self.run_.targets.append(target)
            return target


def judge(run: WifiRun, end: float) -> None:
    """Each target's bound (1 s + the link's one-way delay + the stalls it met) and verdict."""
    stalls = [(s["at"], s["at"] + s["seconds"]) for s in run.stalls]
    for t in run.targets:
        until = next((v for v in (t.reached_at, t.replaced_at) if v is not None), end)
        met = sum(b - a for a, b in stalls if a < until and b > t.set_at)
        t.bound = BOUND_SLACK_S + run.link_delay_s + met
        deadline = t.set_at + t.bound
        if t.reached_at is not None:
            t.verdict = "ok" if t.reached_at <= deadline else "late"
        elif t.replaced_at is not None and t.replaced_at <= deadline:
            t.verdict = "superseded"
        else:
            t.verdict = "late" if t.replaced_at is not None else "lost"


class WifiHarness(Harness):
    """The fault rows' harness with the proxy on the device's link (and, to measure the
    trade of the silence rule, another ``silence_timeout`` than the component's)."""

    silence_timeout: float | None = None

    def panda_options(self) -> dict[str, Any]:
        options = super().panda_options()
        if self.silence_timeout is not None:
            options["silence_timeout"] = f"{self.silence_timeout:g}"
        return options


def wifi_harness(root: Path, firmware: str, progress: Callable[[str], None],
                 silence_timeout: float | None = None) -> Harness:
    h = WifiHarness(root / "wifi", firmware, progress=progress, impair="clear",
                    lease_timeout=WIFI_LEASE_TIMEOUT)
    h.silence_timeout = silence_timeout
    return h


def run_wifi(h: Harness, profile: str, seconds: float, seed: int,
             first_stall: float | None = None, first_long: float | None = FIRST_LONG,
             progress: Callable[[str], None] = lambda _: None) -> WifiRun:
    """``seconds`` of ``profile`` while Klipper changes its target; then the link clears
    and the last target must arrive."""
    run = WifiRun(h.firmware, profile, seconds)
    try:
        h.ensure_ready()
        proxy = h.s.impair
        assert proxy is not None, "the harness runs without the Wi-Fi proxy"
        mark = h.logs.mark()
        reconnects = h.device()["reconnects"]
        h.control("reset_session_peak")
        sampler = Sampler(h, run)
        sampler.start()
        rng = random.Random(seed)
        t0, w0 = time.monotonic(), time.time()
        played = proxy.set_profile(profile, FIRST_STALL.get(profile) if first_stall is None
                                   else first_stall, first_long)
        run.link_delay_s = (played["latency_ms"] + played["jitter_ms"]) / 1000.0
        value = -1.0
        try:
            while time.monotonic() - t0 < seconds:
                value = rng.choice([t for t in TARGETS if t != value])
                sampler.set_target(value)
                h.set_target(value)
                time.sleep(max(0.0, min(CHANGE_EVERY_S, t0 + seconds - time.monotonic())))
            proxy.set_profile("clear")
            last = run.targets[-1]
            wait_until(lambda: last.reached_at is not None, 30.0, 0.1, "the last target")
        except TimeoutError as exc:
            run.errors.append(str(exc))
        finally:
            sampler.stop_.set()
            sampler.join(5.0)
        end = time.time()
        run.stalls = [s for s in proxy.state()["stalls"] if s["at"] >= w0 - 0.5]
        judge(run, end)
        run.reconnects = h.device()["reconnects"] - reconnects
        if h.firmware not in MQTT_FIRMWARES:
            state = h.state()
            run.sessions_peak = int(state["bridge_sessions_peak"])
            run.several_s = float(state["bridge_sessions_several_longest"])
        run.shutdowns, run.secrets = h.logs.scan(mark)
    except Exception as exc:  # noqa: BLE001 - one broken run must not end the suite
        run.errors.append(f"{type(exc).__name__}: {exc}"[:300])
    progress(f"[{h.firmware}] wifi-{profile}: {describe(run)}")
    return run


def describe(run: WifiRun) -> str:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    sessions = "-" if run.sessions_max is None else (
        f"{run.sessions_max} sampled, {run.sessions_peak} at any instant, more than one for "
        f"{run.several_s:.2f} s at most")
    stalls = ", ".join(f"{s['seconds']:g}" for s in run.stalls) or "none"
    median, worst = run.median_worst()
    text = (f"{len(run.targets)} targets ({run.count('ok')} ok, {run.count('superseded')} "
            f"superseded, {run.count('late')} late, {run.count('lost')} lost), latency median "
            f"{fmt(median)} s worst {fmt(worst)} s; stalls {stalls} s; reconnects "
            f"{run.reconnects}; bridge sessions max {sessions}; wrong-target heat "
            f"{run.wrong_heat_s:.1f} s (longest {run.wrong_heat_longest_s:.1f} s); shutdowns "
            f"{len(run.shutdowns)}")
    late = [f"{t.value:g}: {fmt(t.latency)} > {t.bound:g}" for t in run.targets
            if t.verdict in ("late", "lost") and t.bound is not None]
    if late:
        text += "; late: " + ", ".join(late)
    if run.errors:
        text += "; errors: " + "; ".join(run.errors)
    return text


def wifi_firmware_note(firmware: str) -> str:
    return MQTT_SESSIONS if firmware in MQTT_FIRMWARES else (
        "event streams" if firmware == DRAGONBREATH else "WebSocket clients")
