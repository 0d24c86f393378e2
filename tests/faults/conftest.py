"""What the fault tests share: a real `beam-receiver serve` that can be killed and restarted
on its port, real `beam-agent run` processes on one state directory (tests.support.receiver
and tests.support.agent), and the fault results repeated at the end of the run
(tests.support.faults)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import AgentProcess
from tests.support.constants import DEVICE
from tests.support.faults import FAULT_RESULTS
from tests.support.receiver import ReceiverProcess, agent_nodes, configure_receiver


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FAULT_RESULTS:
        terminalreporter.section("fault results")
        for line in FAULT_RESULTS:
            terminalreporter.write_line(line)


@pytest.fixture
def receiver_down(tmp_path: Path) -> Iterator[ReceiverProcess]:
    """A configured receiver with nothing listening on its port yet (`.start()` it)."""
    receiver = configure_receiver(
        tmp_path / "receiver",
        expected_nodes=agent_nodes(DEVICE),
        telemetry_interval_s=2,
        workers=2,
    )
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def receiver(receiver_down: ReceiverProcess) -> ReceiverProcess:
    """A running receiver (killed or stopped at the end of the test)."""
    receiver_down.start()
    return receiver_down


@pytest.fixture
def agent_processes() -> Iterator[list[AgentProcess]]:
    """Agents a test registers here are killed at its end, whatever happened."""
    agents: list[AgentProcess] = []
    try:
        yield agents
    finally:
        for agent in agents:
            if agent.running:
                agent.kill()
