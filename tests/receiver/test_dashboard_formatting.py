"""The words and classes the fleet table shows for statuses and ages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from beam_receiver.dashboard.formatting import (
    describe_age,
    iso_utc,
    parse_timestamp,
    status_class,
    status_label,
)

NOW = datetime(2026, 2, 15, 19, 6, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-15T19:06:00Z", NOW),
        ("2026-02-15T19:06:00.123Z", NOW + timedelta(milliseconds=123)),
        ("2026-02-15T19:06:00.1Z", NOW + timedelta(milliseconds=100)),
        ("2026-02-15T19:06:00.123456789Z", NOW + timedelta(microseconds=123456)),
        ("2026-02-15T20:06:00+01:00", NOW),
        ("2026-02-15T19:06:00", NOW),
    ],
)
def test_parse_timestamp_reads_rfc3339_forms(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


def test_parse_timestamp_reads_epoch_seconds_and_rejects_garbage() -> None:
    assert parse_timestamp(NOW.timestamp()) == NOW
    assert parse_timestamp(None) is None
    assert parse_timestamp(True) is None
    assert parse_timestamp("yesterday") is None


@pytest.mark.parametrize(
    ("seconds_ago", "expected"),
    [
        (0, "0 s ago"),
        (59, "59 s ago"),
        (60, "1 min ago"),
        (7200, "2 h ago"),
        (3 * 86400, "3 d ago"),
    ],
)
def test_describe_age_picks_the_largest_whole_unit(seconds_ago: int, expected: str) -> None:
    seen = (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert describe_age(seen, now=NOW) == expected


def test_describe_age_of_missing_future_and_unreadable_values() -> None:
    assert describe_age(None, now=NOW) == "never"
    assert describe_age("2026-02-15T19:07:00Z", now=NOW) == "in the future"
    assert describe_age("not a time", now=NOW) == "not a time"


def test_iso_utc_normalises_offsets_for_time_elements() -> None:
    assert iso_utc("2026-02-15T20:06:00.5+01:00") == "2026-02-15T19:06:00Z"
    assert iso_utc(None) == ""


def test_status_words_and_classes_come_from_a_fixed_set() -> None:
    assert [status_label(s) for s in ("online", "degraded", "offline", "unexpected")] == [
        "Online",
        "Degraded",
        "Offline",
        "Unexpected",
    ]
    assert status_class("degraded") == "status-degraded"
    # Whatever a status string holds, it never becomes an arbitrary CSS class.
    assert status_class('x" onclick="y') == "status-unknown"
    assert status_label("rebooting") == "Rebooting"
