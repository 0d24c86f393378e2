"""The MightyOhm Geiger counter: one line a second on its serial header.

The firmware writes `CPS, 1, CPM, 38, uSv/hr, 0.21, SLOW`, where the mode says how CPM was
averaged: SLOW (a 60 s window), FAST (a 5 s window, scaled) or INST (this second, scaled).
"""

from __future__ import annotations

import math
from typing import Any

from beam_agent.drivers.serial_port import SerialDriver
from beam_agent.reading import Sample

MODES = ("SLOW", "FAST", "INST")
LABELS = ("CPS", "CPM", "USV/HR")


def parse_mightyohm(line: str) -> dict[str, Any]:
    """`CPS, 1, CPM, 38, uSv/hr, 0.21, SLOW` -> the contract's payload; ValueError otherwise.

    Whitespace around fields and the case of labels and mode do not matter; anything else
    (missing or extra fields, wrong labels, negative or non-finite numbers) does.
    """
    fields = [field.strip() for field in line.strip().split(",")]
    if len(fields) != 7:
        raise ValueError(f"expected 7 comma-separated fields, got {len(fields)}")
    labels = (fields[0].upper(), fields[2].upper(), fields[4].upper())
    if labels != LABELS:
        raise ValueError(f"expected labels CPS, CPM, uSv/hr, got {', '.join(labels)}")
    cps = _count(fields[1], "CPS")
    cpm = _count(fields[3], "CPM")
    try:
        usv_per_hr = float(fields[5])
    except ValueError:
        raise ValueError(f"uSv/hr {fields[5]!r} is not a number") from None
    if not math.isfinite(usv_per_hr) or usv_per_hr < 0:
        raise ValueError(f"uSv/hr {fields[5]!r} is not a finite, non-negative number")
    mode = fields[6].upper()
    if mode not in MODES:
        raise ValueError(f"mode {fields[6]!r} is not one of {', '.join(MODES)}")
    return {"cps": cps, "cpm": cpm, "usv_per_hr": usv_per_hr, "mode": mode}


def _count(text: str, label: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"{label} {text!r} is not a non-negative integer")
    return int(text)


class MightyOhmDriver(SerialDriver):
    type_name = "mightyohm"
    description = (
        "MightyOhm Geiger counter on a serial port: cps, cpm, usv_per_hr and mode, "
        "one reading per line it prints (about one a second)."
    )

    def parse_line(self, line: str) -> Sample:
        return self.sample(parse_mightyohm(line))
