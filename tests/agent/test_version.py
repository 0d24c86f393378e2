"""beam_agent.__version__ without importlib.metadata, and the same answer."""

from __future__ import annotations

from importlib.metadata import version

import beam_agent


def test_the_version_is_the_installed_distributions() -> None:
    assert beam_agent.installed_version() == version("beam-fleet") == beam_agent.__version__
