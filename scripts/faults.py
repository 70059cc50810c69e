"""The fault suite: every fault against every firmware path, through the real stack.

Run through ``scripts/faults``.  For each firmware path (stock ``v1.0.0`` ...
``v1.0.4`` over WebSocket, ``stock_mqtt``, ``esphome``, ``dragonbreath``) one real stack is
started (simulator, klippy + the extra, Moonraker 0.11 + the component with
its default timings: ``silence_timeout`` 12 s, ``reconnect_max_delay`` 5 s,
``reassert_interval`` 20 s; Mosquitto for the MQTT paths; the ESPHome device
models the example firmware's host watchdog) and reused for every row; only
the part a fault breaks is restarted.  The device's truth is the simulator's
``GET /sim/state``: stock WebSocket heats at T when ``work_on`` is true,
``work_mode`` 2 and ``set_temp`` T; stock_mqtt when ``work_on`` and mode
``on`` and ``set_temp`` T; ESPHome when the climate is ``heat`` with the band
T-0.5..T+0.5.  OFF is ``work_on`` false (ESPHome: climate ``off``).
DragonBreath heats at T when its mode is ``power_on``, ``requested_c`` T and
the lease is held by a Klipper actor; OFF is mode ``off``.  Its stack runs
the component with ``lease_timeout: 10`` (the device's ``comms_ms`` 10 000,
the shortest the component allows) and a control token, and reaches the
simulator through a relay in the suite (``EventTap``) that can slip hostile
events into the device's event stream.  A latched fault is cleared between
rows the way a user does it, ``POST /server/panda_breath/clear_fault``;
the bridge itself never clears one.

One table is printed: fault, firmware path, what was expected, how the device
ended, repetitions, the median and maximum time to get there, the bound,
printer shutdowns the fault did not intend (``Transition to shutdown state``
in klippy's log), and secrets found in the logs (the simulator's Wi-Fi/AP
passwords and SSID, the DragonBreath control token, and raw frame text such
as ``{"settings":`` or ``"state_revision":``, padding, deep nesting, in what
Moonraker's and klippy's logs gained during the row; Moonraker's dump of its
own configuration at start-up is not counted).
A row is ``ok`` when every repetition reached its end state within the bound
and held it, with no unintended shutdown and nothing found in the logs;
``MISS`` otherwise (``error`` when the row itself broke).  ``n/a`` rows do not
apply to that path (the reason is printed), ``not available`` rows need a
simulator or component feature that is missing, ``not run`` rows need
something this machine does not allow, ``documented`` is an outcome that is a
known limit, not a verdict.  The exit code is 1 if any row is ``MISS`` or
``error`` or the soak misses a bound (with ``--strict`` also for ``not
available``/``not run``).

Rows (T = 45 set with SET_HEATER_TEMPERATURE before the fault unless said;
times run from the fault to the first poll, every 50 ms, that sees the end
state, which must then still hold 0.3 s later):

connection-reset
    sim ``drop`` (TCP reset of the WebSocket).  End: heating at T, the
    component counted a reconnect and resent the state.  Bound 3 s.  MQTT
    paths: n/a (the drop resets WebSocket clients; see broker-restart).
silent-socket
    sim ``silence seconds=30`` (frames stop, the socket stays open; new
    connections still get a snapshot).  End: reconnected and heating at T
    with a resend.  Bound 18.5 s: the silence is seen at most
    silence_timeout (12 s) after the fault, then the link waits for its
    close to be answered (up to 5.5 s: tornado gives up on a close after
    5 s; the simulator answers, a silent device may not), then 1 s to
    connect and resend.
    stock_mqtt: the simulator's silence covers WebSocket frames only, so the
    device hangs instead (SIGSTOP 16 s, longer than silence_timeout; its
    broker session stays open); the component must see the silence within
    13.5 s (12 s after the last state, which came up to 0.5 s before the
    hang, plus the link's 0.25 s tick) and resync after it; bound 16 + 5 s
    from the hang.  ESPHome: n/a (no silence check by design).
reboot-saved-heat
    Klipper target 0; heat saved in flash (stock WS: front-panel ``button``
    work_on=1 set_temp=50, which the device never reports; MQTT paths: the
    same values written to flash with the reboot, since a press is published
    at once), then ``reboot down=0.5``.  End: OFF after the boot.  Bound 5 s.
reboot-lost-settings
    Heating at T, ``reboot wipe=1 down=0.5`` (flash erased: stock boots off,
    ESPHome boots HEAT at its defaults).  End: heating at T after the boot,
    with a resend.  Bound 5 s.
    Both reboot rows (and DragonBreath's) also note the time from the device
    answering again (its boot) to in sync (the host's last write when the end
    state was seen, both on the simulator's clock; ``testbed.resync``), median
    and worst over the repetitions; a worst above 0.5 s is a ``MISS``.
device-change-off, device-change-target
    Heating at T, a change at the device (``button`` work_on=0, or
    set_temp=38).  End: back at T.  Bound: stock WebSocket 30 s (the device
    reports no settings changes; the component re-asserts every 20 s);
    stock_mqtt 2.5 s and ESPHome 3 s (2 s + one state interval).
hostile-KIND (json, types, oversize, binary, deep, huge_number, nonfinite, unicode,
wrong_root, giant)
    Heating at T, sim ``malformed kind=KIND`` (WebSocket frames, or payloads
    on the device's MQTT state topics), 0.3 s later ``TURN_OFF_HEATERS``.
    End: OFF within 2 s of TURN_OFF_HEATERS and the link ``connected`` again
    within 10 s.  Bound 2 s.
broker-restart
    MQTT paths: Mosquitto stopped and started on the same port.  End: link
    reconnected, heating at T, state resent.  Bound 8 s.
moonraker-stop
    SIGTERM to Moonraker.  End: OFF (the component's on_exit).  Bound 2 s.
    Moonraker is started again afterwards.
moonraker-kill, moonraker-kill-restart
    SIGKILL to Moonraker.  Stock firmware has no watchdog: the device heats
    on (watched 2 s) and the row says ``documented``, not ok.  ESPHome with
    the example firmware: OFF by the device's own watchdog (Moonraker's will
    on its status topic), bound 2 s.  Then Moonraker is restarted
    (``moonraker-kill-restart``): heating at T, the component knows Klipper's
    target, and (stock) it never wrote OFF on a guess.  Bound 15 s from the
    restart.
klippy-shutdown
    ``/printer/emergency_stop`` (M112; the one intended shutdown).  End: OFF.
    Bound 2 s.  FIRMWARE_RESTART afterwards.
klippy-restart, klippy-firmware-restart
    G-code RESTART / FIRMWARE_RESTART.  End: OFF, bound 3 s; then, once
    Klipper is ready, target 40 must reach the device within 3 s.
klippy-kill
    SIGKILL to klippy.  End: OFF (Klipper's socket closed), bound 2 s; klippy
    is started again and target 40 must reach the device.
name-resolution
    Stock WebSocket: the component's ``host`` is a name
    (``panda-breath-sim.test``) in a private /etc/hosts (this script re-runs
    itself in a mount namespace, ``unshare --mount``, and bind-mounts a copy
    over /etc/hosts; the real file is never touched).  The name is removed,
    the connection dropped, the component must report the failed resolution;
    Klipper's target changes to 40 during the 4 s outage; the name comes
    back.  End: heating at 40.  Bound 7 s (reconnect_max_delay + 2) from the
    name's return.  Without root or unshare: ``not run``.
client-cap
    Stock WebSocket: sim ``occupy clients=7 seconds=4`` fills every slot,
    ``drop``, target 40.  End: heating at 40 once a slot frees, and the
    component was refused meanwhile.  Bound 10 s (4 + reconnect_max_delay + 1).
link-failure
    Moonraker runs with ``-g``; ``POST /debug/panda_breath/fail_link`` makes
    the device's link task raise; target 40.  End: heating at 40, link
    connected, ``link_failures`` counted and ``last_link_failure`` set.
    Bound 3 s.

DragonBreath (``dragonbreath``): the device decides who controls it, so these
rows differ there or are its own:

connection-reset
    sim ``drop_streams`` (the event stream is reset).  End: heating at T with
    the same lease and revision (nothing was written to the device, no new
    session), the stream open again.  Bound 5 s: the component retries a
    stream after 1, 2, 4 ... s (from 1 s again once one lived 30 s) and
    polls the state every second meanwhile.
silent-socket
    sim ``silence_stream seconds=8`` (the stream stays open, nothing on it).
    End: the component polls instead (its stream-silence limit, half of
    silence_timeout and 6 s at most: 6 s), the device heats at T under the
    same session for the whole silence.  Bound 7 s.
reboot-lost-settings
    ``reboot wipe=1 down=0.5``: a new boot_id, revision 1, mode off, comms_ms
    back to its 300 s default.  End: heating at T under a new lease of ours.
    Bound 5 s.  The note says when comms_ms was back at 10 000.
takeover-web, takeover-button
    Heating at T, another controller acts: its web page powers on at 38 (its
    own lease), or a front-panel press switches off.  The bridge must not
    fight it: the device keeps the other controller's state for 3 s from the
    take-over with no command from the bridge, and the status shows
    ``external_control`` and ``source`` = web/button and no lease of ours.
    Then Klipper's next target (40) must take it back: heating at 40 under
    our lease.  Times run from that target; bound 2 s.
hostile-KIND
    The same kinds, as events in the device's own stream (``EventTap``: a
    ``data:`` line between two of the device's events, built from its real
    state; ``api_version`` kept where the kind allows).
moonraker-stop
    As above; the OFF must also leave no fault latched.
host-killed, host-killed-restart
    SIGKILL to Moonraker while heating.  The device heats on until its lease
    runs out and must then switch itself off: mode off, fault latched
    "controller lease expired", source ``watchdog``.  Time from the kill;
    bound comms_ms + 1 s (the device checks its lease every 0.5 s); the note
    says how much of the lease was left at the kill and how long after it
    ran out the device was off.  Then Moonraker is started again
    (``host-killed-restart``): the bridge shows the fault and leaves it
    (latched and off 2.5 s after the bridge reported it), keeps Klipper's
    target; the suite clears the fault as a user would, and T must be back
    at the device under a new lease.  Time from the clear; bound 3 s.
client-cap
    Both event-stream slots held by others (sim ``occupy_streams n=2``),
    the stream dropped, target 40.  End: heating at 40 (commands do not need
    a stream), and the component was refused a stream (503 ``busy``) once
    it tried again.  Bound 2 s.
n/a there: reboot-saved-heat (DragonBreath boots off), device-change-*
(a change at the device is another controller's: takeover-*), broker-restart,
moonraker-kill (host-killed), name-resolution (resolved once per session).

Soak (``--soak HOURS``; default 24 for a full run, 1 with ``--quick``): one
stack (``--soak-firmware``, default v1.0.3) with the simulator's clock at
``--time-scale`` (120: 24 h of device time in 12 min wall).  A warm-up round
injects each fault that stops no process once (connection reset, silence,
both reboots, both device changes, every hostile kind, client cap with 2 s of
occupied slots, link failure; on an MQTT soak firmware only those that apply;
name resolution is left out, it needs Moonraker restarted on a name), then
Moonraker's RSS (VmRSS) and open fds are taken, and every
``--soak-fault-every`` device minutes (5) a random target (0 a third of the
time) and a random fault (``--seed``) follow, the next waiting for the link to
be back.  The device is sampled every 0.2 s wall.  Bounds: RSS growth < 2 MB,
fds at the end <= start + 2, the longest time the powered device heated
(work_on or relay) while Klipper's target was 0 < 6 s wall, at the end
target 45 and then 0 reach the device, no unintended shutdown, nothing in the
logs.  Only the reboot-with-saved-heat fault makes such heat: the stock
device resumes heating from flash at boot and the component can switch it off
only once it has reconnected.  After a burst of faults no connection lived
the 2 s that resets the component's backoff, so the next attempt may be up
to reconnect_max_delay (5 s) away; hence 5 s + 1 s (connect, snapshot,
sampling).  Each episode is reported with the fault before it.  It is printed as
the ``soak`` row (its times are the uncommanded-heat episodes) plus details.

Bad Wi-Fi (``testbed.wifisuite``): on every path the device's link runs
through ``scripts/impair.py`` (stock and DragonBreath: between the component
and the device; MQTT: between the device and the broker), the component at
its default timings (DragonBreath with ``lease_timeout: 30``, which outlives a
20 s stall).  Klipper changes its target every 6 s (a third of them 0) while
the proxy plays a profile:

wifi-mild, wifi-bad, wifi-awful
    80 +- 60 ms and a 2 s stall every 30 s (60 s); 250 +- 200 ms and 5 s every
    20 s (60 s); 500 +- 400 ms, 8 s every 15 s and a 20 s stall (at 12 s;
    every 2 min in the soak) (75 s).  Each target must reach the device
    within 1 s + the profile's longest one-way delay + every stall it met (a
    target replaced before that and never reached is ``superseded``); after
    the run the link clears and the last target must arrive.  Reported: the
    median and worst latency, the component's reconnects, the most bridge
    sessions open at the device (WebSocket clients or event streams, sampled
    every 0.1 s) and the longest time more than one was open (the
    simulator's exact count; bound 0.5 s: when a stall ends, a connection
    the bridge gave up on arrives with its close and the device opens and
    ends it at once), wrong-target heating time, shutdowns.  The repetitions
    column counts targets.
wifi-soak
    ``--wifi-soak MINUTES`` (30; 0.75 with ``--quick``) of awful on
    ``--wifi-soak-firmware`` (v1.0.3), same checks.  Wall minutes: a stall is
    measured against the component's real timeouts and cannot be compressed.
    ``--wifi-silence-timeout S`` runs the bad Wi-Fi rows and this soak with
    another ``silence_timeout`` (to measure the silence rule).

``--quick`` (CI, about 4 minutes on 2 cores): v1.0.3, stock_mqtt, esphome and
dragonbreath, the rows in QUICK_FAULTS (every fault kind once somewhere, no
30 s silence and no wait for the 20 s re-assert; on dragonbreath the stream
reset, host-killed and the take-overs), one repetition, a 1 h soak whose
warm-up is a burst of every fault kind (the soak runs on the other paths
only), and a 45 s Wi-Fi soak (an 8 s and a 20 s stall); no bad Wi-Fi rows.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from testbed.faultsuite import (
    FAULTS,
    FIRMWARES,
    NAMESPACE_ENV,
    ROW_NAMES,
    Harness,
    Rep,
    Row,
    SoakResult,
    dump_json,
    namespace_command,
    private_hosts,
    run_fault,
    run_soak,
)
from testbed.wifisuite import (
    PROFILES,
    ROW_SECONDS,
    WifiRun,
    describe,
    run_wifi,
    wifi_firmware_note,
    wifi_harness,
)

QUICK_FIRMWARES = ("v1.0.3", "stock_mqtt", "esphome", "dragonbreath")
#: The CI subset: every fault kind once somewhere, each path's own risks on
#: that path, nothing that waits for a 30 s silence or the 20 s re-assert.
QUICK_FAULTS: dict[str, tuple[str, ...]] = {
    "v1.0.3": (
        "connection-reset", "reboot-saved-heat", "reboot-lost-settings", "hostile-*",
        "moonraker-stop", "moonraker-kill", "klippy-shutdown", "klippy-restart", "klippy-kill",
        "name-resolution", "client-cap", "link-failure",
    ),
    "stock_mqtt": (
        "reboot-saved-heat", "device-change-off", "device-change-target", "hostile-json",
        "hostile-giant", "broker-restart", "moonraker-kill", "klippy-shutdown", "link-failure",
    ),
    "esphome": (
        "reboot-saved-heat", "reboot-lost-settings", "device-change-off",
        "device-change-target", "hostile-nonfinite", "hostile-giant", "broker-restart",
        "moonraker-stop", "moonraker-kill", "klippy-firmware-restart", "link-failure",
    ),
    # The host lease and the arbitration are what is new on this path; the rest
    # of its rows share the component's code with the paths above.
    "dragonbreath": ("connection-reset", "host-killed", "takeover-web"),
}
QUICK_SOAK_HOURS = 1.0
WIFI_ROWS = [f"wifi-{p}" for p in PROFILES]
#: The Wi-Fi soak: wall minutes of "awful" (its stalls cannot be compressed:
#: they are measured against the bridge's real timeouts).
WIFI_SOAK_MINUTES, QUICK_WIFI_SOAK_MINUTES = 30.0, 0.75
SOAK_FIRMWARES = tuple(fw for fw in FIRMWARES if fw != "dragonbreath")


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def select_faults(patterns: list[str] | None) -> list[str]:
    if not patterns:
        return [f.name for f in FAULTS]
    chosen = []
    for fault in FAULTS:
        if any(fnmatch.fnmatch(row, p) for p in patterns for row in fault.rows):
            chosen.append(fault.name)
    unknown = [p for p in patterns
               if not any(fnmatch.fnmatch(r, p) for r in ROW_NAMES + WIFI_ROWS)]
    if unknown:
        raise SystemExit(f"unknown fault(s) {unknown}; rows are: {', '.join(ROW_NAMES)}")
    return chosen


def plan(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """[(firmware, [fault names])] in run order."""
    if args.quick:
        firmwares = args.firmware or list(QUICK_FIRMWARES)
        default = QUICK_FAULTS["v1.0.3"]
        return [(fw, select_faults(args.fault or list(QUICK_FAULTS.get(fw, default))))
                for fw in firmwares]
    firmwares = args.firmware or list(FIRMWARES)
    return [(fw, select_faults(args.fault)) for fw in firmwares]


def fmt_time(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(rows: list[Row], soak: SoakResult | None) -> tuple[str, list[str]]:
    """The one table, and its numbered notes."""
    notes: list[str] = []

    def note_ref(text: str) -> str:
        if not text:
            return ""
        if text not in notes:
            notes.append(text)
        return f" [{notes.index(text) + 1}]"

    header = (f"{'fault':<24} {'firmware':<12} {'expect':<30} {'ended':<30} {'n':>2} "
              f"{'median s':>8} {'max s':>8} {'bound s':>7} {'shutdn':>6} {'secrets':>7}  result")
    lines = [header, "-" * len(header)]
    for r in rows:
        bound = "-" if r.bound is None else f"{r.bound:g}"
        lines.append(
            f"{r.fault:<24} {r.firmware:<12} {r.expect[:30]:<30} {r.ended[:30]:<30} "
            f"{len(r.reps):>2} {fmt_time(r.median):>8} {fmt_time(r.max):>8} {bound:>7} "
            f"{r.shutdowns:>6} {r.secrets:>7}  {r.status}{note_ref(r.reason)}"
        )
    if soak is not None:
        runs = soak.heat_runs
        median = sorted(runs)[len(runs) // 2] if runs else None
        problems = [k for k, ok in soak.checks().items() if not ok]
        ended = "converged" if soak.final_ok else "not converged"
        lines.append(
            f"{'soak ' + format(soak.hours, 'g') + ' h':<24} {soak.firmware:<12} "
            f"{'bounded, follows Klipper':<30} {ended:<30} {len(runs):>2} "
            f"{fmt_time(median):>8} {fmt_time(soak.longest_heat if runs else None):>8} "
            f"{soak.heat_bound_s:>7g} {len(soak.shutdowns):>6} {sum(soak.secrets.values()):>7}  "
            f"{'ok' if soak.ok else 'MISS'}"
            f"{note_ref('missed: ' + ', '.join(problems) if problems else '')}"
        )
    return "\n".join(lines), notes


def soak_details(soak: SoakResult) -> str:
    faults = sum(soak.faults.values())
    rss0, rss1 = soak.rss_kb
    return "\n".join([
        f"soak: {soak.hours:g} h of device time on {soak.firmware} at time scale "
        f"{soak.time_scale:g} ({soak.wall_s:.0f} s wall, seed {soak.seed}): {faults} faults, "
        f"{soak.targets} targets, {soak.settle_timeouts} settle timeouts",
        f"  Moonraker RSS {rss0} kB -> {rss1} kB ({rss1 - rss0:+d} kB; bound < "
        f"{soak.rss_bound_kb} kB growth; {soak.rss_at_boot_kb} kB at start-up, before warm-up)",
        f"  Moonraker open fds {soak.fds[0]} -> {soak.fds[1]} (bound: end <= start + 2)",
        f"  longest heat while Klipper's target was 0: {soak.longest_heat:.2f} s wall "
        f"({soak.longest_heat * soak.time_scale / 60:.1f} device min; bound < "
        f"{soak.heat_bound_s:g} s wall) over {len(soak.heat_runs)} episode(s)",
        *([f"  longest episode: {max(soak.heat_episodes, key=lambda e: e['seconds'])}"]
          if soak.heat_episodes else []),
        f"  faults: {', '.join(f'{k} x{v}' for k, v in sorted(soak.faults.items()))}",
        *([f"  final: {soak.final_note}"] if soak.final_note else []),
        *([f"  shutdowns: {soak.shutdowns}"] if soak.shutdowns else []),
        *([f"  secrets: {soak.secrets}"] if soak.secrets else []),
        *[f"  error: {e}" for e in soak.errors],
    ])


def wifi_profiles(args: argparse.Namespace) -> list[str]:
    """The bad Wi-Fi rows to run on every path (none with --quick: its soak covers them)."""
    if args.quick and not args.fault:
        return []
    patterns = args.fault or ["*"]
    return [p for p in PROFILES if any(fnmatch.fnmatch(f"wifi-{p}", pat) for pat in patterns)]


def wifi_row(run: WifiRun, name: str | None = None) -> Row:
    """One table row from a bad Wi-Fi run: its targets are the repetitions."""
    reps = [Rep(t.verdict, t.verdict in ("ok", "superseded"), t.latency)
            for t in run.targets]
    if reps:
        reps[0].shutdowns, reps[0].secrets = len(run.shutdowns), run.secrets
    status = "error" if run.errors else ("ok" if run.ok else "MISS")
    sessions = "-" if run.sessions_max is None else (
        f"{run.sessions_max} (two for {run.several_s or 0:.2f} s at most)")
    reason = (f"{run.profile}: reconnects {run.reconnects}, most bridge sessions {sessions}, "
              f"wrong-target heat {run.wrong_heat_s:.1f} s, late {run.count('late')}, "
              f"lost {run.count('lost')}" + (f"; {run.errors[0]}" if run.errors else ""))
    return Row(name or f"wifi-{run.profile}", run.firmware, "each target <= stall met + 1 s",
               None, status, reps, reason)


def run_wifi_rows(root: Path, firmware: str, profiles: list[str], seed: int,
                  runs: list[WifiRun], silence: float | None = None) -> list[Row]:
    if not profiles:
        return []
    harness = wifi_harness(root, firmware, progress, silence)
    progress(f"[{firmware}] bad Wi-Fi rows ({wifi_firmware_note(firmware)})")
    try:
        for i, profile in enumerate(profiles):
            runs.append(run_wifi(harness, profile, ROW_SECONDS[profile], seed + i,
                                 progress=progress))
    finally:
        harness.stop()
    return [wifi_row(run) for run in runs[-len(profiles):]]


def run_wifi_soak(root: Path, args: argparse.Namespace, runs: list[WifiRun]) -> list[Row]:
    """Minutes of "awful" on one path; its 20 s stall every 2 min (the first after 12 s)."""
    if args.wifi_soak <= 0:
        return []
    seconds = args.wifi_soak * 60.0
    progress(f"[wifi soak] {args.wifi_soak:g} min of awful on {args.wifi_soak_firmware}")
    harness = wifi_harness(root / "soak", args.wifi_soak_firmware, progress,
                           args.wifi_silence_timeout)
    try:
        run = run_wifi(harness, "awful", seconds, args.seed, first_stall=3.0 if seconds < 60
                       else None, progress=progress)
    finally:
        harness.stop()
    runs.append(run)
    return [wifi_row(run, f"wifi-soak {args.wifi_soak:g} min")]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/faults", description=__doc__.split("\n\n")[0],
        epilog="Rows and bounds: see the docstring of scripts/faults.py. Rows: "
        + ", ".join(ROW_NAMES),
    )
    parser.add_argument("--firmware", action="append", choices=FIRMWARES,
                        help="firmware path (repeatable; default all)")
    parser.add_argument("--fault", action="append", metavar="ROW",
                        help="row name or glob such as 'hostile-*' (repeatable; default all)")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per row (3)")
    parser.add_argument("--quick", action="store_true",
                        help="CI subset: v1.0.3, stock_mqtt, esphome, dragonbreath; cheap rows; "
                        "1 h soak")
    parser.add_argument("--soak", type=float, default=None, metavar="HOURS",
                        help="device hours of soak (default 24; 1 with --quick; 0: none)")
    parser.add_argument("--soak-firmware", default="v1.0.3", choices=SOAK_FIRMWARES,
                        help="firmware path of the soak (v1.0.3; not dragonbreath: its "
                        "faults are rows, the soak's injectors are the other paths')")
    parser.add_argument("--time-scale", type=float, default=120.0,
                        help="simulator clock speed during the soak (120)")
    parser.add_argument("--soak-fault-every", type=float, default=5.0, metavar="MINUTES",
                        help="device minutes between soak faults (5)")
    parser.add_argument("--seed", type=int, default=1, help="soak random seed (1)")
    parser.add_argument("--wifi-soak", type=float, default=None, metavar="MINUTES",
                        help=f"wall minutes of the awful Wi-Fi soak (default "
                        f"{WIFI_SOAK_MINUTES:g}; {QUICK_WIFI_SOAK_MINUTES:g} with --quick; "
                        "0: none)")
    parser.add_argument("--wifi-soak-firmware", default="v1.0.3", choices=FIRMWARES,
                        help="firmware path of the Wi-Fi soak (v1.0.3)")
    parser.add_argument("--wifi-silence-timeout", type=float, default=None, metavar="S",
                        help="the component's silence_timeout in the bad Wi-Fi rows and soak "
                        "(default: the component's own), to measure the silence rule")
    parser.add_argument("--json", type=Path, metavar="PATH", help="save the results as JSON")
    parser.add_argument("--workdir", type=Path,
                        help="keep the stacks' logs here (default: a temporary directory)")
    parser.add_argument("--strict", action="store_true",
                        help="rows that are 'not available' or 'not run' also fail")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.soak is None:
        args.soak = QUICK_SOAK_HOURS if args.quick else 24.0
    if args.wifi_soak is None:
        args.wifi_soak = QUICK_WIFI_SOAK_MINUTES if args.quick else WIFI_SOAK_MINUTES
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def needs_names(work: list[tuple[str, list[str]]]) -> bool:
    return any(fw.startswith("v") and "name-resolution" in faults for fw, faults in work)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    work = plan(args)
    if needs_names(work) and not os.environ.get(NAMESPACE_ENV):
        command = namespace_command([sys.executable, os.path.abspath(__file__), *argv])
        if command is not None:
            os.environ[NAMESPACE_ENV] = "1"
            os.execvp(command[0], command)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pb-faults-") as tmp:
        root = args.workdir.resolve() if args.workdir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        hosts, names_problem = (None, None)
        if needs_names(work):
            hosts, names_problem = private_hosts(root)
        rows: list[Row] = []
        wifi_runs: list[WifiRun] = []
        for firmware, faults in work:
            harness = Harness(root, firmware, hosts, progress)
            progress(f"[{firmware}] starting the stack")
            try:
                for fault in FAULTS:
                    if fault.name in faults:
                        rows += run_fault(harness, fault, args.repeat, names_problem, progress)
            finally:
                harness.stop()
            rows += run_wifi_rows(root, firmware, wifi_profiles(args), args.seed, wifi_runs,
                                  args.wifi_silence_timeout)
        rows += run_wifi_soak(root, args, wifi_runs)
        soak = None
        if args.soak > 0:
            progress(f"[soak] {args.soak:g} h on {args.soak_firmware} at x{args.time_scale:g}")
            soak = run_soak(root, args.soak_firmware, args.soak, args.time_scale, args.seed,
                            args.soak_fault_every, progress)
    wall = time.monotonic() - started
    text, notes = table(rows, soak)
    print(text)
    for i, note in enumerate(notes, 1):
        print(f"[{i}] {note}")
    if soak is not None:
        print(soak_details(soak))
    for run in wifi_runs:
        print(f"bad Wi-Fi {run.profile} ({run.seconds:g} s) on {run.firmware}: {describe(run)}")
    failing = [r for r in rows if r.failed or (
        args.strict and r.status in ("not available", "not run"))]
    ok = not failing and (soak is None or soak.ok)
    print(f"{len(rows)} rows, {sum(r.status == 'ok' for r in rows)} ok, {len(failing)} failing"
          f"{'' if soak is None else ', soak ' + ('ok' if soak.ok else 'MISS')}; "
          f"wall time {wall:.0f} s")
    if args.json:
        data: dict[str, Any] = {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "wall_s": wall, "ok": ok, "rows": [r.to_json() for r in rows],
            "soak": soak.to_json() if soak is not None else None,
            "wifi": [run.to_json() for run in wifi_runs],
        }
        dump_json(args.json, data)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
