"""The SSH tests talk to the nodes over real SSH, not through testinfra's host."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def journal_on_failure():
    """Replaces the shared fixture: these tests print sshd's answer themselves."""
    yield
