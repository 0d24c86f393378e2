"""What a well-formed reading, heartbeat, registration and query looks like.

Every check collects its problems instead of stopping at the first, and each problem names
the field and (in a batch) the reading's index, e.g.
`{"index": 3, "field": "timestamp", "message": "..."}`: an agent's author can fix all of
them from one answer. Nothing here touches the database or Flask.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from beam_receiver.storage import Heartbeat, NewReading, Registration, json_path
from beam_receiver.timestamps import TimestampError, format_ms, parse_rfc3339

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_NAME_LENGTH = 128
MAX_TEXT_LENGTH = 1024
MAX_DEPTH = 32
MAX_DETAILS = 50
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_BUCKETS = 10_000
DEFAULT_SERIES_WINDOW_MS = 24 * 3600 * 1000
READING_FIELDS = ("device_id", "sensor", "sensor_type", "payload", "timestamp", "seq")
TELEMETRY_FIELDS = (
    "node_id",
    "role",
    "timestamp",
    "uptime_seconds",
    "software_version",
    "ip_address",
    "metrics",
    "tags",
    "protocol_version",
)
REGISTRATION_FIELDS = ("node_id", "role", "hostname", "ip_address", "software_version", "tags")
BUCKET_PATTERN = re.compile(r"^([0-9]{1,9})([smhd]?)$")
BUCKET_UNITS_MS = {"": 1000, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
CURSOR_PATTERN = re.compile(r"^[0-9]{1,19}$")
LIMIT_PATTERN = re.compile(r"^[0-9]{1,6}$")


class ValidationError(ValueError):
    """A body or query that was rejected, with one detail per problem found."""

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Problems:
    """Collects details; stops collecting (but keeps counting) after MAX_DETAILS."""

    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []
        self.count = 0

    def add(self, field: Optional[str], message: str, index: Optional[int] = None) -> None:
        self.count += 1
        if len(self.details) >= MAX_DETAILS:
            return
        detail: dict[str, Any] = {}
        if index is not None:
            detail["index"] = index
        detail["field"] = field
        detail["message"] = message
        self.details.append(detail)

    def raise_if_any(self, message: str) -> None:
        if not self.count:
            return
        details = list(self.details)
        if self.count > len(details):
            details.append(
                {"field": None, "message": f"and {self.count - len(details)} more problems"}
            )
        raise ValidationError(message, details)


def _has_surrogates(text: str) -> bool:
    """JSON's \\ud800 escapes can smuggle lone surrogates, which are not storable text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _name_problem(value: Any, max_length: int = MAX_NAME_LENGTH) -> Optional[str]:
    """Why a value is not a usable identifier (device, sensor, node, role ...), or None."""
    if not isinstance(value, str):
        return f"must be a string, not {json_type(value)}"
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if _has_surrogates(value) or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        return "must not contain control characters or unpaired surrogates"
    return None


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_json_value(
    value: Any, field: str, problems: Problems, index: Optional[int] = None, depth: int = 0
) -> None:
    """Only what SQLite and every JSON parser store faithfully: finite numbers, int64, text."""
    if depth > MAX_DEPTH:
        problems.add(field, f"is nested more than {MAX_DEPTH} levels deep", index)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            problems.add(field, "is an integer outside the 64-bit range", index)
    elif isinstance(value, float):
        if not math.isfinite(value):
            problems.add(field, "must be a finite number (NaN and Infinity are not JSON)", index)
    elif isinstance(value, str):
        if _has_surrogates(value):
            problems.add(field, "contains an unpaired surrogate", index)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            check_json_value(item, f"{field}[{position}]", problems, index, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if _has_surrogates(key):
                problems.add(field, "has a key with an unpaired surrogate", index)
                continue
            check_json_value(item, f"{field}.{key}", problems, index, depth + 1)
    else:  # json.loads never makes anything else; guard against other callers
        problems.add(field, f"is {json_type(value)}, which is not JSON", index)


def _check_object(
    value: Any, field: str, problems: Problems, index: Optional[int] = None
) -> Optional[str]:
    """The value as compact JSON text if it is a storable object, else None (problem noted)."""
    if not isinstance(value, dict):
        problems.add(field, f"must be a JSON object, not {json_type(value)}", index)
        return None
    before = problems.count
    check_json_value(value, field, problems, index)
    if problems.count > before:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_timestamp(
    value: Any,
    field: str,
    problems: Problems,
    now_ms: int,
    max_future_ms: int,
    index: Optional[int] = None,
) -> Optional[tuple[int, str]]:
    if not isinstance(value, str):
        problems.add(field, f"must be an RFC 3339 string, not {json_type(value)}", index)
        return None
    try:
        epoch_ms, text = parse_rfc3339(value)
    except TimestampError as exc:
        problems.add(field, str(exc), index)
        return None
    if epoch_ms > now_ms + max_future_ms:
        problems.add(
            field,
            f"{value} is more than {max_future_ms // 1000} s ahead of the receiver's clock"
            f" ({format_ms(now_ms)}); is the node's clock wrong?",
            index,
        )
        return None
    return epoch_ms, text


def _unknown_fields(
    item: Mapping[str, Any], known: tuple[str, ...], problems: Problems, index: Optional[int]
) -> None:
    for name in item:
        if name not in known:
            shown = name if not _has_surrogates(name) else repr(name)
            problems.add(shown, f"unknown field (known: {', '.join(known)})", index)


def _check_reading(
    item: Any, index: int, problems: Problems, now_ms: int, max_future_ms: int
) -> Optional[NewReading]:
    if not isinstance(item, dict):
        problems.add(None, f"a reading must be a JSON object, not {json_type(item)}", index)
        return None
    before = problems.count
    _unknown_fields(item, READING_FIELDS, problems, index)
    for name in READING_FIELDS:
        if name not in item:
            problems.add(name, "is required", index)
    for name in ("device_id", "sensor", "sensor_type"):
        if name in item:
            message = _name_problem(item[name])
            if message:
                problems.add(name, message, index)
    payload = (
        _check_object(item["payload"], "payload", problems, index) if "payload" in item else None
    )
    stamp = None
    if "timestamp" in item:
        stamp = _check_timestamp(
            item["timestamp"], "timestamp", problems, now_ms, max_future_ms, index
        )
    seq: Any = item.get("seq")
    if "seq" in item:
        if not isinstance(seq, int) or isinstance(seq, bool):
            problems.add("seq", f"must be an integer, not {json_type(seq)}", index)
        elif not 1 <= seq <= INT64_MAX:
            problems.add("seq", f"must be between 1 and {INT64_MAX}", index)
    if problems.count > before or payload is None or stamp is None or not isinstance(seq, int):
        return None
    return NewReading(
        device_id=item["device_id"],
        seq=seq,
        sensor=item["sensor"],
        sensor_type=item["sensor_type"],
        timestamp=stamp[1],
        ts_ms=stamp[0],
        payload=payload,
    )


def reading_items(body: Any) -> list[Any]:
    """The readings of a body: one reading object, or {"readings": [...]}, never empty."""
    if isinstance(body, dict) and "readings" in body:
        extra = sorted(name for name in body if name != "readings")
        problems = Problems()
        for name in extra:
            problems.add(name, 'unknown top-level field (a batch holds only "readings")')
        items = body["readings"]
        if not isinstance(items, list):
            problems.add("readings", f"must be an array, not {json_type(items)}")
        elif not items:
            problems.add("readings", "must hold at least one reading")
        problems.raise_if_any("The batch is malformed; nothing was stored.")
        return list(items)
    if isinstance(body, dict):
        return [body]
    raise ValidationError(
        'The body must be one reading object or {"readings": [...]}; nothing was stored.',
        [{"field": None, "message": f"the body is {json_type(body)}, not an object"}],
    )


def foreign_devices(items: list[Any], device_id: str) -> list[dict[str, Any]]:
    """Details for every reading that names a device other than the caller's own."""
    details = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            claimed = item.get("device_id")
            if isinstance(claimed, str) and claimed != device_id:
                details.append(
                    {
                        "index": index,
                        "field": "device_id",
                        "message": f"this token belongs to {device_id!r}, not {claimed[:128]!r}",
                    }
                )
                if len(details) >= MAX_DETAILS:
                    break
    return details


def parse_readings(items: list[Any], now_ms: int, max_future_ms: int) -> list[NewReading]:
    """Every reading checked; any problem anywhere rejects the whole batch."""
    problems = Problems()
    readings = []
    for index, item in enumerate(items):
        reading = _check_reading(item, index, problems, now_ms, max_future_ms)
        if reading is not None:
            readings.append(reading)
    problems.raise_if_any(
        f"{problems.count} problem(s) in the readings; nothing was stored."
        if len(items) > 1
        else "The reading is invalid; nothing was stored."
    )
    return readings


def _optional_name(
    body: Mapping[str, Any], name: str, problems: Problems, max_length: int = MAX_NAME_LENGTH
) -> Optional[str]:
    value = body.get(name)
    if value is None:
        return None
    message = _name_problem(value, max_length)
    if message:
        problems.add(name, message)
        return None
    return str(value)


def _ip_address(body: Mapping[str, Any], problems: Problems) -> Optional[str]:
    value = body.get("ip_address")
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add("ip_address", f"must be a string or null, not {json_type(value)}")
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        problems.add("ip_address", f"{value[:64]!r} is not an IPv4 or IPv6 address")
        return None


def _tags(body: Mapping[str, Any], problems: Problems) -> str:
    tags = body.get("tags", {})
    if tags is None:
        return "{}"
    if not isinstance(tags, dict):
        problems.add("tags", f"must be an object of strings, not {json_type(tags)}")
        return "{}"
    for key, value in tags.items():
        if _has_surrogates(key):
            problems.add("tags", "has a key with an unpaired surrogate")
        elif not isinstance(value, str):
            problems.add(f"tags.{key}", f"must be a string, not {json_type(value)}")
        elif len(value) > MAX_TEXT_LENGTH or _has_surrogates(value):
            problems.add(f"tags.{key}", f"must be text of at most {MAX_TEXT_LENGTH} characters")
    return json.dumps(tags, separators=(",", ":"), ensure_ascii=False)


def _body_object(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError(
            f"The {what} must be a JSON object.",
            [{"field": None, "message": f"the body is {json_type(body)}, not an object"}],
        )
    return body


def _node_id(data: Mapping[str, Any], problems: Problems) -> str:
    if "node_id" not in data:
        problems.add("node_id", "is required")
        return ""
    message = _name_problem(data["node_id"])
    if message:
        problems.add("node_id", message)
        return ""
    return str(data["node_id"])


def node_id_of(body: Any) -> Optional[str]:
    """The node_id a telemetry or registration body claims, if it is a string."""
    value = body.get("node_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def parse_heartbeat(body: Any, now_ms: int, max_future_ms: int) -> Heartbeat:
    """A telemetry heartbeat; metrics is free-form but must be storable JSON."""
    data = _body_object(body, "heartbeat")
    problems = Problems()
    _unknown_fields(data, TELEMETRY_FIELDS, problems, None)
    node_id = _node_id(data, problems)
    if "timestamp" not in data:
        problems.add("timestamp", "is required")
    stamp = None
    if "timestamp" in data:
        stamp = _check_timestamp(data["timestamp"], "timestamp", problems, now_ms, max_future_ms)
    uptime = data.get("uptime_seconds")
    if uptime is not None and (
        not isinstance(uptime, (int, float))
        or isinstance(uptime, bool)
        or not math.isfinite(uptime)
        or uptime < 0
    ):
        problems.add("uptime_seconds", "must be a finite number of at least 0, or null")
        uptime = None
    protocol = data.get("protocol_version")
    if protocol is not None and (
        not isinstance(protocol, int) or isinstance(protocol, bool) or not 0 <= protocol < 2**31
    ):
        problems.add("protocol_version", "must be a small non-negative integer, or null")
        protocol = None
    metrics_value = data.get("metrics", {})
    metrics = "{}"
    if metrics_value is not None:
        metrics = _check_object(metrics_value, "metrics", problems) or "{}"
    queue_depth = metrics_value.get("queue_depth") if isinstance(metrics_value, dict) else None
    if not isinstance(queue_depth, int) or isinstance(queue_depth, bool):
        queue_depth = None
    result = Heartbeat(
        node_id=node_id,
        timestamp=stamp[1] if stamp else "",
        role=_optional_name(data, "role", problems),
        uptime_seconds=float(uptime) if uptime is not None else None,
        software_version=_optional_name(data, "software_version", problems),
        ip_address=_ip_address(data, problems),
        protocol_version=protocol,
        queue_depth=queue_depth if queue_depth is None or queue_depth <= INT64_MAX else None,
        metrics=metrics,
        tags=_tags(data, problems),
    )
    problems.raise_if_any("The heartbeat is invalid; nothing was stored.")
    return result


def parse_registration(body: Any) -> Registration:
    data = _body_object(body, "registration")
    problems = Problems()
    _unknown_fields(data, REGISTRATION_FIELDS, problems, None)
    result = Registration(
        node_id=_node_id(data, problems),
        role=_optional_name(data, "role", problems),
        hostname=_optional_name(data, "hostname", problems, 253),
        ip_address=_ip_address(data, problems),
        software_version=_optional_name(data, "software_version", problems),
        tags=_tags(data, problems),
    )
    problems.raise_if_any("The registration is invalid; nothing was stored.")
    return result


# -- query strings -------------------------------------------------------------------------


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
    message = _name_problem(value)
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
        message = _name_problem(field, 256)
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
