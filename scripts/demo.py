"""Try the product on one machine: simulator + klippy + Moonraker, all real, on loopback.

Run through ``scripts/demo`` (which prepares the environments first).  Prints
the Moonraker URL and one live line per second until Ctrl-C, then stops every
process it started.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from testbed import ROOT, free_port
from testbed.configs import panda_section, printer_cfg
from testbed.klippy import Klippy
from testbed.moonraker import Moonraker
from testbed.sim import SimProcess

STOCK_FIRMWARES = ("v1.0.0", "v1.0.1", "v1.0.2", "v1.0.3", "v1.0.4")

# Lets the hosted Mainsail and Fluidd pages talk to this Moonraker.
CORS = (
    "https://my.mainsail.xyz", "http://my.mainsail.xyz",
    "https://app.fluidd.xyz", "http://app.fluidd.xyz",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument("--moonraker-port", type=int, default=7125)
    parser.add_argument("--sim-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--firmware", choices=STOCK_FIRMWARES, default="v1.0.3")
    parser.add_argument(
        "--time-scale", type=float, default=30.0,
        help="simulated chamber clock speed-up (default 30: 22 to 45 °C in about a minute)",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "run" / "demo")
    return parser.parse_args(argv)


def live_line(moonraker: Moonraker, sim: SimProcess) -> str:
    try:
        heater = moonraker.query({"heater_panda_breath chamber": None})[
            "heater_panda_breath chamber"
        ]
        device = moonraker.panda_status("panda_breath")
        truth = sim.state()
    except Exception as exc:  # noqa: BLE001 - keep the demo alive while a part restarts
        return f"waiting: {exc}"
    relay = "heating" if truth.get("heater_on") else "idle"
    power = "ON" if truth.get("work_on") else "off"
    return (
        f"chamber {heater['temperature']:5.1f} °C | Klipper target {heater['target']:4.0f} | "
        f"device {power} set {truth.get('set_temp')} ({relay}) | link {device.get('link')}"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    parts: list[Any] = []

    def stop_all(*_: object) -> None:
        # A second Ctrl-C must not cut the orderly stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for part in reversed(parts):
            try:
                part.stop()
            except Exception:  # noqa: BLE001
                pass
        parts.clear()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(0))
    try:
        sim = SimProcess(workdir / "sim", port=args.sim_port or free_port(),
                         firmware=args.firmware, time_scale=args.time_scale)
        sim.start()
        parts.append(sim)
        macros = (ROOT / "examples" / "panda_breath_macros.cfg")
        klippy = Klippy(workdir / "klippy", printer_cfg(
            workdir / "gcodes", extra=macros.read_text() if macros.exists() else ""))
        klippy.start()
        parts.append(klippy)
        moonraker = Moonraker(
            workdir / "moonraker", klippy.socket_path,
            extra_config=panda_section(sim.port), port=args.moonraker_port, cors_domains=CORS,
        )
        moonraker.start()
        parts.append(moonraker)
        moonraker.wait_component_ready()
        url = moonraker.url
        print(f"""
Panda Breath demo is running (simulated {args.firmware}, time x{args.time_scale:g}).
  Moonraker:  {url}
  Simulator:  {sim.ws_url}   (true device state: http://127.0.0.1:{sim.port}/sim/state)
  Logs:       {workdir}

Set a chamber target:
  curl -s -X POST {url}/printer/gcode/script -H 'Content-Type: application/json' \\
       -d '{{"script": "SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45"}}'
  curl -s -X POST '{url}/printer/gcode/script?script=TURN_OFF_HEATERS'
Device status:  curl -s {url}/server/panda_breath/status
Mainsail: open https://my.mainsail.xyz and add the printer {url}
Fluidd:   open http://app.fluidd.xyz and add the printer {url}

Ctrl-C stops everything.
""", flush=True)
        while True:
            print(live_line(moonraker, sim), flush=True)
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
