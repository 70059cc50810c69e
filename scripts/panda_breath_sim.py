#!/usr/bin/env python3
"""Simulated BIQU Panda Breath for the bridge's tests, demo and benchmark.

Run ``python scripts/panda_breath_sim.py --port 8080`` and point a client at
``ws://127.0.0.1:8080/ws`` (``--firmware dragonbreath``: the DragonBreath HTTP
API v2 and event stream at ``http://127.0.0.1:8080/api/v2/...``; its own
control actions are listed in ``pbsim.dragonbreath_sim``: take_over,
button_long_press, fault, clear_fault, occupy_streams, silence_stream,
drop_streams, reboot, refuse, slow, auto_print, sensor_fault, comms_ms,
malformed (as hostile telemetry events), set_temps, time_scale, state).
``GET /sim/state`` shows the device's true state;
``GET /sim/control?action=NAME&param=value`` injects faults (GET only: the
listener is the ``websockets`` server, whose HTTP side only answers GET).

Control actions: drop (how=abort|close), silence (seconds, snapshots=0|1),
refuse (seconds), occupy (clients, seconds: phantom clients fill the WS slots),
reboot (down, wipe=0|1, work_on, set_temp, work_mode | mode, low, high),
(refuse, reboot, malformed, set_temps, time_scale and state are every firmware's)
malformed (kind=json|types|oversize|binary|deep|huge_number|nonfinite|unicode|
wrong_root|giant|all, count, size, depth; also published on the MQTT state
topics), sensor_fault (sensor=ptc|warehouse|heater, code=1 short|2 open|0 clear,
reading, seconds), clear_faults, button (work_on, work_mode, set_temp; every
firmware), set_temps (chamber, ptc, ambient), emit_temperature (value: set the
chamber and report it at once, returns sent_at), time_scale (value), printer
(state, bed_target, name, host, port; stock only), state; plus the shorthand fault kinds
ptc_short, ptc_open, warehouse_short, warehouse_open, heater_fault, wrong_types,
oversize, binary, deep, huge_number, nonfinite, unicode, wrong_root, giant,
hostile (all malformed kinds), reboot_wipe.

From Python: ``from panda_breath_sim import create_simulator`` (see pbsim.simulator).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pbsim.dragonbreath import DragonBreathOptions  # noqa: E402 - after the path set-up
from pbsim.esphome import EsphomeOptions  # noqa: E402
from pbsim.faults import FAULT_KINDS, ScheduledFault  # noqa: E402
from pbsim.options import SimOptions  # noqa: E402
from pbsim.secrets import (  # noqa: E402
    SECRET_AP_PASSWORD,
    SECRET_STRINGS,
    SECRET_WIFI_PASSWORD,
)
from pbsim.simulator import PERSONALITIES, create_simulator  # noqa: E402
from pbsim.stock_ws import WsOptions  # noqa: E402

__all__ = [
    "SECRET_AP_PASSWORD",
    "SECRET_STRINGS",
    "SECRET_WIFI_PASSWORD",
    "SimOptions",
    "build_parser",
    "create_simulator",
    "main",
    "options_from_args",
]


def _fault_spec(text: str) -> str:
    try:
        ScheduledFault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _bool_word(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "on", "yes"):
        return True
    if lowered in ("0", "false", "off", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Simulated BIQU Panda Breath (stock WebSocket, v1.0.4 MQTT, ESPHome MQTT).",
        epilog=f"Fault kinds for --fault: {', '.join(sorted(FAULT_KINDS))}.",
    )
    g = p.add_argument_group("listener and device")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=8080, help="HTTP/WebSocket port (0: any free)")
    g.add_argument("--firmware", choices=list(PERSONALITIES), default="v1.0.3")
    g.add_argument("--time-scale", type=float, default=1.0,
                   help="model clock speed-up (thermal model, drying timer)")
    g.add_argument("--frame-interval", type=float, default=None,
                   help="wall seconds between periodic frames (default 2.0; ESPHome sensors 5.0)")
    g.add_argument("--ambient", type=float, default=22.0, help="room temperature, °C")
    g.add_argument("--hysteresis", type=float, default=1.0, help="stock relay band, °C")
    g.add_argument("--device-id", default="ACEBE68FE51C", help="MAC without colons")
    g.add_argument("--state-file", default=None, help="persist the flash (NVS) to this JSON file")
    g.add_argument("--max-clients", type=int, default=7)
    g.add_argument("--refuse-style", choices=["close", "http503"], default="close",
                   help="how a refused WebSocket client is turned away")
    g.add_argument("--reboot-down-time", type=float, default=2.0)
    g.add_argument("--ws-ping", type=float, default=None, metavar="SECONDS",
                   help="send WS pings (the device's httpd does not, §2.14 #6)")
    g.add_argument("--log-level", default="INFO")
    g.add_argument("--exit-with-parent", action="store_true",
                   help="stop when the parent process goes away (no orphans in test runs)")

    b = p.add_argument_group("boot state (as if power-cycled with these saved settings)")
    b.add_argument("--boot-work-on", type=_bool_word, default=None, metavar="BOOL")
    b.add_argument("--boot-set-temp", type=float, default=None)
    b.add_argument("--boot-work-mode", default=None, help="auto | on | drying (or wire number)")

    w = p.add_argument_group("stock WebSocket quirks (unverified behaviour as flags)")
    w.add_argument("--cal-temp", action="store_true",
                   help="also send cal_warehouse_temp/cal_ptc_temp (one decimal)")
    w.add_argument("--periodic-state", action="store_true",
                   help="periodic frames also carry work_on/work_mode")
    w.add_argument("--no-ws-aliases", action="store_true",
                   help="v1.0.4: ignore target_temp/filter_temp/heater_temp/drying_running on WS")
    w.add_argument("--multi-key-frames", action="store_true",
                   help="v1.0.3+: apply every key of a settings frame, not only the first")
    w.add_argument("--snapshot-bool-work-on", action="store_true",
                   help="report work_on as JSON bool instead of int 0/1")
    w.add_argument("--chamber-temp-only", action="store_true",
                   help="v1.0.4 periodic frames carry chamber_temp without warehouse_temper")
    w.add_argument("--push-changes", action="store_true",
                   help="push changes made by a client/button/MQTT to the WS clients")
    w.add_argument("--swap-sensor-codes", action="store_true",
                   help="sensor status 1 = open, 2 = short (the UI says 1 short, 2 open)")
    w.add_argument("--printer-frame-every", type=int, default=5,
                   help="send printer.state after every Nth temperature frame (0: never)")

    m = p.add_argument_group("MQTT (v1.0.4 native, ESPHome)")
    m.add_argument("--mqtt", default=None, metavar="HOST:PORT")
    m.add_argument("--mqtt-prefix", default=None,
                   help="topic prefix (panda_breath for v1.0.4, panda-breath for ESPHome)")
    m.add_argument("--mqtt-state-interval", type=float, default=0.5)

    e = p.add_argument_group("ESPHome")
    e.add_argument("--esphome-low", type=float, default=40.0,
                   help="YAML default_target_temperature_low (used when nothing is saved)")
    e.add_argument("--esphome-high", type=float, default=42.0)
    e.add_argument("--esphome-fan-with-heat", action="store_true",
                   help="run the fan whenever the relay is on (not in the YAML)")
    e.add_argument("--esphome-host-topic", default=None,
                   help="host availability topic; 'offline' (or Moonraker's "
                   "{\"server\": \"offline\"}) turns the climate OFF")
    e.add_argument("--esphome-command-timeout", type=float, default=None,
                   help="turn the climate OFF after this many seconds without a command "
                   "or a <prefix>/host/heartbeat message")

    d = p.add_argument_group("DragonBreath (--firmware dragonbreath)")
    d.add_argument("--db-token", default=None,
                   help="control token X-DragonBreath-Auth must equal (default: any non-empty)")
    d.add_argument("--db-comms-ms", type=int, default=None,
                   help="config.comms_ms at first boot (lease / watchdog; default 300000)")
    d.add_argument("--db-comms-ms-min", type=int, default=None,
                   help="lowest comms_ms accepted (device: 10000; lower only for tests)")
    d.add_argument("--db-max-streams", type=int, default=None, help="event streams (device: 2)")
    d.add_argument("--db-response-delay", type=float, default=None,
                   help="hold every API answer back this many seconds")

    p.add_argument("--fault", action="append", default=[], type=_fault_spec,
                   metavar="KIND[:SECONDS]@AT", help="schedule a fault at a start-up offset")
    return p


def options_from_args(args: argparse.Namespace) -> SimOptions:
    return SimOptions(
        host=args.host,
        port=args.port,
        firmware=args.firmware,
        time_scale=args.time_scale,
        mqtt=args.mqtt,
        frame_interval=args.frame_interval,
        mqtt_state_interval=args.mqtt_state_interval,
        ambient=args.ambient,
        hysteresis=args.hysteresis,
        device_id=args.device_id,
        mqtt_prefix=args.mqtt_prefix,
        state_file=args.state_file,
        boot_work_on=args.boot_work_on,
        boot_set_temp=args.boot_set_temp,
        boot_work_mode=args.boot_work_mode,
        max_clients=args.max_clients,
        refuse_style=args.refuse_style,
        reboot_down_time=args.reboot_down_time,
        ws_ping_interval=args.ws_ping,
        swap_sensor_codes=args.swap_sensor_codes,
        faults=list(args.fault),
        ws=WsOptions(
            snapshot_bool_work_on=args.snapshot_bool_work_on,
            cal_temp=args.cal_temp,
            periodic_state=args.periodic_state,
            ws_aliases=not args.no_ws_aliases,
            multi_key_frames=args.multi_key_frames,
            chamber_temp_only=args.chamber_temp_only,
            printer_frame_every=args.printer_frame_every,
            push_changes=args.push_changes,
        ),
        esphome=EsphomeOptions(
            default_low=args.esphome_low,
            default_high=args.esphome_high,
            fan_with_heat=args.esphome_fan_with_heat,
            host_topic=args.esphome_host_topic,
            command_timeout=args.esphome_command_timeout,
        ),
        dragonbreath=dragonbreath_options(args),
    )


async def _watch_parent(stop: asyncio.Event) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    logging.getLogger("pbsim").warning("parent process %d gone: stopping", parent)
    stop.set()


def dragonbreath_options(args: argparse.Namespace) -> DragonBreathOptions:
    """The ``--db-*`` options given; the device's defaults for the rest."""
    options = DragonBreathOptions()
    for name, value in (("token", args.db_token), ("comms_ms", args.db_comms_ms),
                        ("comms_ms_min", args.db_comms_ms_min),
                        ("max_streams", args.db_max_streams),
                        ("response_delay", args.db_response_delay)):
        if value is not None:
            setattr(options, name, value)
    return options


async def _run(options: SimOptions, exit_with_parent: bool = False) -> None:
    sim = create_simulator(options)
    await sim.start()
    print(f"panda_breath_sim ready on {sim.base_url} firmware={options.firmware}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.ensure_future(_watch_parent(stop)) if exit_with_parent else None
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        options = options_from_args(args)
        asyncio.run(_run(options, args.exit_with_parent))
    except ValueError as exc:
        print(f"panda_breath_sim: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
