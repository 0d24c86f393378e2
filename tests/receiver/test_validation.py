"""Timestamps, bucket widths and the pure validation helpers, below the HTTP layer."""

from __future__ import annotations

import pytest

from beam_receiver.queries import parse_bucket
from beam_receiver.timestamps import TimestampError, format_ms, parse_rfc3339
from beam_receiver.validation import (
    MAX_DEPTH,
    Problems,
    ValidationError,
    check_json_value,
    parse_readings,
    reading_items,
)

NOW_MS = 1_771_182_360_000  # 2026-02-15T19:06:00Z


@pytest.mark.parametrize(
    ("text", "epoch_ms", "normal"),
    [
        ("2026-02-15T19:06:00.123Z", NOW_MS + 123, "2026-02-15T19:06:00.123Z"),
        ("2026-02-15T19:06:00Z", NOW_MS, "2026-02-15T19:06:00Z"),
        ("2026-02-15t19:06:00z", NOW_MS, "2026-02-15T19:06:00Z"),
        ("2026-02-15T20:36:00+01:30", NOW_MS, "2026-02-15T19:06:00Z"),
        ("2026-02-15T18:06:00.5-01:00", NOW_MS + 500, "2026-02-15T19:06:00.5Z"),
        ("2026-02-15T19:06:00.123456789Z", NOW_MS + 123, "2026-02-15T19:06:00.123456Z"),
        ("1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00Z"),
    ],
)
def test_rfc3339_forms(text: str, epoch_ms: int, normal: str) -> None:
    assert parse_rfc3339(text) == (epoch_ms, normal)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-02-15",
        "2026-02-15T19:06Z",
        "2026-02-15T19:06:00",
        "2026-02-15T19:06:00+0100",
        "2026-02-15T19:06:60Z",
        "2026-02-15T24:00:00Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-23:59",
        "2026-02-15T19:06:00+24:00",
        "\uff12\uff10\uff12\uff16-02-15T19:06:00Z",  # fullwidth digits
        " 2026-02-15T19:06:00Z",
    ],
)
def test_bad_timestamps_are_refused(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_rfc3339(text)


def test_format_ms_is_the_agents_format() -> None:
    assert format_ms(NOW_MS + 7) == "2026-02-15T19:06:00.007Z"


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    value: object = 1
    for _ in range(MAX_DEPTH + 2):
        value = {"a": value}
    problems = Problems()
    check_json_value(value, "payload", problems)
    assert problems.count == 1
    assert "nested" in problems.details[0]["message"]


def test_buckets() -> None:
    assert parse_bucket("60s") == 60_000
    assert parse_bucket("60") == 60_000
    assert parse_bucket("5m") == 300_000
    assert parse_bucket("2h") == 7_200_000
    assert parse_bucket("1d") == 86_400_000
    for bad in ("0", "1w", "m", "1.5m", "", "60 s"):
        with pytest.raises(ValueError):
            parse_bucket(bad)


def test_single_reading_is_a_batch_of_one() -> None:
    reading = {"device_id": "d"}
    assert reading_items(reading) == [reading]
    assert reading_items({"readings": [reading]}) == [reading]


def test_parse_readings_gives_storage_rows() -> None:
    items = [
        {
            "device_id": "d",
            "sensor": "s",
            "sensor_type": "t",
            "payload": {"b": 1, "a": "ü"},
            "timestamp": "2026-02-15T19:06:00Z",
            "seq": 9,
        }
    ]
    (row,) = parse_readings(items, NOW_MS, 86_400_000)
    assert row.seq == 9 and row.ts_ms == NOW_MS
    assert row.payload == '{"b":1,"a":"ü"}'
    with pytest.raises(ValidationError) as caught:
        parse_readings([{**items[0], "seq": None}], NOW_MS, 0)
    assert caught.value.details == [
        {"index": 0, "field": "seq", "message": "must be an integer, not null"}
    ]
