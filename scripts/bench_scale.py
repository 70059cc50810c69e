"""Scale mode of ``scripts/bench``: N simulated devices on one real Moonraker and one real klippy.

``scripts/bench --scale 50`` starts N stock (v1.0.3) simulators in one
process, one klippy with N ``[heater_panda_breath pbI]`` heaters and one
Moonraker with N ``[panda_breath pbI]`` sections, and a WebSocket client
subscribed to every heater, as a front end is.  With the chamber steady
(target 0, 22 °C) it measures, over the same window as a run with N = 0
(the same klippy and Moonraker, no devices):

* Moonraker's and klippy's CPU (share of one core) and RSS;
* pushes into Klipper and device frames per device per minute;
* ``notify_status_update`` messages per heater per minute at the client,
  and ``notify_panda_breath_status_changed`` per minute;

then sets a target on every heater at once and reports whether (and how
fast) every device converged to it, and back to off.

The simulators' own CPU is not counted.  CPU is each process's own time
from /proc, so other load on the machine changes it little; still, compare
runs made in one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from testbed import stop_process_group, wait_until
from testbed.configs import HEATER_SECTION, base_printer_cfg, panda_section
from testbed.klippy import Klippy
from testbed.moonraker import Moonraker
from testbed.sim import SimProcess
from testbed.ui_client import UiClient

TARGET = 40
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
#: The simulators' model tick (their default 50 ms costs N times over, for nothing here).
FARM_TICK_S = 0.25


def proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return cpu, int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


# -- the simulator farm: N devices in one process -------------------------------------------

async def _serve_farm(count: int, ports_path: Path) -> None:
    from pbsim.options import SimOptions
    from pbsim.simulator import create_simulator

    sims = [create_simulator(SimOptions(firmware="v1.0.3", tick_interval=FARM_TICK_S))
            for _ in range(count)]
    for sim in sims:
        await sim.start()
    ports_path.write_text(json.dumps([sim.port for sim in sims]))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:
        await asyncio.sleep(0.5)
    for sim in sims:
        await sim.stop()


class SimFarm:
    """``count`` simulated devices served by one child process; ``sims`` talk to each."""

    def __init__(self, workdir: Path, count: int) -> None:
        self.workdir, self.count = workdir, count
        self.proc: subprocess.Popen[bytes] | None = None
        self.sims: list[SimProcess] = []

    def start(self) -> SimFarm:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = self.workdir / "ports.json"
        with open(self.workdir / "farm.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--serve-farm", str(self.count), str(ports)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_until(lambda: ports.exists() and ports.read_text(), 30.0, 0.1, "the simulators")
        self.sims = [SimProcess(self.workdir, port=port, name=f"sim{i}")
                     for i, port in enumerate(json.loads(ports.read_text()))]
        return self

    def stop(self) -> None:
        stop_process_group(self.proc)
        self.proc = None


# -- one run: klippy + Moonraker with ``count`` devices ------------------------------------

def heaters(count: int) -> list[str]:
    return [f"pb{i}" for i in range(count)]


def start_printer(workdir: Path, farm: SimFarm, count: int) -> tuple[Klippy, Moonraker]:
    names = heaters(count)
    sections = "\n".join(HEATER_SECTION.format(heater=name, stale_timeout=30.0, max_temp="")
                         for name in names)
    klippy = Klippy(workdir / "klippy", base_printer_cfg(workdir / "gcodes", sections))
    klippy.start(timeout=60.0)
    config = "\n".join(panda_section(sim.port, name=name, heater=name)
                       for name, sim in zip(names, farm.sims, strict=False))
    moonraker = Moonraker(workdir / "moonraker", klippy.socket_path, extra_config=config)
    try:
        moonraker.start(timeout=60.0)
    except BaseException:
        klippy.stop()
        raise
    return klippy, moonraker


def all_fed(moonraker: Moonraker, count: int) -> bool:
    if count == 0:
        return moonraker.klippy_state() == "ready"
    devices = moonraker.panda_status()
    return len(devices) == count and all(
        d.get("link") == "connected" and d.get("last_push_age") is not None
        for d in devices.values())


def device_counters(moonraker: Moonraker, count: int) -> tuple[int | None, int]:
    """(pushes into Klipper or None where the component does not count them,
    frames from the devices), summed over all devices."""
    if count == 0:
        return 0, 0
    devices = moonraker.panda_status().values()
    pushes = [d.get("pushes") for d in devices]
    frames = sum(int(d.get("frames_received") or 0) for d in devices)
    return (None if None in pushes else sum(int(p or 0) for p in pushes)), frames


def steady_window(klippy: Klippy, moonraker: Moonraker, count: int,
                  seconds: float) -> dict[str, Any]:
    """The costs and the traffic over ``seconds`` of a steady chamber."""
    objects = ["heater_panda_breath " + name for name in heaters(count)]
    with UiClient(moonraker.url) as ui:
        ui.subscribe(objects)
        time.sleep(3.0)  # the subscription's first diffs
        ui.reset()
        pids = {"moonraker": moonraker.proc.pid, "klippy": klippy.pid}  # type: ignore[union-attr]
        before = {name: proc_usage(pid)[0] for name, pid in pids.items() if pid}
        pushes0, frames0 = device_counters(moonraker, count)
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        usage = {name: proc_usage(pid) for name, pid in pids.items() if pid}
        pushes1, frames1 = device_counters(moonraker, count)
        updates, _fields, methods = ui.snapshot()
    per_minute = 60.0 / elapsed / max(count, 1)
    return {
        "cpu": {name: (cpu - before[name]) / elapsed for name, (cpu, _) in usage.items()},
        "rss": {name: rss for name, (_, rss) in usage.items()},
        "pushes": None if pushes0 is None or pushes1 is None
        else (pushes1 - pushes0) * per_minute,
        "frames": (frames1 - frames0) * per_minute,
        "ui": sum(updates[o] for o in objects) * per_minute,
        "component_notify": methods["notify_panda_breath_status_changed"] * 60.0 / elapsed,
    }


def arrived(farm: SimFarm, pending: set[int], target: int) -> bool:
    """Drop from ``pending`` the devices now at ``target``; True when none is left."""
    for i in sorted(pending):
        state = farm.sims[i].state()
        if (state["work_on"] is False if target == 0 else
                state["work_on"] is True and state["set_temp"] == target):
            pending.discard(i)
    return not pending


def converge(moonraker: Moonraker, farm: SimFarm, count: int) -> dict[str, Any]:
    """Every heater to TARGET, then to 0: how many devices got there, and how fast."""
    result: dict[str, Any] = {}
    for label, target in (("heat", TARGET), ("off", 0)):
        script = "\n".join(f"SET_HEATER_TEMPERATURE HEATER={name} TARGET={target}"
                           for name in heaters(count))
        t0 = time.monotonic()
        moonraker.gcode(script)
        pending = set(range(count))
        try:
            wait_until(lambda p=pending, t=target: arrived(farm, p, t), 30.0, 0.2,
                       f"every device at target {target}")
        except TimeoutError:
            pass
        result[label] = (count - len(pending), time.monotonic() - t0)
    return result


def measure(workdir: Path, farm: SimFarm, count: int, seconds: float) -> dict[str, Any]:
    print(f"N = {count}: starting klippy and Moonraker...", file=sys.stderr, flush=True)
    klippy, moonraker = start_printer(workdir / f"n{count}", farm, count)
    try:
        wait_until(lambda: all_fed(moonraker, count), 60.0, 0.5, "every device in Klipper")
        time.sleep(5.0)  # start-up work settles
        print(f"N = {count}: measuring {seconds:.0f} s...", file=sys.stderr, flush=True)
        result = steady_window(klippy, moonraker, count, seconds)
        if count:
            result["converge"] = converge(moonraker, farm, count)
        return result
    finally:
        moonraker.stop()
        klippy.stop()


def report(count: int, base: dict[str, Any], scaled: dict[str, Any]) -> None:
    print(f"{'scale: measure':<52} {'N = 0':>10} {f'N = {count}':>10} {'added':>10} "
          f"{'per device':>11}")
    for name in ("moonraker", "klippy"):
        cpu0, cpu = base["cpu"][name] * 100, scaled["cpu"][name] * 100
        print(f"{name + ' CPU, % of one core':<52} {cpu0:>9.2f}% {cpu:>9.2f}% "
              f"{cpu - cpu0:>+9.2f}% {(cpu - cpu0) / count:>+10.4f}%")
        rss0, rss = base["rss"][name] / 2**20, scaled["rss"][name] / 2**20
        print(f"{name + ' RSS, MB':<52} {rss0:>10.1f} {rss:>10.1f} {rss - rss0:>+10.1f} "
              f"{(rss - rss0) / count * 1024:>+9.0f}kB")
    pushes = scaled["pushes"]
    print(f"{'pushes into Klipper per device per minute':<52} {'':>10} "
          f"{'not counted' if pushes is None else f'{pushes:.1f}':>10}")
    print(f"{'device frames per device per minute':<52} {'':>10} {scaled['frames']:>10.1f}")
    print(f"{'UI notify_status_update per heater per minute':<52} {'':>10} "
          f"{scaled['ui']:>10.2f}")
    print(f"{'notify_panda_breath_status_changed per minute':<52} "
          f"{base['component_notify']:>10.2f} {scaled['component_notify']:>10.2f}")
    for label, (done, took) in scaled["converge"].items():
        what = f"target {TARGET}" if label == "heat" else "off"
        print(f"{'devices converged to ' + what:<52} {'':>10} {f'{done}/{count}':>10} "
              f"{took:>9.1f}s")


def run_scale(count: int, seconds: float) -> int:
    with tempfile.TemporaryDirectory(prefix="pb-bench-scale-") as tmp:
        work = Path(tmp)
        farm = SimFarm(work / "farm", count).start()
        try:
            base = measure(work, farm, 0, seconds)
            scaled = measure(work, farm, count, seconds)
        finally:
            farm.stop()
    report(count, base, scaled)
    converged = all(done == count for done, _ in scaled["converge"].values())
    return 0 if converged else 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve-farm"]:
        asyncio.run(_serve_farm(int(argv[1]), Path(argv[2])))
        return 0
    parser = argparse.ArgumentParser(prog="scripts/bench --scale", description=__doc__)
    parser.add_argument("--scale", type=int, default=50, metavar="N")
    parser.add_argument("--scale-seconds", type=float, default=120.0,
                        help="the steady window of each run (N = 0 and N)")
    args = parser.parse_args(argv)
    return run_scale(args.scale, args.scale_seconds)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
