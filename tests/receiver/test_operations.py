"""/healthz, /metrics, request ids, structured logs and JSON errors on API paths."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Callable

import pytest

from beam_receiver.requestlog import LABELLED_METHODS, JsonFormatter

from tests.support.app import Receiver
from tests.support.constants import DEVICE
from tests.support.responses import assert_error, sample


def test_healthz_is_200_while_the_database_answers(receiver: Receiver) -> None:
    response = receiver.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] == "ok"
    assert response.get_json()["schema_version"] >= 1


@pytest.mark.sqlite_only  # PostgreSQL's: test_backends.py
def test_healthz_is_503_when_the_database_is_gone(receiver: Receiver) -> None:
    receiver.state.database.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{receiver.directory / 'receiver.db'}{suffix}").unlink(missing_ok=True)
    response = receiver.client.get("/healthz")
    assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.sqlite_only  # PostgreSQL's: test_backends.py
def test_database_that_vanished_makes_reads_503_not_500(receiver: Receiver) -> None:
    receiver.state.database.close()
    (receiver.directory / "receiver.db").unlink()
    response = receiver.get("/api/readings")
    assert_error(response, 503, "unavailable")
    assert "Retry-After" in response.headers


def test_metrics_count_requests_and_readings(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    receiver.post_readings({"readings": [make_reading(1), make_reading(2)]})
    receiver.post_readings({"readings": [make_reading(2), make_reading(3)]})
    receiver.post_readings({"readings": [make_reading(4), make_reading(5, seq="x")]})
    receiver.client.post("/api/readings", json=make_reading(9))  # no token
    receiver.client.post(
        "/api/telemetry",
        json={"node_id": DEVICE, "timestamp": "2026-02-15T19:06:00Z"},
        headers=receiver.headers(),
    )
    response = receiver.client.get("/metrics", headers=receiver.operator())
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert sample(text, "beam_receiver_readings_accepted_total", device_id=DEVICE) == 3
    assert sample(text, "beam_receiver_readings_duplicates_total", device_id=DEVICE) == 1
    assert sample(text, "beam_receiver_readings_rejected_total", error="invalid_body") == 2
    assert sample(text, "beam_receiver_heartbeats_total", node_id=DEVICE) == 1
    assert (
        sample(
            text,
            "beam_receiver_http_requests_total",
            endpoint="/api/readings",
            method="POST",
            code="200",
        )
        == 2
    )
    assert sample(text, "beam_receiver_http_requests_total", code="401") == 1
    assert sample(text, "beam_receiver_node_status", node_id=DEVICE, status="online") == 1
    assert sample(text, "beam_receiver_node_last_seen_age_seconds", node_id=DEVICE) >= 0
    assert sample(text, "beam_receiver_nodes", status="offline") == 1  # beamrider-0003
    assert "beam_receiver_http_request_duration_seconds_bucket" in text


def test_metrics_carry_each_nodes_queue_depth_and_dropped_count(receiver: Receiver) -> None:
    """What the shipped alerting rules read (BeamQueueGrowing, BeamReadingsDropped)."""
    heartbeat = {
        "node_id": DEVICE,
        "timestamp": "2026-02-15T19:06:00Z",
        "metrics": {"queue_depth": 1234, "dropped": 7, "dead_letters": 3},
    }
    response = receiver.client.post("/api/telemetry", json=heartbeat, headers=receiver.headers())
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    text = receiver.client.get("/metrics", headers=receiver.operator()).get_data(as_text=True)
    assert sample(text, "beam_receiver_node_queue_depth", node_id=DEVICE) == 1234
    assert sample(text, "beam_receiver_node_dropped_readings", node_id=DEVICE) == 7
    assert sample(text, "beam_receiver_node_dead_letters", node_id=DEVICE) == 3
    # a node that never sent a heartbeat has no such series (absent, not 0)
    assert 'beam_receiver_node_queue_depth{node_id="beamrider-0003"}' not in text


def test_each_app_has_its_own_registry(
    make_receiver: Callable[..., Receiver], make_reading: Callable[..., dict[str, Any]]
) -> None:
    first, second = make_receiver(), make_receiver()
    first.post_readings(make_reading(1))
    text = second.client.get("/metrics", headers=second.operator()).get_data(as_text=True)
    assert sample(text, "beam_receiver_readings_accepted_total", device_id=DEVICE) == 0


def test_metrics_are_for_operators_by_default(receiver: Receiver) -> None:
    assert receiver.state.config.metrics_require_operator
    assert_error(receiver.client.get("/metrics"), 401, "unauthorized")
    assert_error(receiver.client.get("/metrics", headers=receiver.headers()), 403, "forbidden")
    assert receiver.client.get("/metrics", headers=receiver.operator()).status_code == 200
    receiver.login()  # a dashboard session is an operator too
    assert receiver.client.get("/metrics").status_code == 200


def test_metrics_can_be_opened_to_anyone(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(metrics_require_operator=False)
    response = receiver.client.get("/metrics")
    assert response.status_code == 200
    assert "beam_receiver_http_requests_total" in response.get_data(as_text=True)


def metric_labels(text: str, name: str) -> list[dict[str, str]]:
    """The label sets of one metric's samples in Prometheus text format."""
    found = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = line[len(name) + 1 : line.rindex("}")]
            found.append(dict(re.findall(r'([a-z_]+)="([^"]*)"', labels)))
    return found


