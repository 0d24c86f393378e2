"""Test-run order: the long end-to-end tests (marked `slow`) first.

`make unit` runs the suite on several pytest-xdist workers (most of its time is spent
waiting on real processes, not on the CPU); the receiver outage alone waits minutes. Started
first, the slow tests run beside the rest instead of after them. Without xdist the order
changes nothing a test relies on: every test stands alone.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow first
