"""Latency, resync time and idle cost of the bridge, through the real stack on loopback.

Run through ``scripts/bench``.  Prints medians and p99 over many samples:

* target change in Klipper -> the frame at the device (simulator receive time);
* device temperature frame -> visible in Klipper's heater status;
* device drops every connection -> desired state resent to it;
* Moonraker's CPU and memory at idle, with the component minus without it;
* the cost at the device of keeping it in Klipper's state (stock firmware
  reports no settings, so the component re-asserts them): frames written per
  hour while heating and while off, new connections, client slots held.

``--restarts N`` measures instead how soon a restarted device is back in
Klipper's state: N times down 3 s (the component at its default timings),
the time from the device answering again to in sync
(``testbed.resync``, both on the simulator's clock), median and worst; for
the stock firmware both the resend of a target and the OFF of a device that
booted heating while Klipper's target is 0.

``--firmware dragonbreath`` measures the DragonBreath path (HTTP API v2 and
its event stream) instead: Klipper's target -> the ``power_on`` the simulated
device accepted (its journal's receive time, once its state shows the new
target), and target 0 -> the device off.

Both processes run on one machine, so wall-clock timestamps are comparable;
the machine is shared and noisy, so only medians and high percentiles mean
anything.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_scale
from testbed import wait_until
from testbed.configs import SETUPS, setup_name
from testbed.klippy import KlippyAPIClient
from testbed.moonraker import Moonraker
from testbed.resync import SyncTimes, restart_and_time_sync
from testbed.sim import SimProcess
from testbed.stack import start_stack

HEATER = "heater_panda_breath chamber"
#: Deadlines tested for the temperature path (seconds before a status tick).
DEADLINES = (0.005, 0.010, 0.020, 0.050)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def row(
    name: str, samples: list[float], target: str, unit: str = "ms", scale: float = 1000.0
) -> str:
    med = statistics.median(samples) * scale
    p99 = percentile(samples, 99) * scale
    return f"{name:<46} {len(samples):>5} {med:>9.1f} {p99:>9.1f} {unit:<3} {target}"


def frame_time(state: dict[str, Any], key: str, value: Any, after: float) -> float | None:
    for frame in state["recent_frames"]:
        settings = (frame.get("payload") or {}).get("settings") or {}
        if frame["time"] >= after and settings.get(key) == value:
            return float(frame["time"])
    return None


def bench_target_latency(client: KlippyAPIClient, sim: SimProcess, samples: int) -> list[float]:
    results = []
    for i in range(samples):
        target = 40 + (i % 2)
        t0 = time.time()
        client.gcode(f"SET_HEATER_TEMPERATURE HEATER=chamber TARGET={target}")
        seen = wait_until(
            lambda target=target, t0=t0: frame_time(sim.state(), "set_temp", target, t0),
            5.0, 0.002, "set_temp frame at the device",
        )
        results.append(seen - t0)
        time.sleep(0.15)  # beyond the component's 100 ms write coalescing window
    return results


def raw_clock() -> float:
    """Klippy's reactor clock (its eventtimes are CLOCK_MONOTONIC_RAW seconds)."""
    return time.clock_gettime(time.CLOCK_MONOTONIC_RAW)


def query_heater(client: KlippyAPIClient) -> tuple[float, float]:
    """(eventtime, temperature) of one status sample taken at Klipper's next status tick."""
    result = client.request("objects/query", {"objects": {HEATER: ["temperature"]}})
    return float(result["eventtime"]), float(result["status"][HEATER]["temperature"])


