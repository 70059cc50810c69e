"""Live notices through Moonraker's API alone (issue 20): announcements and console lines.

Real Moonraker + component, real klippy + extra, the simulator.  Mainsail and
Fluidd show ``server.announcements.list`` in their bell and Moonraker's G-code
store in their console; ``tests_ui`` checks the real pages.
"""

from __future__ import annotations

import time
from typing import Any

from testbed import wait_until
from testbed.moonraker import MoonrakerError
from testbed.stack import Stack

OFFLINE = "panda_breath_panda_breath_offline"
FAULT = "panda_breath_panda_breath_fault"
LINK = "panda_breath_panda_breath_link"


def ours(stack: Stack) -> list[dict[str, Any]]:
    """This component's announcements, dismissed ones too."""
    entries = stack.moonraker.get("/server/announcements/list?include_dismissed=true")["entries"]
    return [e for e in entries if str(e.get("feed", "")).startswith("panda_breath_")]


def feeds(stack: Stack) -> list[str]:
    return sorted(e["feed"] for e in ours(stack))


def console(stack: Stack) -> list[str]:
    store = stack.moonraker.get("/server/gcode_store?count=1000")["gcode_store"]
    return [line["message"] for line in store]


def test_a_flapping_device_is_one_entry_and_none_once_it_is_steady(make_stack) -> None:
    stack: Stack = make_stack(panda_options={"offline_warning_delay": 5,
                                             "reconnect_max_delay": 0.5})
    stack.wait_device(lambda d: d["link"] == "connected", 5.0)
    seen: list[list[str]] = []
    ids: set[str] = set()

    def sample() -> None:
        entries = ours(stack)
        seen.append(sorted(e["feed"] for e in entries))
        ids.update(e["entry_id"] for e in entries)

    # The first drop lasts past offline_warning_delay: the notice appears.
    stack.sim.control("refuse", seconds=6)
    stack.sim.control("drop")
    began = time.monotonic()
    entry = wait_until(lambda: (sample(), ours(stack))[1], 8.0, 0.1, what="the outage notice")
    assert [e["feed"] for e in entry] == [OFFLINE]
    assert entry[0]["priority"] == "normal"  # Klipper's target is 0
    assert "out of reach since" in entry[0]["description"]
    drops = 1
    while drops < 10:  # nine more drops: back for a second, out for two
        wait_until(lambda: (sample(), stack.device()["link"] == "connected")[1], 5.0, 0.1,
                   what="the device back")
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            sample()
            time.sleep(0.1)
        stack.sim.control("refuse", seconds=2)
        stack.sim.control("drop")
        drops += 1
    wait_until(lambda: (sample(), stack.device()["link"] == "connected")[1], 5.0, 0.1,
               what="the device back for good")
    flapped = time.monotonic() - began
    assert flapped < 60.0, f"ten drops took {flapped:.0f} s"
    # Never two entries for the one condition; after the first drop that
    # ended, every sample shows the one entry.
    assert all(s in ([], [OFFLINE]) for s in seen), seen
    shown = "".join("1" if s else "0" for s in seen)
    first = shown.index("1")
    back = shown.index("10", first) + 1  # the first outage ended
    again = shown.index("1", back)
    assert set(shown[again:]) == {"1"}, shown
    assert len(ids) == 2, ids  # the first outage, then the bout of drops
    # Steady for 30 s (FLAP_QUIET_S, above offline_warning_delay): gone.
    wait_until(lambda: not ours(stack), 34.0, 0.2, what="no entry once the device is steady")
    lines = console(stack)
    starts = [line for line in lines if line.startswith("!! ") and "out of reach" in line]
    ends = [line for line in lines if "reachable again" in line]
    assert len(starts) == 2 and len(ends) == 2, lines
    assert not ends[0].startswith("!!")


def test_leftover_entries_are_cleared_when_moonraker_restarts(make_stack) -> None:
    stack: Stack = make_stack(panda_options={"offline_warning_delay": 5})
    stack.set_target(40)
    stack.sim.control("refuse", seconds=300)
    stack.sim.control("drop")
    entry = wait_until(lambda: ours(stack), 9.0, 0.1, what="the outage notice")
    assert [e["feed"] for e in entry] == [OFFLINE]
    assert entry[0]["priority"] == "high"  # Klipper's target 40 cannot reach the device
    assert "target 40" in entry[0]["description"]
    stack.moonraker.stop()
    stack.sim.control("refuse", seconds=0)
    stack.moonraker.start()
    stack.moonraker.wait_component_ready()
    stack.wait_device(lambda d: d["link"] == "connected", 5.0)
    time.sleep(1.0)
    assert ours(stack) == []


