"""Node status from the age of its last heartbeat: every boundary."""

from __future__ import annotations

import pytest

from beam_receiver.status import node_status

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("age", "status"),
    [
        (0, "online"),
        (59.999, "online"),
        (60, "online"),  # exactly 2 intervals
        (60.001, "degraded"),
        (150, "degraded"),  # exactly 5 intervals
        (150.001, "offline"),
        (86400, "offline"),
        (-5, "online"),  # a heartbeat stamped slightly ahead of our clock
    ],
)
def test_status_by_age(age: float, status: str) -> None:
    assert node_status(NOW - age, 30, NOW) == status


def test_never_seen_is_offline() -> None:
    assert node_status(None, 30, NOW) == "offline"


def test_not_in_inventory_is_unexpected_whatever_the_age() -> None:
    assert node_status(NOW, 30, NOW, expected=False) == "unexpected"
    assert node_status(None, 30, NOW, expected=False) == "unexpected"


def test_interval_scales_the_thresholds() -> None:
    assert node_status(NOW - 20, 5, NOW) == "degraded"
    assert node_status(NOW - 20, 10, NOW) == "online"
    assert node_status(NOW - 20, 3, NOW) == "offline"