def bench_temperature_deadlines(
    client: KlippyAPIClient, sim: SimProcess, samples: int, deadlines: tuple[float, ...]
) -> dict[float, tuple[int, int]]:
    """For each deadline d: of n frames sent d before a status tick, how many were in it.

    Klipper samples status for queries and subscriptions only on its 250 ms
    tick, so polling cannot see a 50 ms latency.  Instead each frame is sent a
    chosen time before a known tick (eventtimes are CLOCK_MONOTONIC_RAW, the
    same clock as here); if that tick already shows the new reading, the
    whole path (device frame -> component -> Klipper's heater object) took
    less than the deadline.
    """
    wall_minus_raw = time.time() - raw_clock()
    results = {d: (0, 0) for d in deadlines}
    for i in range(samples):
        deadline = deadlines[i % len(deadlines)]
        value = 33 + (i % 2)
        tick, _ = query_heater(client)
        next_tick = tick + 0.25
        while next_tick - raw_clock() < deadline + 0.02:
            next_tick += 0.25
        time.sleep(max(0.0, next_tick - deadline - raw_clock()))
        sent_at = float(sim.control("emit_temperature", value=value)["sent_at"])
        sent_raw = sent_at - wall_minus_raw
        seen_tick, temperature = query_heater(client)
        made_it = seen_tick >= next_tick - 0.01 and temperature == value
        hit, total = results[deadline]
        # Count only frames that really left before the deadline.
        if seen_tick - sent_raw <= deadline + 0.005:
            results[deadline] = (hit + int(made_it), total + 1)
        wait_until(lambda value=value: query_heater(client)[1] == value, 5.0, 0.0,
                   "reading to reach Klipper")
    return results


def bench_resync(sim: SimProcess, samples: int) -> list[float]:
    results = []
    for _ in range(samples):
        t0 = time.time()
        sim.control("drop")
        seen = wait_until(
            lambda t0=t0: frame_time(sim.state(), "set_temp", 41, t0),
            10.0, 0.01, "target resent after the drop",
        )
        results.append(seen - t0)
        time.sleep(2.5)  # a connection that lived 2 s counts as healthy: no backoff
    return results


def bench_reassert_cost(client: KlippyAPIClient, sim: SimProcess, seconds: float) -> dict[str, Any]:
    """Frames the device receives per hour, heating and off, with nothing else going on."""
    costs: dict[str, Any] = {}
    for label, target in (("heating", 41), ("off", 0)):
        client.gcode(f"SET_HEATER_TEMPERATURE HEATER=chamber TARGET={target}")
        time.sleep(1.0)
        before = sim.state()
        time.sleep(seconds)
        after = sim.state()
        frames = after["frames_received"] - before["frames_received"]
        costs[label] = frames * 3600.0 / seconds
        costs[label + "_connections"] = after["connections_total"] - before["connections_total"]
        costs[label + "_clients"] = after["clients"]
    return costs


def proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return cpu, rss_pages * os.sysconf("SC_PAGE_SIZE")


def idle_cost(moonrakers: list[Moonraker], seconds: float) -> list[tuple[float, int]]:
    """Share of a core and RSS of each Moonraker over the same idle window."""
    pids = [m.proc.pid for m in moonrakers if m.proc is not None]
    before = [proc_usage(pid)[0] for pid in pids]
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    after = [proc_usage(pid) for pid in pids]
    return [((cpu - cpu0) / elapsed, rss) for cpu0, (cpu, rss) in zip(before, after, strict=True)]


def command_time(state: dict[str, Any], after: float, name: str, **fields: Any) -> float | None:
    """Receive time of the first DragonBreath command ``name`` (with ``fields``) the
    simulated device applied at or after ``after``."""
    for frame in state["recent_frames"]:
        payload = frame.get("payload") or {}
        if (frame["time"] >= after and frame.get("transport") == "http" and frame.get("applied")
                and payload.get("command") == name
                and all(payload.get(k) == v for k, v in fields.items())):
            return float(frame["time"])
    return None


