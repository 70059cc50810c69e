"""Try the product on one machine: simulator + klippy + Moonraker, all real, on loopback.

Run through ``scripts/demo`` (which prepares the environments first).  Prints
the Moonraker URL and one live line per second until Ctrl-C, SIGTERM or SIGHUP,
then stops every process it started; they die with it even if it is killed
(testbed.processes).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

from testbed import ROOT
from testbed.configs import SETUPS, setup_name
from testbed.stack import FIRMWARES, Stack, start_stack

# Lets the hosted Mainsail and Fluidd pages, and a UI served on this machine at
# http://localhost[:PORT], talk to this Moonraker (an http://127.0.0.1:PORT page
# needs no entry: loopback is a trusted client).
CORS = (
    "https://my.mainsail.xyz", "http://my.mainsail.xyz",
    "https://app.fluidd.xyz", "http://app.fluidd.xyz",
    "http://localhost", "http://localhost:*",
)


#: An orderly stop on each; whatever disposition was inherited (a background job of a
#: non-interactive shell starts with SIGINT ignored, nohup ignores SIGHUP).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(BaseException):
    """A stop signal arrived (not an Exception: nothing that waits on a part swallows it)."""


def _stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument("--moonraker-port", type=int, default=7125)
    parser.add_argument("--sim-port", type=int, default=0, help="default: a free port")
    parser.add_argument(
        "--firmware", choices=FIRMWARES, default="v1.0.3",
        help="a stock version (WebSocket), or esphome / stock_mqtt (starts its own Mosquitto)",
    )
    parser.add_argument(
        "--time-scale", type=float, default=30.0,
        help="simulated chamber clock speed-up (default 30: 22 to 45 °C in about a minute)",
    )
    parser.add_argument(
        "--setup", type=setup_name, choices=SETUPS, default="heater_panda_breath",
        help="the printer.cfg sections that carry the chamber: heater_panda_breath (default, "
             "as recommended: [heater_panda_breath chamber], listed by Mainsail and Fluidd) or "
             "heater_generic (examples/panda_breath_klipperscreen.cfg: [heater_generic chamber], "
             "also listed by KlipperScreen and HelixScreen)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=ROOT / "run" / "demo",
        help="holds printer_data/ (config, logs, gcodes, database) and the parts' output",
    )
    return parser.parse_args(argv)


def live_line(stack: Stack) -> str:
    try:
        heater = stack.heater_status()
        device = stack.device()
        truth = stack.sim.state()
    except Exception as exc:  # noqa: BLE001 - keep the demo alive while a part restarts
        return f"waiting: {exc}"
    relay = "heating" if truth.get("heater_on") else "idle"
    power = "ON" if truth.get("work_on") else "off"
    setpoint = truth.get("set_temp")
    if stack.firmware == "esphome":
        esp = truth.get("esphome") or {}
        setpoint = f"{esp.get('low')}-{esp.get('high')}"
    return (
        f"chamber {heater['temperature']:5.1f} °C | Klipper target {heater['target']:4.0f} | "
        f"device {power} set {setpoint} ({relay}) | link {device.get('link')}"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    workdir: Path = args.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    stack: Stack | None = None
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        # A printer's layout (printer_data/config with printer.cfg, the usual
        # PAUSE/RESUME/CANCEL_PRINT macros and examples/panda_breath_macros.cfg
        # included): the UIs open without configuration warnings.
        stack = start_stack(
            workdir, args.firmware, time_scale=args.time_scale, sim_port=args.sim_port or None,
            moonraker_port=args.moonraker_port, cors_domains=CORS, printer_data=True,
            heater_setup=args.setup,
            # Klipper's own heater ([heater_generic]) needs a clock: the
            # stand-in MCU gives it one.
            klippy_mcu="sim" if args.setup == "heater_generic" else "file",
        )
        moonraker, sim = stack.moonraker, stack.sim
        url = moonraker.url
        device = f"{sim.ws_url}  " if stack.broker is None else (
            f"{args.firmware} on the MQTT broker 127.0.0.1:{stack.broker.port}"
        )
        print(f"""
Panda Breath demo is running (simulated {args.firmware}, time x{args.time_scale:g}).
  Moonraker:  {url}
  Simulator:  {device} (true device state: http://127.0.0.1:{sim.port}/sim/state)
  Config:     {moonraker.data_path / "config"} (printer.cfg, moonraker.conf)
  Logs:       {moonraker.data_path / "logs"}

Set a chamber target:
  curl -s -X POST {url}/printer/gcode/script -H 'Content-Type: application/json' \\
       -d '{{"script": "SET_HEATER_TEMPERATURE HEATER=chamber TARGET=45"}}'
  curl -s -X POST '{url}/printer/gcode/script?script=TURN_OFF_HEATERS'
Device status:  curl -s {url}/server/panda_breath/status
Mainsail: open https://my.mainsail.xyz and add the printer {url}
Fluidd:   open http://app.fluidd.xyz and add the printer {url}
(or serve either UI yourself at http://localhost:PORT or http://127.0.0.1:PORT)

Ctrl-C (or SIGTERM, SIGHUP) stops everything.
""", flush=True)
        while True:
            print(live_line(stack), flush=True)
            time.sleep(1.0)
    except Stop as stop:
        print(f"\n{stop}: stopping...", flush=True)
        return 0
    finally:
        # A second signal must not cut the orderly stop short.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
