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
from typing import Any, Optional

from beam_receiver.protocol import FIELD as PROTOCOL_FIELD
from beam_receiver.protocol import check_version
from beam_receiver.storage import INT64_MAX, INT64_MIN, Heartbeat, NewReading, Registration
from beam_receiver.timestamps import TimestampError, format_ms, parse_rfc3339

MAX_NAME_LENGTH = 128
MAX_TEXT_LENGTH = 1024
MAX_DEPTH = 32
MAX_DETAILS = 50
READING_FIELDS = ("device_id", "sensor", "sensor_type", "payload", "timestamp", "seq")
# What a reading may carry besides READING_FIELDS (the seed systems' protocol_version).
READING_OPTIONAL = (PROTOCOL_FIELD,)
# protocol_version values the fast path takes as they are (type-checked: True == 1).
PLAIN_VERSIONS = {int: (1,), str: ("1", "1.0")}
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
REGISTRATION_FIELDS = (
    "node_id",
    "role",
    "hostname",
    "ip_address",
    "software_version",
    "tags",
    PROTOCOL_FIELD,
)
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# One encoder for every payload: json.dumps with options would build a new one each call.
ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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


def name_problem(value: Any, max_length: int = MAX_NAME_LENGTH) -> Optional[str]:
    """Why a value is not a usable identifier (device, sensor, node, role ...), or None."""
    if not isinstance(value, str):
        return f"must be a string, not {json_type(value)}"
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if UNPRINTABLE.search(value):
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
    return ENCODER.encode(value)


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
    _unknown_fields(item, READING_FIELDS + READING_OPTIONAL, problems, index)
    _protocol_version(item, problems, index)
    for name in READING_FIELDS:
        if name not in item:
            problems.add(name, "is required", index)
    for name in ("device_id", "sensor", "sensor_type"):
        if name in item:
            message = name_problem(item[name])
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


# -- the fast path: most batches are fine, so prove that cheaply first -----------------------

_good_names: dict[str, None] = {}  # identifiers already checked (bounded, see _good_name)


def _good_name(value: Any) -> bool:
    if type(value) is not str:
        return False
    if value in _good_names:
        return True
    if name_problem(value) is not None:
        return False
    if len(_good_names) < 10_000:
        _good_names[value] = None
    return True


def _plain_json(value: Any, depth: int) -> bool:
    """True for values that need no closer look (NaN and surrogates are left to the encoder)."""
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return True
    if kind is int:
        return bool(INT64_MIN <= value <= INT64_MAX)
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        return all(_plain_json(item, depth + 1) for item in value.values())
    if kind is list:
        return all(_plain_json(item, depth + 1) for item in value)
    return False


def _fast_reading(item: Any, latest_ms: int) -> Optional[NewReading]:
    """The reading if it is plainly valid, else None: _check_reading then says what is wrong.

    Never accepts what _check_reading would refuse; it may give up on what it would accept.
    """
    if type(item) is not dict or len(item) != len(READING_FIELDS):
        if type(item) is not dict or len(item) != len(READING_FIELDS) + 1:
            return None
        version = item.get(PROTOCOL_FIELD)
        if version not in PLAIN_VERSIONS.get(type(version), ()):
            return None
    try:
        device_id = item["device_id"]
        sensor = item["sensor"]
        sensor_type = item["sensor_type"]
        payload = item["payload"]
        timestamp = item["timestamp"]
        seq = item["seq"]
    except KeyError:
        return None
    if not (_good_name(device_id) and _good_name(sensor) and _good_name(sensor_type)):
        return None
    if type(seq) is not int or not 1 <= seq <= INT64_MAX or type(timestamp) is not str:
        return None
    try:
        epoch_ms, text = parse_rfc3339(timestamp)
    except TimestampError:
        return None
    if epoch_ms > latest_ms or type(payload) is not dict or not _plain_json(payload, 0):
        return None
    try:
        payload_text = ENCODER.encode(payload)  # ValueError for NaN and Infinity
        payload_text.encode("utf-8")  # UnicodeEncodeError for unpaired surrogates
    except (ValueError, UnicodeEncodeError):
        return None
    return NewReading(device_id, seq, sensor, sensor_type, text, epoch_ms, payload_text)


def reading_items(body: Any) -> list[Any]:
    """The readings of a body: one reading object, or {"readings": [...]}, never empty."""
    if isinstance(body, dict) and "readings" in body:
        extra = sorted(name for name in body if name not in ("readings", PROTOCOL_FIELD))
        problems = Problems()
        for name in extra:
            problems.add(
                name, f'unknown top-level field (a batch holds "readings" and "{PROTOCOL_FIELD}")'
            )
        _protocol_version(body, problems)
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
    latest_ms = now_ms + max_future_ms
    readings = []
    for item in items:
        reading = _fast_reading(item, latest_ms)
        if reading is None:
            break
        readings.append(reading)
    else:
        return readings
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


def _protocol_version(
    data: Mapping[str, Any], problems: Problems, index: Optional[int] = None
) -> Optional[int]:
    """The body's protocol version as its major number (see protocol.py), None if absent;
    a refusal names the field and the versions this receiver supports."""
    major, problem = check_version(data.get(PROTOCOL_FIELD))
    if problem is not None:
        problems.add(PROTOCOL_FIELD, problem, index)
    return major


def declared_versions(body: Any) -> set[int]:
    """The major protocol versions a valid body declares: at its top level (heartbeat,
    registration, one reading, a batch) and in a batch's readings. For counting deprecated
    versions after the body passed validation; a value it cannot read is skipped."""
    found: list[Any] = []
    if isinstance(body, dict):
        found.append(body.get(PROTOCOL_FIELD))
        readings = body.get("readings")
        if isinstance(readings, list):
            found += [r.get(PROTOCOL_FIELD) for r in readings if isinstance(r, dict)]
    majors = {check_version(value)[0] for value in found if value is not None}
    return {major for major in majors if major is not None}


def _optional_name(
    body: Mapping[str, Any], name: str, problems: Problems, max_length: int = MAX_NAME_LENGTH
) -> Optional[str]:
    value = body.get(name)
    if value is None:
        return None
    message = name_problem(value, max_length)
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
    message = name_problem(data["node_id"])
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
    protocol = _protocol_version(data, problems)
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
    _protocol_version(data, problems)
    problems.raise_if_any("The registration is invalid; nothing was stored.")
    return result
