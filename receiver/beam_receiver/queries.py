"""The query strings of the read endpoints: filters, page sizes, cursors, buckets.

Like bodies, queries are checked completely and every problem names its parameter;
unknown parameters are refused so that a typo is not silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from beam_receiver.storage import INT64_MAX, json_path
from beam_receiver.timestamps import TimestampError, parse_rfc3339
from beam_receiver.validation import Problems, name_problem

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_BUCKETS = 10_000
DEFAULT_SERIES_WINDOW_MS = 24 * 3600 * 1000
MAX_HISTORY_WINDOW_MS = 31 * 24 * 3600 * 1000
BUCKET_PATTERN = re.compile(r"^([0-9]{1,9})([smhd]?)$")
BUCKET_UNITS_MS = {"": 1000, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
CURSOR_PATTERN = re.compile(r"^[0-9]{1,19}$")
LIMIT_PATTERN = re.compile(r"^[0-9]{1,6}$")


@dataclass(frozen=True)
class ReadingsQuery:
    device_id: Optional[str] = None
    sensor: Optional[str] = None
    sensor_type: Optional[str] = None
    start_ms: Optional[int] = None
    end_ms: Optional[int] = None
    after_id: Optional[int] = None
    limit: int = DEFAULT_PAGE


@dataclass(frozen=True)
class WindowQuery:
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class SeriesQuery:
    device_id: str
    sensor: str
    field: str
    bucket_ms: int
    start_ms: int
    end_ms: int


def _unknown_parameters(
    args: Mapping[str, str], known: tuple[str, ...], problems: Problems
) -> None:
    for name in sorted(args):
        if name not in known:
            problems.add(name, f"unknown parameter (known: {', '.join(known)})")


def _query_name(args: Mapping[str, str], name: str, problems: Problems) -> Optional[str]:
    value = args.get(name)
    if value is None:
        return None
    message = name_problem(value)
    if message:
        problems.add(name, message)
        return None
    return value


def _query_time(args: Mapping[str, str], name: str, problems: Problems) -> Optional[int]:
    value = args.get(name)
    if value is None:
        return None
    try:
        return parse_rfc3339(value)[0]
    except TimestampError as exc:
        problems.add(name, str(exc))
        return None


def _check_window(start_ms: Optional[int], end_ms: Optional[int], problems: Problems) -> None:
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        problems.add("end", "must be later than start")


def parse_readings_query(args: Mapping[str, str]) -> ReadingsQuery:
    """GET /api/readings: filters, a page size of at most 1000 and the `after` cursor."""
    known = ("device_id", "sensor", "sensor_type", "start", "end", "limit", "after")
    problems = Problems()
    _unknown_parameters(args, known, problems)
    limit = DEFAULT_PAGE
    if "limit" in args:
        text = args["limit"]
        if not LIMIT_PATTERN.fullmatch(text) or not 1 <= int(text) <= MAX_PAGE:
            problems.add("limit", f"must be a whole number from 1 to {MAX_PAGE}")
        else:
            limit = int(text)
    after = None
    if "after" in args:
        text = args["after"]
        if not CURSOR_PATTERN.fullmatch(text) or int(text) > INT64_MAX:
            problems.add("after", "must be the `next` cursor of a previous page")
        else:
            after = int(text)
    start_ms = _query_time(args, "start", problems)
    end_ms = _query_time(args, "end", problems)
    _check_window(start_ms, end_ms, problems)
    query = ReadingsQuery(
        device_id=_query_name(args, "device_id", problems),
        sensor=_query_name(args, "sensor", problems),
        sensor_type=_query_name(args, "sensor_type", problems),
        start_ms=start_ms,
        end_ms=end_ms,
        after_id=after,
        limit=limit,
    )
    problems.raise_if_any("The query is invalid.")
    return query


def parse_latest_query(args: Mapping[str, str]) -> Optional[str]:
    """GET /api/readings/latest: an optional device_id."""
    problems = Problems()
    _unknown_parameters(args, ("device_id",), problems)
    device_id = _query_name(args, "device_id", problems)
    problems.raise_if_any("The query is invalid.")
    return device_id


def parse_bucket(text: str) -> int:
    """'60s', '5m', '1h', '1d' or plain seconds ('60') as milliseconds."""
    match = BUCKET_PATTERN.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{text[:32]!r} is not a bucket width like 60s, 5m, 1h or 1d")
    return int(match.group(1)) * BUCKET_UNITS_MS[match.group(2)]


def parse_series_query(args: Mapping[str, str], now_ms: int) -> SeriesQuery:
    """GET /api/analytics/series: one payload field of one sensor, bucketed over a window.

    end defaults to now and start to 24 hours before end; at most 10,000 buckets.
    """
    known = ("device_id", "sensor", "field", "bucket", "start", "end")
    problems = Problems()
    _unknown_parameters(args, known, problems)
    for name in ("device_id", "sensor", "field"):
        if name not in args:
            problems.add(name, "is required")
    device_id = _query_name(args, "device_id", problems)
    sensor = _query_name(args, "sensor", problems)
    field = args.get("field")
    if field is not None:
        message = name_problem(field, 256)
        if message is None:
            try:
                json_path(field)
            except ValueError:
                message = "must be a payload field name: no '\"' and no empty part between dots"
        if message:
            problems.add("field", message)
            field = None
    bucket_ms = 60_000
    if "bucket" in args:
        try:
            bucket_ms = parse_bucket(args["bucket"])
        except ValueError as exc:
            problems.add("bucket", str(exc))
    start_ms = _query_time(args, "start", problems)
    end_ms = _query_time(args, "end", problems)
    end = end_ms if end_ms is not None else now_ms
    start = start_ms if start_ms is not None else max(0, end - DEFAULT_SERIES_WINDOW_MS)
    if start >= end:
        problems.add("end", "must be later than start")
    elif (end - start) // bucket_ms > MAX_BUCKETS:
        problems.add(
            "bucket",
            f"gives more than {MAX_BUCKETS} buckets over this window; use a wider bucket",
        )
    problems.raise_if_any("The query is invalid.")
    assert device_id is not None and sensor is not None and field is not None
    return SeriesQuery(device_id, sensor, field, bucket_ms, start, end)


def parse_window_query(args: Mapping[str, str], now_ms: int) -> WindowQuery:
    """GET /api/nodes/<id>/status-history: start and end, RFC 3339, both optional.

    end defaults to now and start to 24 hours before end; the window is at most 31 days
    (the default heartbeat retention is 30)."""
    problems = Problems()
    _unknown_parameters(args, ("start", "end"), problems)
    start_ms = _query_time(args, "start", problems)
    end_ms = _query_time(args, "end", problems)
    end = end_ms if end_ms is not None else now_ms
    start = start_ms if start_ms is not None else max(0, end - DEFAULT_SERIES_WINDOW_MS)
    if start >= end:
        problems.add("end", "must be later than start")
    elif end - start > MAX_HISTORY_WINDOW_MS:
        problems.add("start", "the window is at most 31 days")
    problems.raise_if_any("The query is invalid.")
    return WindowQuery(start, end)
