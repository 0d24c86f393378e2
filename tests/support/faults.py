"""The fault tests' accounting: exact, by seq (the identity of a reading), of what an agent
produced against what the receiver stored, and each fault's one-line result.

Every fault test prints one `FAULT <name>: key=value ...` line with its counts before it
asserts; tests/faults/conftest.py repeats the lines at the end of the pytest run ("fault
results") so that CI logs show the counts whether the tests passed or not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from tests.support.agent import AgentProcess
from tests.support.receiver import ReceiverProcess

FAULT_RESULTS: list[str] = []


def env_number(name: str, default: float) -> float:
    """A test parameter that CI or an operator may override from the environment."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise pytest.UsageError(f"{name}={text!r} is not a number") from None
    if value <= 0:
        raise pytest.UsageError(f"{name}={text!r} must be positive")
    return value


def report(name: str, **counts: object) -> str:
    """Print and remember a fault's one-line result (asserted on by the caller after)."""
    line = f"FAULT {name}: " + " ".join(f"{key}={value}" for key, value in counts.items())
    FAULT_RESULTS.append(line)
    print(line, flush=True)
    return line


@dataclass(frozen=True)
class Delivery:
    """What the agent produced (seqs 1..produced) against what the receiver stored."""

    produced: int
    stored: list[int]  # seqs in the receiver's stored order

    @classmethod
    def of(cls, agent: AgentProcess, receiver: ReceiverProcess) -> Delivery:
        produced = agent.status()["counters"]["last_seq"]
        return cls(produced, [reading["seq"] for reading in receiver.readings()])

    @property
    def missing(self) -> list[int]:
        return sorted(set(range(1, self.produced + 1)) - set(self.stored))

    @property
    def duplicates(self) -> int:
        return len(self.stored) - len(set(self.stored))

    @property
    def unknown(self) -> int:
        """Stored seqs the agent never produced (would mean a reused or invented seq)."""
        return sum(1 for seq in set(self.stored) if not 1 <= seq <= self.produced)

    @property
    def in_order(self) -> bool:
        return all(a < b for a, b in zip(self.stored, self.stored[1:]))


def runs(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted seqs as (first, last) runs of consecutive numbers."""
    result: list[tuple[int, int]] = []
    for seq in seqs:
        if result and seq == result[-1][1] + 1:
            result[-1] = (result[-1][0], seq)
        else:
            result.append((seq, seq))
    return result