def test_metric_labels_stay_bounded_whatever_clients_send(receiver: Receiver) -> None:
    """Invented methods count as "other", unknown paths as "unmatched": a client cannot
    make new series without bound."""
    routes = {rule.rule for rule in receiver.app.url_map.iter_rules()}

    def scrape() -> list[dict[str, str]]:
        text = receiver.get("/metrics").get_data(as_text=True)
        return metric_labels(text, "beam_receiver_http_requests_total")

    def noise(tag: str) -> None:
        for number in range(40):
            method = ("BREW", f"X{tag}{number}", "PROPFIND", "get", "GET", "POST")[number % 6]
            path = (f"/api/{tag}-{number}", f"/{tag}/{number}", "/api/readings", "/healthz")
            receiver.client.open(path[number % 4], method=method)

    noise("first")
    first = scrape()
    noise("second")
    second = scrape()
    assert {s["method"] for s in second} <= set(LABELLED_METHODS) | {"other"}
    assert "other" in {s["method"] for s in second}
    assert {s["endpoint"] for s in second} <= routes | {"unmatched"}
    assert all(re.fullmatch(r"[1-5][0-9][0-9]", s["code"]) for s in second)
    # The second burst, with methods and paths never seen before, added no series.
    keys = {tuple(sorted(s.items())) for s in first}
    assert {tuple(sorted(s.items())) for s in second} - keys <= {
        (("code", "200"), ("endpoint", "/metrics"), ("method", "GET"))
    }


def test_request_id_is_echoed_or_made(receiver: Receiver) -> None:
    given = receiver.client.get("/healthz", headers={"X-Request-ID": "abc-123.def"})
    assert given.headers["X-Request-ID"] == "abc-123.def"
    made = receiver.client.get("/healthz")
    other = receiver.client.get("/healthz")
    assert len(made.headers["X-Request-ID"]) == 32
    assert made.headers["X-Request-ID"] != other.headers["X-Request-ID"]
    hostile = receiver.client.get("/healthz", headers={"X-Request-ID": 'x"\\' + "y" * 300})
    assert hostile.headers["X-Request-ID"] != 'x"\\' + "y" * 300
    assert len(hostile.headers["X-Request-ID"]) == 32


def test_each_request_is_logged_with_its_id(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="beam_receiver.access"):
        receiver.client.get("/api/nodes", headers={**receiver.operator(), "X-Request-ID": "r-1"})
    records = [r for r in caplog.records if r.name == "beam_receiver.access"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == "r-1"
    assert line["status"] == 200
    assert line["method"] == "GET"
    assert line["path"] == "/api/nodes"
    assert line["endpoint"] == "/api/nodes"
    assert line["caller"] == "operator:ops"
    assert line["level"] == "info"
    assert isinstance(line["duration_ms"], float)


def test_json_formatter_includes_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("beam_receiver.test").makeRecord(
            "beam_receiver.test", logging.ERROR, __file__, 1, "failed %s", ("x",), None
        )
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed x"
    assert "ValueError: boom" in line["exception"]


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/api/nothing-here", 404, "not_found"),
        ("GET", "/api", 404, "not_found"),
        ("DELETE", "/api/readings", 405, "method_not_allowed"),
        ("PUT", "/api/nodes", 405, "method_not_allowed"),
        ("POST", "/healthz", 405, "method_not_allowed"),
    ],
)
def test_api_errors_are_json(
    receiver: Receiver, method: str, path: str, status: int, error: str
) -> None:
    response = receiver.client.open(path, method=method, headers=receiver.operator())
    assert_error(response, status, error)
    if status == 405:
        assert "GET" in response.headers["Allow"] or "POST" in response.headers["Allow"]


def test_unexpected_error_is_a_json_500_and_logged(
    make_receiver: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    receiver = make_receiver()

    def explode() -> str:
        raise RuntimeError("a bug")

    receiver.app.add_url_rule("/api/explode", "explode", explode)
    with caplog.at_level(logging.ERROR, logger="beam_receiver"):
        response = receiver.client.get("/api/explode", headers={"X-Request-ID": "bug-1"})
    body = assert_error(response, 500, "internal_error")
    assert "a bug" not in body["message"]  # internals stay in the log
    assert response.headers["X-Request-ID"] == "bug-1"
    logged = [r for r in caplog.records if r.name == "beam_receiver.errors"]
    assert logged and logged[0].exc_info is not None


def test_pages_outside_the_api_keep_html_errors(receiver: Receiver) -> None:
    response = receiver.client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_dashboard_sits_behind_the_login(receiver: Receiver) -> None:
    response = receiver.client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
