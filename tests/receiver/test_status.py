"""Node status from the age of its last heartbeat: every boundary."""

from __future__ import annotations

import pytest

from beam_receiver.status import node_status, status_segments

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


def test_status_segments_follow_node_status_between_heartbeats() -> None:
    # Interval 30 s: online 60 s after a heartbeat, degraded to 150 s, then offline.
    segments = status_segments(None, [10_000, 40_000, 400_000], 30, 0, 500_000)
    assert segments == [
        ("none", 0, 10_000),
        ("online", 10_000, 100_000),  # the second heartbeat came in time: one segment
        ("degraded", 100_000, 190_000),
        ("offline", 190_000, 400_000),
        ("online", 400_000, 460_000),
        ("degraded", 460_000, 500_000),  # the window ends in the middle
    ]
    # A status at every moment of the window agrees with node_status at that moment.
    beats = [10_000, 40_000, 400_000]
    for moment in range(10_000, 500_000, 997):
        last = max(beat for beat in beats if beat <= moment)
        expected = node_status(last / 1000, 30, moment / 1000)
        found = [s for s, begin, end in segments if begin <= moment < end]
        assert found == [expected], moment


def test_status_segments_start_from_the_heartbeat_before_the_window() -> None:
    assert status_segments(0, [], 30, 100_000, 200_000) == [
        ("degraded", 100_000, 150_000),
        ("offline", 150_000, 200_000),
    ]
    assert status_segments(None, [], 30, 100_000, 200_000) == [("none", 100_000, 200_000)]
    assert status_segments(None, [100_000], 30, 100_000, 130_000) == [("online", 100_000, 130_000)]
