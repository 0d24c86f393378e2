"""POST /api/readings and GET /api/readings[/latest] through Flask's test client."""

from __future__ import annotations

import gzip
import io
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest

from tests.support.app import Receiver
from tests.support.constants import DEVICE, OTHER_DEVICE
from tests.support.responses import assert_error

Reading = Callable[..., dict[str, Any]]


class ExplodingStream(io.BytesIO):
    """A request body that fails the test if anything reads it."""

    def read(self, size: Any = -1) -> bytes:
        raise AssertionError("the body was read although Content-Length was over the limit")

    readline = read  # type: ignore[assignment]


# -- 200 -----------------------------------------------------------------------------------


def test_one_reading_is_stored(receiver: Receiver, make_reading: Reading) -> None:
    response = receiver.post_readings(make_reading(1))
    assert response.status_code == 200
    assert response.get_json() == {"accepted": 1, "duplicates": 0}
    stored = receiver.get("/api/readings").get_json()["readings"]
    assert len(stored) == 1
    assert {k: stored[0][k] for k in make_reading(1)} == make_reading(1)


def test_batch_is_stored_in_order(receiver: Receiver, make_reading: Reading) -> None:
    batch = [make_reading(seq, payload={"cpm": seq}) for seq in range(1, 501)]
    response = receiver.post_readings({"readings": batch})
    assert response.get_json() == {"accepted": 500, "duplicates": 0}
    page = receiver.get("/api/readings", limit=1000).get_json()
    assert [r["seq"] for r in page["readings"]] == list(range(1, 501))
    assert page["next"] is None


def test_resent_batch_counts_duplicates_and_stores_once(
    receiver: Receiver, make_reading: Reading
) -> None:
    first = [make_reading(seq) for seq in range(1, 11)]
    assert receiver.post_readings({"readings": first}).get_json() == {
        "accepted": 10,
        "duplicates": 0,
    }
    overlapping = [make_reading(seq) for seq in range(6, 16)]
    assert receiver.post_readings({"readings": overlapping}).get_json() == {
        "accepted": 5,
        "duplicates": 5,
    }
    assert receiver.post_readings({"readings": overlapping}).get_json() == {
        "accepted": 0,
        "duplicates": 10,
    }
    assert receiver.stored() == 15


def test_same_seq_twice_in_one_batch_is_one_reading(
    receiver: Receiver, make_reading: Reading
) -> None:
    body = {"readings": [make_reading(7), make_reading(7)]}
    assert receiver.post_readings(body).get_json() == {"accepted": 1, "duplicates": 1}
    assert receiver.stored() == 1


def test_same_seq_from_two_devices_are_two_readings(
    receiver: Receiver, make_reading: Reading
) -> None:
    receiver.post_readings(make_reading(1))
    response = receiver.post_readings(make_reading(1, device_id=OTHER_DEVICE), name=OTHER_DEVICE)
    assert response.get_json() == {"accepted": 1, "duplicates": 0}
    assert receiver.stored() == 2


def test_gzip_body_is_accepted(receiver: Receiver, make_reading: Reading) -> None:
    body = gzip.compress(json.dumps({"readings": [make_reading(1), make_reading(2)]}).encode())
    response = receiver.client.post(
        "/api/readings",
        data=body,
        headers=receiver.headers(
            **{"Content-Type": "application/json", "Content-Encoding": "gzip"}
        ),
    )
    assert response.get_json() == {"accepted": 2, "duplicates": 0}


def test_agent_headers_are_accepted(receiver: Receiver, make_reading: Reading) -> None:
    headers = receiver.headers(**{"X-Beam-Device": DEVICE, "X-Beam-Agent-Version": "0.1.0"})
    assert receiver.post_readings(make_reading(1), headers=headers).status_code == 200


def test_timestamp_with_offset_is_stored_in_utc(receiver: Receiver, make_reading: Reading) -> None:
    receiver.post_readings(make_reading(1, timestamp="2026-02-15T20:06:00.5+01:00"))
    stored = receiver.get("/api/readings").get_json()["readings"][0]
    assert stored["timestamp"] == "2026-02-15T19:06:00.5Z"


# -- 400: nothing stored -------------------------------------------------------------------


