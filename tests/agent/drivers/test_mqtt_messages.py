"""MQTT topic filters and payload mapping, the pure half of the mqtt driver (no broker)."""

from __future__ import annotations

from typing import Any

import pytest

from beam_agent.drivers.mqtt_messages import check_topics, message_fields, topic_filter_problem

from tests.support.readings import assert_json_payload


@pytest.mark.parametrize(
    "topic", ["a", "a/b", "+", "#", "a/+/c", "a/#", "+/+/#", "/leading", "trailing/", "é/°C"]
)
def test_valid_topic_filters(topic: str) -> None:
    assert topic_filter_problem(topic) == ""


@pytest.mark.parametrize(
    "topic, fault",
    [
        ("", "non-empty"),
        (5, "non-empty"),
        ("a/#/c", "'#' must be a whole level and the last one"),
        ("a#", "'#' must be a whole level"),
        ("a/b+", "'+' must be a whole level"),
        ("a/+b/c", "'+' must be a whole level"),
        ("a\0b", "NUL"),
        ("x" * 65536, "longer than 65535 bytes"),
    ],
)
def test_invalid_topic_filters_say_why(topic: Any, fault: str) -> None:
    assert fault in topic_filter_problem(topic)


def test_a_topics_list_names_the_bad_item() -> None:
    assert check_topics([]) == "must list at least one topic filter"
    assert check_topics(["ok/+", "bad/#/x"]).startswith("item 1 '#' must be")
    assert check_topics(["a", "a"]) == "lists a topic filter twice"
    assert check_topics(["a/+", "b/#"]) == ""


def fields(data: bytes, payload_format: str = "json", topic_field: str = "topic") -> Any:
    payload = message_fields("site/roof/temp", data, payload_format, "value", topic_field)
    return assert_json_payload(payload)


@pytest.mark.parametrize(
    "data, expected",
    [
        (b'{"t": 21.5, "rh": 40}', {"t": 21.5, "rh": 40, "topic": "site/roof/temp"}),
        (b"21.5", {"value": 21.5, "topic": "site/roof/temp"}),
        (b'"ON"', {"value": "ON", "topic": "site/roof/temp"}),
        (b"true", {"value": True, "topic": "site/roof/temp"}),
        (b'{"topic": "own"}', {"topic": "own"}),  # the message's own field wins
    ],
)
def test_json_payloads(data: bytes, expected: dict[str, Any]) -> None:
    assert fields(data) == expected


@pytest.mark.parametrize(
    "data, value",
    [
        (b"21.5\n", 21.5),
        (b" -7 ", -7),
        (b"1e3", 1000.0),
        (b".5", 0.5),
        (b"ON", "ON"),
        (b"nan", "nan"),  # not a number in a reading: kept as the text it is
        (b"1e999", "1e999"),  # not finite
        (b"12 V", "12 V"),
    ],
)
def test_plain_payloads(data: bytes, value: Any) -> None:
    assert fields(data, "plain") == {"value": value, "topic": "site/roof/temp"}


def test_an_empty_topic_field_leaves_the_topic_out() -> None:
    assert fields(b"3", "plain", topic_field="") == {"value": 3}


@pytest.mark.parametrize(
    "data, payload_format, fault",
    [
        (b"not json", "json", "Expecting value"),
        (b"[1, 2]", "json", "a JSON array"),
        (b"null", "json", "a JSON null"),
        (b'{"x": NaN}', "json", "NaN is not valid JSON"),
        (b"\xff\xfe", "json", "not UTF-8"),
        (b"\xff", "plain", "not UTF-8"),
        (b"  \n", "plain", "empty payload"),
    ],
)
def test_unusable_payloads_are_value_errors(data: bytes, payload_format: str, fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        message_fields("t", data, payload_format, "value", "topic")
