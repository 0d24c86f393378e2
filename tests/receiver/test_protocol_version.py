"""protocol_version as the agent (1) and the seed systems ("1.0") write it: both read as the
same version; unsupported majors refused with 400 naming the field and the supported range;
deprecated ones accepted and counted by version in /metrics."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from beam_receiver.protocol import check_version

from tests.receiver.test_api_nodes import heartbeat, registration
from tests.support.app import Receiver
from tests.support.constants import DEVICE
from tests.support.responses import assert_error, sample

DEPRECATED_METRIC = "beam_receiver_deprecated_protocol_total"


@pytest.mark.parametrize(
    ("value", "major"),
    [(1, 1), ("1.0", 1), ("1", 1), (1.0, 1), ("01.0", 1), ("1.3", 1), (0, 0), ("0.9", 0)],
)
def test_numbers_and_strings_mean_the_same_version(value: Any, major: int) -> None:
    assert check_version(value) == (major, None)


@pytest.mark.parametrize(
    "value", [2, "2.0", 17, 1e300, "1.0.0", "v1", "", " 1.0", "\u0661", -1, True, [1], {}]
)
def test_other_versions_are_refused_naming_the_supported_range(value: Any) -> None:
    major, problem = check_version(value)
    assert major is None
    assert problem is not None and "this receiver supports 1.x" in problem


@pytest.mark.parametrize("value", [1, "1.0", 1.0])
def test_heartbeat_takes_either_form_and_the_node_shows_the_major(
    receiver: Receiver, value: Any
) -> None:
    response = receiver.client.post(
        "/api/telemetry", json=heartbeat(protocol_version=value), headers=receiver.headers()
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert receiver.get(f"/api/nodes/{DEVICE}").get_json()["protocol_version"] == 1


def test_registration_takes_the_seed_form(receiver: Receiver) -> None:
    response = receiver.client.post(
        "/api/nodes/register", json=registration(protocol_version="1.0"), headers=receiver.headers()
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_readings_take_it_per_batch_and_per_reading(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    batch = {
        "protocol_version": "1.0",
        "readings": [make_reading(1, protocol_version="1.0"), make_reading(2, protocol_version=1)],
    }
    assert receiver.post_readings(batch).get_json() == {"accepted": 2, "duplicates": 0}
    single = make_reading(3, protocol_version=1.0)
    assert receiver.post_readings(single).get_json() == {"accepted": 1, "duplicates": 0}
    stored = receiver.get("/api/readings", device_id=DEVICE).get_json()["readings"]
    assert [r["seq"] for r in stored] == [1, 2, 3]
    assert all("protocol_version" not in r for r in stored)  # not part of the reading


@pytest.mark.parametrize("path", ["/api/telemetry", "/api/nodes/register"])
def test_unsupported_version_is_400_naming_field_and_range(receiver: Receiver, path: str) -> None:
    body = (heartbeat if path == "/api/telemetry" else registration)(protocol_version="2.0")
    body = assert_error(
        receiver.client.post(path, json=body, headers=receiver.headers()), 400, "invalid_body"
    )
    detail = next(d for d in body["details"] if d["field"] == "protocol_version")
    assert "2.0 is not supported" in detail["message"]
    assert "this receiver supports 1.x" in detail["message"]
    assert receiver.get(f"/api/nodes/{DEVICE}").get_json()["last_seen"] is None


def test_unsupported_version_in_a_batch_stores_nothing(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    batch = {"readings": [make_reading(1), make_reading(2, protocol_version=3)]}
    body = assert_error(receiver.post_readings(batch), 400, "invalid_body")
    assert {"index": 1, "field": "protocol_version"}.items() <= body["details"][0].items()
    top = {"protocol_version": "9.1", "readings": [make_reading(1)]}
    body = assert_error(receiver.post_readings(top), 400, "invalid_body")
    assert body["details"][0]["field"] == "protocol_version"
    assert receiver.stored() == 0


def test_deprecated_version_is_accepted_and_counted_by_version(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    for _ in range(2):
        response = receiver.client.post(
            "/api/telemetry", json=heartbeat(protocol_version="0.9"), headers=receiver.headers()
        )
        assert response.status_code == 200
    response = receiver.post_readings({"protocol_version": 0, "readings": [make_reading(1)]})
    assert response.get_json() == {"accepted": 1, "duplicates": 0}
    current = receiver.client.post(
        "/api/telemetry", json=heartbeat(protocol_version="1.0"), headers=receiver.headers()
    )
    assert current.status_code == 200
    text = receiver.client.get("/metrics", headers=receiver.operator()).get_data(as_text=True)
    assert sample(text, DEPRECATED_METRIC, version="0", endpoint="telemetry") == 2
    assert sample(text, DEPRECATED_METRIC, version="0", endpoint="readings") == 1
    assert sample(text, DEPRECATED_METRIC, version="1") == 0