def test_one_bad_reading_rejects_the_whole_batch(receiver: Receiver, make_reading: Reading) -> None:
    batch = [make_reading(seq) for seq in range(1, 6)]
    batch[3]["timestamp"] = "yesterday"
    body = assert_error(receiver.post_readings({"readings": batch}), 400, "invalid_body")
    assert body["details"] == [
        {"index": 3, "field": "timestamp", "message": body["details"][0]["message"]}
    ]
    assert "yesterday" in body["details"][0]["message"]
    assert receiver.stored() == 0


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"seq": "12"}, "seq", "integer"),
        ({"seq": 1.5}, "seq", "integer"),
        ({"seq": True}, "seq", "integer"),
        ({"seq": 0}, "seq", "between 1"),
        ({"seq": 2**63}, "seq", "between 1"),
        ({"device_id": 42}, "device_id", "string"),
        ({"sensor": ""}, "sensor", "empty"),
        ({"sensor": "x" * 129}, "sensor", "at most 128"),
        ({"sensor": "tab\there"}, "sensor", "control"),
        ({"sensor_type": None}, "sensor_type", "string"),
        ({"payload": [1, 2]}, "payload", "object"),
        ({"payload": "cpm=38"}, "payload", "object"),
        ({"payload": {"cpm": 2**64}}, "payload.cpm", "64-bit"),
        ({"payload": {"deep": {"er": [1, -(2**63) - 1]}}}, "payload.deep.er[1]", "64-bit"),
        ({"timestamp": 1771182360}, "timestamp", "RFC 3339"),
        ({"timestamp": "2026-02-15 19:06:00Z"}, "timestamp", "RFC 3339"),
        ({"timestamp": "2026-02-15T19:06:00"}, "timestamp", "RFC 3339"),
        ({"timestamp": "2026-02-30T19:06:00Z"}, "timestamp", "day is out of range"),
        ({"timestamp": "1969-12-31T23:59:59Z"}, "timestamp", "before 1970"),
        ({"timestamp": "2026-02-15T19:06:00Z\n"}, "timestamp", "RFC 3339"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_bad_field_is_named_with_its_index(
    receiver: Receiver, make_reading: Reading, change: dict[str, Any], field: str, words: str
) -> None:
    batch = [make_reading(1), make_reading(2, **change)]
    body = assert_error(receiver.post_readings({"readings": batch}), 400, "invalid_body")
    assert {"index": 1, "field": field} == {k: body["details"][0][k] for k in ("index", "field")}
    assert words in body["details"][0]["message"]
    assert receiver.stored() == 0


@pytest.mark.parametrize(
    "missing", ["device_id", "sensor", "sensor_type", "payload", "timestamp", "seq"]
)
def test_missing_field_is_named(receiver: Receiver, make_reading: Reading, missing: str) -> None:
    reading = make_reading(1)
    del reading[missing]
    body = assert_error(receiver.post_readings(reading), 400, "invalid_body")
    assert {"index": 0, "field": missing, "message": "is required"} in body["details"]


def test_timestamp_far_in_the_future_is_refused(receiver: Receiver, make_reading: Reading) -> None:
    future = datetime.now(timezone.utc) + timedelta(days=2)
    body = assert_error(
        receiver.post_readings(make_reading(1, timestamp=future.strftime("%Y-%m-%dT%H:%M:%SZ"))),
        400,
        "invalid_body",
    )
    assert "clock" in body["details"][0]["message"]
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    ok = receiver.post_readings(make_reading(2, timestamp=soon.strftime("%Y-%m-%dT%H:%M:%SZ")))
    assert ok.status_code == 200


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(receiver: Receiver, literal: str) -> None:
    text = (
        '{"device_id": "beamrider-0001", "sensor": "g", "sensor_type": "t", "seq": 1,'
        f' "timestamp": "2026-02-15T19:06:00Z", "payload": {{"cpm": {literal}}}}}'
    )
    response = receiver.client.post(
        "/api/readings",
        data=text,
        headers=receiver.headers(**{"Content-Type": "application/json"}),
    )
    body = assert_error(response, 400, "invalid_body")
    assert body["details"][0]["field"] == "payload.cpm"
    assert "finite" in body["details"][0]["message"]
    assert receiver.stored() == 0


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "invalid_json"),
        (b"   ", "invalid_json"),
        (b"{", "invalid_json"),
        (b'{"readings": [}', "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b'{"payload": {"cpm": ' + b"9" * 5000 + b"}}", "invalid_json"),
        (b"[]", "invalid_body"),
        (b"42", "invalid_body"),
        (b'"reading"', "invalid_body"),
        (b"null", "invalid_body"),
        (b'{"readings": []}', "invalid_body"),
        (b'{"readings": {}}', "invalid_body"),
        (b'{"readings": [1, "two", null]}', "invalid_body"),
        (b'{"readings": [], "device_id": "beamrider-0001"}', "invalid_body"),
        (b'{"device_id": "beamrider-0001", "sensor": "\\ud800"}', "invalid_body"),
    ],
)
def test_malformed_bodies_get_400(receiver: Receiver, data: bytes, error: str) -> None:
    response = receiver.client.post(
        "/api/readings", data=data, headers=receiver.headers(**{"Content-Type": "application/json"})
    )
    assert_error(response, 400, error)
    assert receiver.stored() == 0


