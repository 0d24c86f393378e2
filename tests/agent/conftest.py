from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from beam_agent.queue import ReadingQueue

from tests.support.processes import Command, run_program


@pytest.fixture
def beam_agent() -> Command:
    """Run the real `beam-agent` program in a subprocess: beam_agent("status", ...)."""
    return functools.partial(run_program, "beam-agent")


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[ReadingQueue]:
    """An empty queue in tmp_path/state, closed after the test."""
    store = ReadingQueue(tmp_path / "state")
    yield store
    store.close()
