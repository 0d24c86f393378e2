"""The collection's copy of the agent's driver options must not drift from the agent."""

from __future__ import annotations

import importlib.util

from ansible_collections.beam.fleet.plugins.module_utils.sensor_types import SENSOR_TYPES
from conftest import REPOSITORY

SYNC = REPOSITORY / "molecule" / "scripts" / "sync-sensor-types.py"


def test_sensor_types_match_the_agents_drivers():
    spec = importlib.util.spec_from_file_location("sync_sensor_types", SYNC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert SENSOR_TYPES == module.describe(), f"stale: run {SYNC}"
    assert module.TARGET.read_text(encoding="utf-8") == module.render(), f"stale: run {SYNC}"