def test_at_most_fifty_details_are_listed(receiver: Receiver, make_reading: Reading) -> None:
    batch = [make_reading(seq, seq="bad") for seq in range(1, 201)]
    body = assert_error(receiver.post_readings({"readings": batch}), 400, "invalid_body")
    assert len(body["details"]) == 51
    assert body["details"][-1]["message"] == "and 150 more problems"


def test_bad_gzip_is_400(receiver: Receiver) -> None:
    response = receiver.client.post(
        "/api/readings",
        data=b"this is not gzip",
        headers=receiver.headers(
            **{"Content-Type": "application/json", "Content-Encoding": "gzip"}
        ),
    )
    assert_error(response, 400, "invalid_gzip")
    truncated = gzip.compress(b'{"readings": []}' * 100)[:-12]
    response = receiver.client.post(
        "/api/readings",
        data=truncated,
        headers=receiver.headers(
            **{"Content-Type": "application/json", "Content-Encoding": "gzip"}
        ),
    )
    assert_error(response, 400, "invalid_gzip")


# -- 401 / 403 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic ZGV2aWNlOnRva2Vu", "Bearer not-a-known-token"],
)
def test_missing_or_unknown_token_is_401(
    receiver: Receiver, make_reading: Reading, authorization: Any
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = receiver.post_readings(make_reading(1), headers=headers or {"X-Nothing": "1"})
    body = assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert body["message"]
    assert receiver.stored() == 0


def test_device_writes_only_as_itself(receiver: Receiver, make_reading: Reading) -> None:
    batch = [make_reading(1), make_reading(2, device_id=OTHER_DEVICE)]
    body = assert_error(receiver.post_readings({"readings": batch}), 403, "forbidden")
    assert body["details"][0]["index"] == 1
    assert body["details"][0]["field"] == "device_id"
    assert receiver.stored() == 0


def test_x_beam_device_must_match_the_token(receiver: Receiver, make_reading: Reading) -> None:
    headers = receiver.headers(**{"X-Beam-Device": OTHER_DEVICE})
    assert_error(receiver.post_readings(make_reading(1), headers=headers), 403, "forbidden")


def test_operator_token_cannot_write(receiver: Receiver, make_reading: Reading) -> None:
    assert_error(receiver.post_readings(make_reading(1), name="ops"), 403, "forbidden")


def test_device_token_cannot_read(receiver: Receiver) -> None:
    response = receiver.client.get("/api/readings", headers=receiver.headers())
    assert_error(response, 403, "forbidden")
    response = receiver.client.get("/api/readings/latest", headers=receiver.headers())
    assert_error(response, 403, "forbidden")


def test_reads_need_a_token(receiver: Receiver) -> None:
    assert_error(receiver.client.get("/api/readings"), 401, "unauthorized")
    assert_error(receiver.client.get("/api/readings/latest"), 401, "unauthorized")


# -- 413 / 415 -----------------------------------------------------------------------------


def test_content_length_over_the_limit_is_413_before_reading(
    make_receiver: Callable[..., Receiver],
) -> None:
    receiver = make_receiver(max_body_bytes=1000)
    response = receiver.client.post(
        "/api/readings",
        input_stream=ExplodingStream(),
        headers=receiver.headers(**{"Content-Type": "application/json"}),
        environ_overrides={"CONTENT_LENGTH": "1001"},
    )
    assert_error(response, 413, "payload_too_large")


def test_chunked_body_over_the_limit_is_413(
    make_receiver: Callable[..., Receiver], make_reading: Reading
) -> None:
    receiver = make_receiver(max_body_bytes=1000)
    body = json.dumps({"readings": [make_reading(seq) for seq in range(1, 50)]}).encode()
    response = receiver.client.post(
        "/api/readings",
        input_stream=io.BytesIO(body),
        headers=receiver.headers(
            **{"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        ),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_error(response, 413, "payload_too_large")
    assert receiver.stored() == 0


def test_chunked_body_under_the_limit_is_read(receiver: Receiver, make_reading: Reading) -> None:
    body = json.dumps(make_reading(1)).encode()
    response = receiver.client.post(
        "/api/readings",
        input_stream=io.BytesIO(body),
        headers=receiver.headers(
            **{"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        ),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.get_json() == {"accepted": 1, "duplicates": 0}


def test_gzip_bomb_is_413(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(max_body_bytes=100_000)
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]", compresslevel=9)
    assert len(bomb) < 100_000
    response = receiver.client.post(
        "/api/readings",
        data=bomb,
        headers=receiver.headers(
            **{"Content-Type": "application/json", "Content-Encoding": "gzip"}
        ),
    )
    body = assert_error(response, 413, "payload_too_large")
    assert "decompressed" in body["message"]


def test_gzip_just_under_the_limit_is_accepted(
    make_receiver: Callable[..., Receiver], make_reading: Reading
) -> None:
    receiver = make_receiver(max_body_bytes=50_000)
    batch = [make_reading(seq) for seq in range(1, 150)]
    raw = json.dumps({"readings": batch}).encode()
    assert 30_000 < len(raw) < 50_000
    response = receiver.client.post(
        "/api/readings",
        data=gzip.compress(raw),
        headers=receiver.headers(
            **{"Content-Type": "application/json", "Content-Encoding": "gzip"}
        ),
    )
    assert response.get_json() == {"accepted": 149, "duplicates": 0}


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json; charset=latin-1"},
        {"Content-Type": "application/json", "Content-Encoding": "br"},
        {"Content-Type": "application/json", "Content-Encoding": "gzip, gzip"},
        {},
    ],
)
def test_not_json_is_415(
    receiver: Receiver, make_reading: Reading, headers: dict[str, str]
) -> None:
    response = receiver.client.post(
        "/api/readings",
        data=json.dumps(make_reading(1)),
        headers=receiver.headers(**headers),
    )
    assert_error(response, 415, "unsupported_media_type")
    assert receiver.stored() == 0


def test_json_with_charset_and_vendor_type_is_accepted(
    receiver: Receiver, make_reading: Reading
) -> None:
    for seq, content_type in enumerate(
        ["application/json; charset=utf-8", "application/vnd.beam+json"], start=1
    ):
        response = receiver.client.post(
            "/api/readings",
            data=json.dumps(make_reading(seq)),
            headers=receiver.headers(**{"Content-Type": content_type}),
        )
        assert response.status_code == 200


# -- 503 -----------------------------------------------------------------------------------


def test_database_locked_beyond_busy_timeout_is_503(
    make_receiver: Callable[..., Receiver],
    make_reading: Reading,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = make_receiver(busy_timeout_ms=50)
    headers = receiver.headers(**{"X-Request-ID": "locked-1"})
    with receiver.write_lock_held(), caplog.at_level(logging.ERROR, logger="beam_receiver.errors"):
        response = receiver.post_readings(make_reading(1), headers=headers)
    body = assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0
    # The database's words go to the log with the request id, never into the answer.
    assert "lock" not in response.get_data(as_text=True)
    assert body["details"] == []
    logged = [r for r in caplog.records if r.name == "beam_receiver.errors"]
    assert [(r.request_id, "lock" in r.error) for r in logged] == [("locked-1", True)]  # type: ignore[attr-defined]
    assert receiver.post_readings(make_reading(1)).get_json() == {"accepted": 1, "duplicates": 0}


# -- GET /api/readings ---------------------------------------------------------------------


@pytest.fixture
def mixed(receiver: Receiver, make_reading: Reading) -> Receiver:
    """30 readings: two devices, two sensors, one per minute from 19:00."""
    base = datetime(2026, 2, 15, 19, 0, tzinfo=timezone.utc)
    for device in (DEVICE, OTHER_DEVICE):
        batch = [
            make_reading(
                seq,
                device_id=device,
                sensor="geiger" if seq % 3 else "bme280",
                sensor_type="mightyohm" if seq % 3 else "bme280",
                timestamp=(base + timedelta(minutes=seq)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                payload={"value": seq},
            )
            for seq in range(1, 16)
        ]
        assert receiver.post_readings({"readings": batch}, name=device).status_code == 200
    return receiver


def test_filters_combine(mixed: Receiver) -> None:
    def seqs(**params: Any) -> list[tuple[str, int]]:
        response = mixed.get("/api/readings", **params)
        assert response.status_code == 200, response.get_json()
        return [(r["device_id"], r["seq"]) for r in response.get_json()["readings"]]

    assert len(seqs()) == 30
    assert seqs(device_id=OTHER_DEVICE) == [(OTHER_DEVICE, s) for s in range(1, 16)]
    assert seqs(device_id=DEVICE, sensor="bme280") == [(DEVICE, s) for s in (3, 6, 9, 12, 15)]
    assert seqs(sensor_type="bme280", device_id=DEVICE) == seqs(device_id=DEVICE, sensor="bme280")
    assert seqs(device_id=DEVICE, start="2026-02-15T19:05:00Z", end="2026-02-15T19:08:00Z") == [
        (DEVICE, 5),
        (DEVICE, 6),
        (DEVICE, 7),
    ]
    assert seqs(start="2026-02-15T19:14:00Z") == [
        (DEVICE, 14),
        (DEVICE, 15),
        (OTHER_DEVICE, 14),
        (OTHER_DEVICE, 15),
    ]
    assert seqs(device_id="nobody") == []


def test_cursor_pages_through_everything_once(mixed: Receiver, make_reading: Reading) -> None:
    seen: list[tuple[str, int]] = []
    params: dict[str, Any] = {"limit": 7}
    pages = 0
    while True:
        body = mixed.get("/api/readings", **params).get_json()
        seen += [(r["device_id"], r["seq"]) for r in body["readings"]]
        pages += 1
        if body["next"] is None:
            break
        params["after"] = body["next"]
        if pages == 2:  # a reading stored mid-way appears once, at the end
            mixed.post_readings(make_reading(100))
    assert pages == 5
    assert len(seen) == 31 == len(set(seen))
    assert seen[-1] == (DEVICE, 100)


def test_last_full_page_has_no_next(mixed: Receiver) -> None:
    body = mixed.get("/api/readings", limit=30).get_json()
    assert len(body["readings"]) == 30 and body["next"] is None
    body = mixed.get("/api/readings", limit=29).get_json()
    assert body["next"] is not None
    rest = mixed.get("/api/readings", limit=29, after=body["next"]).get_json()
    assert len(rest["readings"]) == 1 and rest["next"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"after": "abc"}, "after"),
        ({"after": "99999999999999999999"}, "after"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-13-01T00:00:00Z"}, "end"),
        ({"start": "2026-02-15T19:10:00Z", "end": "2026-02-15T19:00:00Z"}, "end"),
        ({"device": "beamrider-0001"}, "device"),
        ({"sensor": ""}, "sensor"),
        ({"device_id": "'; DROP TABLE readings; --", "sensor": "x" * 200}, "sensor"),
    ],
)
def test_bad_query_is_400_naming_the_parameter(
    mixed: Receiver, params: dict[str, str], field: str
) -> None:
    body = assert_error(mixed.get("/api/readings", **params), 400, "invalid_query")
    assert field in [d["field"] for d in body["details"]]


def test_repeated_parameter_is_400(mixed: Receiver) -> None:
    response = mixed.client.get("/api/readings?device_id=a&device_id=b", headers=mixed.operator())
    body = assert_error(response, 400, "invalid_query")
    assert body["details"][0]["field"] == "device_id"


def test_sql_in_parameters_is_only_data(mixed: Receiver) -> None:
    hostile = "beamrider-0001' OR '1'='1"
    body = mixed.get("/api/readings", device_id=hostile).get_json()
    assert body == {"readings": [], "next": None}
    assert mixed.stored() == 30


def test_latest_per_sensor(mixed: Receiver, make_reading: Reading) -> None:
    # An older reading arriving late does not become the latest.
    mixed.post_readings(make_reading(50, timestamp="2026-02-15T18:00:00Z"))
    body = mixed.get("/api/readings/latest", device_id=DEVICE).get_json()
    assert [(r["sensor"], r["seq"]) for r in body["readings"]] == [("bme280", 15), ("geiger", 14)]
    everyone = mixed.get("/api/readings/latest").get_json()["readings"]
    assert [(r["device_id"], r["sensor"]) for r in everyone] == [
        (DEVICE, "bme280"),
        (DEVICE, "geiger"),
        (OTHER_DEVICE, "bme280"),
        (OTHER_DEVICE, "geiger"),
    ]
    assert_error(mixed.get("/api/readings/latest", sensor="geiger"), 400, "invalid_query")
