"""Virtual sensor: deterministic signals for labs, demos, end-to-end tests and benchmarks.

No hardware, no I/O, a few arithmetic operations per read, so it can run at 100 Hz and
twenty at a time. What each signal is a function of, so that tests can predict it:

- ``counter``: the number of reads so far (1, 2, 3, ...); ``amplitude`` and ``offset``
  do not apply, so a gap in the stored numbers is a lost reading.
- ``random_walk``: the sequence of reads. Starting at ``offset``, each read adds a step
  drawn uniformly from [-amplitude, +amplitude] by ``random.Random(seed)``: the same seed
  and the same number of reads give the same values, run after run.
- ``sine``: the sample's own timestamp (seconds since the Unix epoch), not the read count,
  so a chart shows a clean sine whatever the scheduling jitter and every node of a lab
  agrees on the phase: ``offset + amplitude * sin(2 * pi * t / period_s)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from beam_agent.drivers.base import Driver, Option, OptionError
from beam_agent.reading import Sample, utc_now

SIGNALS = ("sine", "random_walk", "counter")


def sine_value(epoch_seconds: float, amplitude: float, period_s: float, offset: float) -> float:
    """The sine signal at a moment; a plain function so tests can recompute it exactly."""
    return offset + amplitude * math.sin(2.0 * math.pi * epoch_seconds / period_s)


class VirtualDriver(Driver):
    type_name = "virtual"
    description = "Deterministic test signal (sine, random_walk or counter); touches no hardware."
    options = (
        Option("signal", str, "sine", help="which signal to produce", choices=SIGNALS),
        Option("seed", int, 0, help="random_walk: seed of its random.Random"),
        Option(
            "amplitude",
            float,
            1.0,
            minimum=0.0,
            help="sine: peak deviation from offset; random_walk: largest step per read",
        ),
        Option(
            "period_s",
            float,
            60.0,
            minimum=0.001,
            help="sine: seconds per cycle, measured on the sample timestamps",
        ),
        Option("offset", float, 0.0, help="sine: centre line; random_walk: starting value"),
        Option("field", str, "value", help="payload key the value is reported under"),
    )

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(self.validate_options(options))
        self.signal: str = self.config["signal"]
        self.amplitude: float = self.config["amplitude"]
        self.period_s: float = self.config["period_s"]
        self.offset: float = self.config["offset"]
        self.field: str = self.config["field"]
        self.reads = 0
        self.level = self.offset
        self.rng = random.Random(self.config["seed"])

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        validated = super().validate_options(raw)
        if not validated["field"].strip():
            raise OptionError("field", "must not be empty")
        return validated

    def read(self) -> list[Sample]:
        self.reads += 1
        now = utc_now()
        value: float
        if self.signal == "counter":
            value = self.reads
        elif self.signal == "random_walk":
            self.level += self.rng.uniform(-self.amplitude, self.amplitude)
            value = self.level
        else:
            value = sine_value(now.timestamp(), self.amplitude, self.period_s, self.offset)
        return [Sample(self.type_name, {self.field: value}, now)]