def test_a_latched_fault_is_a_high_entry_until_it_is_cleared(make_stack) -> None:
    stack: Stack = make_stack("dragonbreath", panda_options={"offline_warning_delay": 5})
    stack.wait_device(lambda d: d["link"] == "connected", 5.0)
    stack.sim.control("fault")
    entry = wait_until(lambda: ours(stack), 3.0, 0.05, what="the fault notice")
    assert [e["feed"] for e in entry] == [FAULT]
    assert entry[0]["priority"] == "high"
    assert "PANDA_BREATH_CLEAR_FAULT" in entry[0]["description"]
    assert any(line.startswith("!! ") and "fault" in line for line in console(stack))
    stack.wait_device(lambda d: d["faults"], 3.0, what="the fault in the status API")
    time.sleep(1.0)  # the device's revision settles (a clear names the one it saw)
    stack.moonraker.post("/server/panda_breath/clear_fault")
    wait_until(lambda: not ours(stack), 3.0, 0.05, what="no entry once the fault is cleared")
    assert any(line.endswith("Panda Breath fault cleared") for line in console(stack))


def test_a_failed_link_task_is_an_entry_until_the_restarted_link_runs(make_stack) -> None:
    stack: Stack = make_stack(moonraker_debug=True)
    stack.wait_device(lambda d: d["link"] == "connected", 5.0)
    stack.moonraker.post("/debug/panda_breath/fail_link")
    entry = wait_until(lambda: ours(stack), 3.0, 0.05, what="the link notice")
    assert [e["feed"] for e in entry] == [LINK]
    assert "was restarted" in entry[0]["description"]
    stack.wait_device(lambda d: d["link"] == "connected", 5.0)
    wait_until(lambda: not ours(stack), 14.0, 0.2, what="no entry once the link runs again")
    assert any("link running again" in line for line in console(stack))


def test_drying_switched_on_the_moment_the_status_says_connected_succeeds(make_stack) -> None:
    """After a Moonraker restart the status says ``connected`` while the device's first
    state (and Klipper's target) is on its way; a request then waits for it instead
    of a 409 "not reachable": 20 restarts of 20."""
    stack: Stack = make_stack()
    device = "Panda Breath drying"
    outcomes = []
    for _ in range(20):
        stack.moonraker.stop()
        stack.moonraker.start()
        wait_until(lambda: stack.device()["link"] == "connected", 10.0, 0.02,
                   what="the status saying connected")
        try:  # at once, as a person who watched for it
            stack.moonraker.power(device, "on")
            outcomes.append("ok")
        except Exception as exc:  # noqa: BLE001 - every refusal counts
            outcomes.append(str(exc))
            continue
        stack.wait_sim(lambda s: s["mode"] == "drying", 5.0, what="the device drying")
        stack.moonraker.power(device, "off")
        stack.wait_sim(lambda s: s["work_on"] is False, 5.0, what="the device off")
    assert outcomes == ["ok"] * 20, outcomes


def test_every_refusal_names_its_reason(make_stack) -> None:
    stack: Stack = make_stack()
    stack.wait_device(lambda d: d["link"] == "connected", 5.0)
    try:
        stack.moonraker.post("/server/panda_breath/clear_fault")
        raise AssertionError("a stock device has no fault to clear")
    except MoonrakerError as err:
        assert err.status == 409 and "this firmware clears its faults by itself" in str(err)
    stack.sim.control("refuse", seconds=30)
    stack.sim.control("drop")
    stack.wait_device(lambda d: d["link"] != "connected", 3.0, what="the device down")
    try:
        stack.moonraker.power("Panda Breath drying", "on")
        raise AssertionError("drying started on an unreachable device")
    except MoonrakerError as err:
        # Since when and why, not a bare "not reachable".
        assert err.status == 409, err
        assert "the device is not reachable since " in str(err) and "(" in str(err), err