def bench_dragonbreath(samples: int) -> int:
    """Klipper target -> DragonBreath command accepted, for heat and for off."""
    with tempfile.TemporaryDirectory(prefix="pb-bench-") as tmp:
        stack = start_stack(Path(tmp), "dragonbreath", time_scale=1.0)
        try:
            client = stack.klippy.client()
            heat: list[float] = []
            off: list[float] = []
            print("measuring latencies...", file=sys.stderr, flush=True)
            for i in range(samples):
                target = 40 + (i % 2)
                t0 = time.time()
                client.gcode(f"SET_HEATER_TEMPERATURE HEATER=chamber TARGET={target}")
                seen = wait_until(
                    lambda target=target, t0=t0: command_time(
                        stack.sim.state(), t0, "power_on", target_c=target),
                    5.0, 0.002, "power_on at the device")
                stack.wait_sim(lambda s, target=target: s["mode"] == "power_on"
                               and s["requested_c"] == target, 2.0, "the device's state")
                heat.append(seen - t0)
                time.sleep(0.15)  # beyond the component's 100 ms write coalescing window
            for _ in range(samples):
                t0 = time.time()
                client.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=0")
                seen = wait_until(lambda t0=t0: command_time(stack.sim.state(), t0, "off"),
                                  5.0, 0.002, "off at the device")
                stack.wait_sim(lambda s: s["mode"] == "off", 2.0, "the device's state")
                off.append(seen - t0)
                client.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=40")
                stack.wait_sim(lambda s: s["mode"] == "power_on", 5.0, "heating again")
                time.sleep(0.15)
            client.close()
        finally:
            stack.stop()
    print(f"{'measure':<46} {'n':>5} {'median':>9} {'p99':>9}     target")
    print(row("target -> power_on accepted, DragonBreath", heat, "p99 < 300 ms"))
    print(row("target 0 -> off accepted, DragonBreath", off, "p99 < 300 ms"))
    return 0


def bench_restarts(firmware: str, runs: int) -> int:
    """Device down 3 s, ``runs`` times: from its first answer to Klipper's state at it."""
    db = firmware == "dragonbreath"
    heating = ((lambda s: s["mode"] == "power_on" and s["requested_c"] == 45) if db
               else (lambda s: s["work_on"] is True and s["work_mode"] == 2
                     and s["set_temp"] == 45))
    off = (lambda s: s["mode"] == "off") if db else (lambda s: s["work_on"] is False)
    resent, switched_off = SyncTimes(), SyncTimes()
    with tempfile.TemporaryDirectory(prefix="pb-bench-") as tmp:
        stack = start_stack(Path(tmp), firmware, time_scale=1.0,
                            panda_options={"reconnect_max_delay": None, "silence_timeout": None})
        try:
            print("restarting the device...", file=sys.stderr, flush=True)
            for _ in range(runs):
                stack.moonraker.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45")
                stack.wait_sim(heating, 5.0, "heating at 45")
                if not db:  # flash says off: the target must be resent
                    stack.sim.control("button", work_on=0, set_temp=30)
                resent.runs.append(restart_and_time_sync(stack.sim, heating, wipe=int(db)))
                time.sleep(2.2)  # a connection that lived 2 s: the next outage is a new one
                if db:  # DragonBreath boots off: nothing to switch off
                    continue
                stack.moonraker.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=0")
                stack.wait_sim(off, 5.0, "off")
                stack.sim.control("button", work_on=1, work_mode=2, set_temp=50)
                switched_off.runs.append(restart_and_time_sync(stack.sim, off))
                time.sleep(2.2)
        finally:
            stack.stop()
    print(f"device down 3 s, {firmware}, default timings: device answers -> in sync")
    print(f"  target resent:              {resent.describe()}")
    if switched_off.runs:
        print(f"  booted heating, switched off: {switched_off.describe()}")
    worst = [t.worst() for t in (resent, switched_off) if t.runs]
    return 0 if all(w is not None and w <= 0.5 for w in worst) else 1


