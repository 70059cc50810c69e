"""The printer.cfg and moonraker.conf fragments that tests, the demo and the benchmark share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# What real Moonraker wants from Klipper (virtual_sdcard, pause_resume,
# display_status) and a toolhead with no kinematics: no MCU-backed objects.
BASE_PRINTER_CFG = """\
[mcu]
serial: /dev/null

[printer]
kinematics: none
max_velocity: 100
max_accel: 100

[virtual_sdcard]
path: {gcodes}

[pause_resume]

[display_status]
"""

HEATER_SECTION = """\
[heater_panda_breath {heater}]
min_temp: 0
{max_temp}stale_timeout: {stale_timeout}
"""

#: The opt-in KlipperScreen setup: a stock [heater_generic] fed by the extra's
#: sensor type and pin chip (registered by the bare section, which comes first),
#: with a verify_heater tuned for a chamber (the extra requires one).
GENERIC_HEATER_SECTION = """\
[heater_panda_breath]

[heater_generic {heater}]
sensor_type: panda_breath
heater_pin: panda_breath:{heater}
control: watermark
min_temp: 0
max_temp: {max_temp}
stale_timeout: {stale_timeout}

[verify_heater {heater}]
check_gain_time: 480
heating_gain: 1
hysteresis: 10
max_error: 600
"""

#: ``printer_cfg(setup=...)``: which printer.cfg section carries the heater.
SETUPS = ("heater_panda_breath", "heater_generic")
#: The names the scripts' ``--setup`` took before (old commands still run).
OLD_SETUP_NAMES = {"default": "heater_panda_breath", "klipperscreen": "heater_generic"}


def setup_name(name: str) -> str:
    """``--setup`` argument type: a setup's name, an old name taken for it."""
    return OLD_SETUP_NAMES.get(name, name)


def base_printer_cfg(gcodes: Path, extra: str = "") -> str:
    """The printer.cfg every test klippy runs, plus ``extra`` sections."""
    gcodes.mkdir(parents=True, exist_ok=True)
    return BASE_PRINTER_CFG.format(gcodes=gcodes) + ("\n" + extra if extra else "")


def printer_cfg(
    gcodes: Path, heater: str = "chamber", max_temp: float | None = None,
    stale_timeout: float = 30.0, extra: str = "", setup: str = "heater_panda_breath",
) -> str:
    """The base printer.cfg with the chamber heater.

    ``setup="heater_panda_breath"``: one ``[heater_panda_breath NAME]`` section
    (Klipper object ``heater_panda_breath NAME``). ``setup="heater_generic"``: the
    ``[heater_panda_breath]`` + ``[heater_generic NAME]`` pair (Klipper object
    ``heater_generic NAME``; ``max_temp`` defaults to 80 as in the default setup).
    """
    if setup not in SETUPS:
        raise ValueError(f"setup must be one of {', '.join(SETUPS)}, not {setup!r}")
    if setup == "heater_generic":
        section = GENERIC_HEATER_SECTION.format(
            heater=heater, stale_timeout=stale_timeout,
            max_temp=80.0 if max_temp is None else max_temp,
        )
        return base_printer_cfg(gcodes, section + ("\n" + extra if extra else ""))
    section = HEATER_SECTION.format(
        heater=heater, stale_timeout=stale_timeout,
        max_temp="" if max_temp is None else f"max_temp: {max_temp}\n",
    )
    return base_printer_cfg(gcodes, section + ("\n" + extra if extra else ""))


def panda_section(
    port: int, name: str | None = None, host: str = "127.0.0.1", **options: Any
) -> str:
    """A [panda_breath] section for a local simulator, with quick reconnect timings."""
    values: dict[str, Any] = {
        "firmware": "stock",
        "host": host,
        "port": port,
        "heater": "chamber",
        "silence_timeout": 3,
        "reconnect_max_delay": 1,
    }
    values.update(options)
    header = "[panda_breath]" if name is None else f"[panda_breath {name}]"
    body = "\n".join(f"{key}: {value}" for key, value in values.items() if value is not None)
    return f"{header}\n{body}\n"
