"""MQTT topic filters and message payloads, as plain functions: no paho import, so that
`check-config` and the collection's option table do not load the MQTT client."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Union

PAYLOAD_FORMATS = ("json", "plain")
MAX_TOPIC_BYTES = 65535  # MQTT strings carry a two-byte length
NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+$")


def topic_filter_problem(topic: Any) -> str:
    """Why `topic` is not a valid MQTT subscription filter ('' when it is).

    MQTT 3.1.1 section 4.7: '+' stands for one whole level, '#' for all remaining levels
    and only as the last one; a filter is non-empty UTF-8 without NUL characters.
    """
    if not isinstance(topic, str) or not topic:
        return f"must be a non-empty topic filter such as 'sensors/+/temperature', got {topic!r}"
    if "\0" in topic:
        return f"must not contain a NUL character, got {topic!r}"
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        return f"is longer than {MAX_TOPIC_BYTES} bytes"
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return f"'#' must be a whole level and the last one, got {topic!r}"
        if "+" in level and level != "+":
            return f"'+' must be a whole level, got {topic!r}"
    return ""


def check_topics(topics: Sequence[Any]) -> str:
    """Why a `topics` list is unusable ('' when it is fine)."""
    if not topics:
        return "must list at least one topic filter"
    for index, topic in enumerate(topics):
        problem = topic_filter_problem(topic)
        if problem:
            return f"item {index} {problem}"
    if len(set(topics)) != len(topics):
        return "lists a topic filter twice"
    return ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def plain_value(text: str) -> Any:
    """A plain payload's value: an integer or a finite number when it reads as one, else the
    text itself ('ON', 'open'), so a switch's state is kept as well as a thermometer's."""
    if INTEGER.match(text):
        return int(text)
    if NUMBER.match(text):
        value = float(text)
        if math.isfinite(value):
            return value
    return text


def message_fields(
    topic: str,
    data: Union[bytes, bytearray],
    payload_format: str,
    value_field: str,
    topic_field: str,
) -> dict[str, Any]:
    """The reading payload of one message; ValueError says why a message cannot be one.

    JSON: an object's keys become the fields; a bare number, string or boolean goes to
    `value_field`. Plain: the stripped text (a number when it reads as one) goes to
    `value_field`. `topic_field` (unless empty) adds the message's topic, which tells apart
    the readings of a wildcard subscription; a field of the message's own with that name wins.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"payload is not UTF-8 ({exc.reason})") from None
    if payload_format == "json":
        value = json.loads(text, parse_constant=_reject_constant)
        if isinstance(value, dict):
            fields = value
        elif isinstance(value, (int, float, str)):  # bool is an int
            fields = {value_field: value}
        else:
            kind = "null" if value is None else "array"
            raise ValueError(f"a JSON {kind}, not an object, number, string or boolean")
    else:
        stripped = text.strip()
        if not stripped:
            raise ValueError("empty payload")
        fields = {value_field: plain_value(stripped)}
    if topic_field:
        fields.setdefault(topic_field, topic)
    return fields
