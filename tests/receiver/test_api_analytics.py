"""GET /api/analytics/series: time buckets of one payload field, computed in SQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest

from tests.support.app import Receiver
from tests.support.constants import DEVICE
from tests.support.responses import assert_error

BASE = datetime(2026, 2, 15, 19, 0, tzinfo=timezone.utc)
WINDOW = {"start": "2026-02-15T19:00:00Z", "end": "2026-02-15T20:00:00Z"}


def stamp(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
def geiger(receiver: Receiver, make_reading: Callable[..., dict[str, Any]]) -> Receiver:
    """Three minutes of a Geiger counter: cpm 10..19, then 20..29, then 30..39."""
    batch = [
        make_reading(
            seq,
            timestamp=stamp(seq * 6 - 6),  # ten readings per minute
            payload={"cpm": 9 + seq, "usv_per_hr": (9 + seq) / 100, "mode": "SLOW"},
        )
        for seq in range(1, 31)
    ]
    # Values that are not numbers are skipped, not averaged as 0 or 1.
    batch.append(make_reading(31, timestamp=stamp(5), payload={"cpm": "n/a", "mode": True}))
    batch.append(make_reading(32, timestamp=stamp(7), payload={"cpm": None}))
    batch.append(make_reading(33, timestamp=stamp(8), payload={"env": {"t": 21.5}}))
    assert receiver.post_readings({"readings": batch}).status_code == 200
    return receiver


def series(receiver: Receiver, **params: Any) -> Any:
    query = {"device_id": DEVICE, "sensor": "geiger", **WINDOW, **params}
    return receiver.get("/api/analytics/series", **query)


def test_counts_per_minute_come_from_the_cpm_field(geiger: Receiver) -> None:
    body = series(geiger, field="cpm", bucket="60s").get_json()
    assert body["field"] == "cpm" and body["bucket_s"] == 60
    assert body["buckets"] == [
        {"start": "2026-02-15T19:00:00.000Z", "count": 10, "min": 10, "max": 19, "avg": 14.5},
        {"start": "2026-02-15T19:01:00.000Z", "count": 10, "min": 20, "max": 29, "avg": 24.5},
        {"start": "2026-02-15T19:02:00.000Z", "count": 10, "min": 30, "max": 39, "avg": 34.5},
    ]


def test_bucket_width_and_window(geiger: Receiver) -> None:
    body = series(geiger, field="cpm", bucket="2m").get_json()
    assert [(b["start"], b["count"]) for b in body["buckets"]] == [
        ("2026-02-15T19:00:00.000Z", 20),
        ("2026-02-15T19:02:00.000Z", 10),
    ]
    narrow = series(
        geiger, field="cpm", bucket="1h", start="2026-02-15T19:01:00Z", end="2026-02-15T19:02:00Z"
    ).get_json()
    assert narrow["buckets"] == [
        {"start": "2026-02-15T19:00:00.000Z", "count": 10, "min": 20, "max": 29, "avg": 24.5}
    ]


def test_float_and_nested_fields(geiger: Receiver) -> None:
    body = series(geiger, field="usv_per_hr", bucket="3600").get_json()
    assert body["buckets"][0]["count"] == 30
    assert body["buckets"][0]["max"] == pytest.approx(0.39)
    nested = series(geiger, field="env.t", bucket="1h").get_json()
    assert nested["buckets"][0]["count"] == 1 and nested["buckets"][0]["avg"] == 21.5


def test_non_numeric_and_missing_fields_give_no_buckets(geiger: Receiver) -> None:
    assert series(geiger, field="mode", bucket="1h").get_json()["buckets"] == []
    assert series(geiger, field="nothing", bucket="1h").get_json()["buckets"] == []
    assert series(geiger, field="cpm", sensor="other").get_json()["buckets"] == []


def test_default_window_is_the_last_day(geiger: Receiver) -> None:
    body = geiger.get(
        "/api/analytics/series", device_id=DEVICE, sensor="geiger", field="cpm"
    ).get_json()
    start = datetime.fromisoformat(body["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(body["end"].replace("Z", "+00:00"))
    assert end - start == timedelta(days=1)
    assert body["bucket_s"] == 60


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"field": None}, "field"),
        ({"device_id": None}, "device_id"),
        ({"sensor": None}, "sensor"),
        ({"field": "cpm", "bucket": "0s"}, "bucket"),
        ({"field": "cpm", "bucket": "fortnight"}, "bucket"),
        ({"field": "cpm", "bucket": "-60s"}, "bucket"),
        ({"field": "cpm", "bucket": "1s", "start": "2026-01-01T00:00:00Z"}, "bucket"),
        ({"field": 'cpm"] OR 1=1 --'}, "field"),
        ({"field": "a..b"}, "field"),
        ({"field": "cpm", "start": "noon"}, "start"),
        ({"field": "cpm", "start": "2026-02-15T20:00:00Z"}, "end"),
        ({"field": "cpm", "colour": "red"}, "colour"),
    ],
)
def test_bad_series_query_is_400(geiger: Receiver, params: dict[str, Any], field: str) -> None:
    query: dict[str, Any] = {"device_id": DEVICE, "sensor": "geiger", **WINDOW, **params}
    query = {k: v for k, v in query.items() if v is not None}
    body = assert_error(geiger.get("/api/analytics/series", **query), 400, "invalid_query")
    assert field in [detail["field"] for detail in body["details"]]


def test_series_needs_an_operator(geiger: Receiver) -> None:
    url = "/api/analytics/series?device_id=beamrider-0001&sensor=geiger&field=cpm"
    assert_error(geiger.client.get(url), 401, "unauthorized")
    assert_error(geiger.client.get(url, headers=geiger.headers()), 403, "forbidden")
