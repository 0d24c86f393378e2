from __future__ import annotations

import functools

import pytest

from tests.support.processes import Command, run_program


@pytest.fixture
def beam_agent() -> Command:
    """Run the real `beam-agent` program in a subprocess: beam_agent("status", ...)."""
    return functools.partial(run_program, "beam-agent")