def bench_klipperscreen_setup(samples: int) -> int:
    """Target latency of the opt-in setup: Klipper's heater target is polled (0.25 s)."""
    with tempfile.TemporaryDirectory(prefix="pb-bench-") as tmp:
        stack = start_stack(Path(tmp), "v1.0.3", time_scale=1.0, heater_setup="heater_generic",
                            klippy_mcu="sim")
        try:
            client = stack.klippy.client()
            target = bench_target_latency(client, stack.sim, samples)
            client.close()
        finally:
            stack.stop()
    print(f"{'measure':<46} {'n':>5} {'median':>9} {'p99':>9}     target")
    print(row("target -> device, [heater_generic] setup", target, "p99 < 300 ms"))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--resync-samples", type=int, default=30)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument(
        "--setup", type=setup_name, choices=SETUPS, default="heater_panda_breath",
        help="heater_generic: only the target latency, for the [heater_generic] setup",
    )
    parser.add_argument("--reassert-seconds", type=float, default=120.0,
                        help="window for each of the heating/off re-assert cost samples")
    parser.add_argument(
        "--firmware", choices=("v1.0.3", "dragonbreath"), default="v1.0.3",
        help="dragonbreath: only the target latencies, through its HTTP API and event stream",
    )
    parser.add_argument("--restarts", type=int, default=0, metavar="N",
                        help="only the restart measure: the device down 3 s, N times")
    parser.add_argument("--scale", type=int, metavar="N",
                        help="scale mode: N simulated devices on one Moonraker and klippy "
                        "against N = 0 (scripts/bench_scale.py)")
    parser.add_argument("--scale-seconds", type=float, default=120.0,
                        help="scale mode: the steady window of each run")
    args = parser.parse_args(argv)
    if args.restarts:
        return bench_restarts(args.firmware, args.restarts)
    if args.scale is not None:
        return bench_scale.run_scale(args.scale, args.scale_seconds)
    if args.firmware == "dragonbreath":
        return bench_dragonbreath(args.samples)
    if args.setup == "heater_generic":
        return bench_klipperscreen_setup(args.samples)
    with tempfile.TemporaryDirectory(prefix="pb-bench-") as tmp:
        work = Path(tmp)
        stack = start_stack(work, "v1.0.3", time_scale=1.0)
        try:
            # Baseline: a second Moonraker on the same klippy, without the
            # component, measured over the same window (same machine noise).
            base = Moonraker(work / "baseline", stack.klippy.socket_path)
            base.start()
            stack.parts.append(base)
            wait_until(lambda: base.klippy_state() == "ready", 15.0, what="baseline ready")
            time.sleep(2.0)  # let start-up work settle
            (base_cpu, base_rss), (comp_cpu, comp_rss) = idle_cost(
                [base, stack.moonraker], args.idle_seconds
            )
            client = stack.klippy.client()
            print("measuring latencies...", file=sys.stderr, flush=True)
            target = bench_target_latency(client, stack.sim, args.samples)
            deadlines = bench_temperature_deadlines(client, stack.sim, args.samples, DEADLINES)
            client.gcode("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=41")
            resync = bench_resync(stack.sim, args.resync_samples)
            reassert = bench_reassert_cost(client, stack.sim, args.reassert_seconds)
            client.close()
        finally:
            stack.stop()
    print(f"{'measure':<46} {'n':>5} {'median':>9} {'p99':>9}     target")
    print(row("target change -> frame at device", target, "p99 < 50 ms"))
    for deadline, (hit, total) in deadlines.items():
        share = 100.0 * hit / total if total else float("nan")
        label = f"temperature frame -> Klipper status < {deadline * 1000:.0f} ms"
        print(f"{label:<46} {total:>5} {share:>8.1f}% of frames     p99 < 50 ms")
    print(row("device drop -> desired state resent", resync, "< 1500 ms", "ms"))
    for label in ("heating", "off"):
        name = f"frames written to the device per hour, {label}"
        print(f"{name:<46} {'':>5} {reassert[label]:>9.0f}          "
              f"new connections {reassert[label + '_connections']}, "
              f"client slots held {reassert[label + '_clients']}")
    print(f"{'Moonraker idle CPU, without / with component':<46} {'':>5} "
          f"{base_cpu * 100:>8.2f}% {comp_cpu * 100:>8.2f}%     component < 1 % of a core "
          f"(difference {(comp_cpu - base_cpu) * 100:+.2f}%)")
    print(f"{'Moonraker RSS, without / with component':<46} {'':>5} "
          f"{base_rss / 2**20:>7.1f}MB {comp_rss / 2**20:>7.1f}MB     "
          f"(difference {(comp_rss - base_rss) / 2**20:+.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
