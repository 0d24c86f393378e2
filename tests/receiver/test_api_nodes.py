"""Heartbeats, registration and fleet status: POST /api/telemetry, /api/nodes/register,
GET /api/nodes[/<id>] and the fleet module the dashboard shares with the API."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest

from beam_receiver import fleet
from beam_receiver.storage import Heartbeat

from tests.support.app import Receiver
from tests.support.constants import DEVICE, OTHER_DEVICE
from tests.support.responses import assert_error


def heartbeat(node_id: str = DEVICE, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "node_id": node_id,
        "role": "agent",
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "uptime_seconds": 12.5,
        "software_version": "0.1.0",
        "ip_address": "192.0.2.10",
        "metrics": {"queue_depth": 42, "disk_percent": None, "sensor_errors": {"geiger": 0}},
        "tags": {"site": "roof"},
        "protocol_version": 1,
    }
    body.update(fields)
    return body


def registration(node_id: str = DEVICE, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "node_id": node_id,
        "role": "agent",
        "hostname": "beamrider-0001.local",
        "ip_address": "192.0.2.10",
        "software_version": "0.1.0",
        "tags": {"site": "roof", "rack": "3"},
    }
    body.update(fields)
    return body


def nodes_by_id(receiver: Receiver) -> dict[str, dict[str, Any]]:
    response = receiver.get("/api/nodes")
    assert response.status_code == 200
    return {node["node_id"]: node for node in response.get_json()["nodes"]}


def test_heartbeat_makes_a_node_online(receiver: Receiver) -> None:
    response = receiver.client.post("/api/telemetry", json=heartbeat(), headers=receiver.headers())
    assert response.status_code == 200
    assert response.get_json()["node_id"] == DEVICE
    node = receiver.get(f"/api/nodes/{DEVICE}").get_json()
    assert node["status"] == "online"
    assert node["queue_depth"] == 42
    assert node["software_version"] == "0.1.0"
    assert node["ip_address"] == "192.0.2.10"
    assert node["uptime_seconds"] == 12.5
    assert node["metrics"]["sensor_errors"] == {"geiger": 0}
    assert node["last_seen_age_s"] is not None and node["last_seen_age_s"] < 3600
    # The inventory's role and tags win; reported tags it does not set are kept.
    assert node["role"] == "agent"
    assert node["tags"] == {"site": "lab"}


def test_expected_node_that_never_reported_is_offline(receiver: Receiver) -> None:
    nodes = nodes_by_id(receiver)
    assert nodes["beamrider-0003"]["status"] == "offline"
    assert nodes["beamrider-0003"]["last_seen"] is None
    assert nodes["beamrider-0003"]["expected"] is True


def test_node_missing_from_the_inventory_is_unexpected(receiver: Receiver) -> None:
    receiver.client.post(
        "/api/telemetry", json=heartbeat(OTHER_DEVICE), headers=receiver.headers(OTHER_DEVICE)
    )
    node = nodes_by_id(receiver)[OTHER_DEVICE]
    assert node["status"] == "unexpected"
    assert node["expected"] is False
    assert node["tags"] == {"site": "roof"}


def test_without_an_inventory_no_node_is_unexpected(
    make_receiver: Callable[..., Receiver],
) -> None:
    receiver = make_receiver(expected_nodes_file=None)
    receiver.client.post(
        "/api/telemetry", json=heartbeat(OTHER_DEVICE), headers=receiver.headers(OTHER_DEVICE)
    )
    nodes = nodes_by_id(receiver)
    assert list(nodes) == [OTHER_DEVICE]
    assert nodes[OTHER_DEVICE]["status"] == "online"


@pytest.mark.parametrize(
    ("age_intervals", "status"),
    [(1.5, "online"), (3, "degraded"), (6, "offline")],
)
def test_status_follows_heartbeat_age(
    receiver: Receiver, age_intervals: float, status: str
) -> None:
    seen_ms = int((time.time() - age_intervals * 30) * 1000)
    beat = Heartbeat(DEVICE, "2026-02-15T19:06:00Z", "agent", 1.0, "0.1.0", None, 1, 0, "{}", "{}")
    receiver.state.database.record_heartbeat(beat, received_at_ms=seen_ms)
    assert nodes_by_id(receiver)[DEVICE]["status"] == status


def test_registration_records_the_node(receiver: Receiver) -> None:
    response = receiver.client.post(
        "/api/nodes/register", json=registration(), headers=receiver.headers()
    )
    assert response.status_code == 200
    assert response.get_json()["registered"] is True
    node = receiver.get(f"/api/nodes/{DEVICE}").get_json()
    assert node["hostname"] == "beamrider-0001.local"
    assert node["registered_at"] is not None
    assert node["status"] == "offline"  # registered, but no heartbeat yet
    receiver.client.post("/api/telemetry", json=heartbeat(), headers=receiver.headers())
    node = receiver.get(f"/api/nodes/{DEVICE}").get_json()
    assert node["hostname"] == "beamrider-0001.local"  # a heartbeat keeps the hostname
    assert node["status"] == "online"


def test_registration_of_an_unknown_node_is_visible(receiver: Receiver) -> None:
    receiver.client.post(
        "/api/nodes/register",
        json=registration(OTHER_DEVICE, ip_address="2001:db8::1", role="gateway"),
        headers=receiver.headers(OTHER_DEVICE),
    )
    node = nodes_by_id(receiver)[OTHER_DEVICE]
    assert node["status"] == "unexpected"
    assert node["role"] == "gateway"
    assert node["ip_address"] == "2001:db8::1"
    assert node["tags"] == {"site": "roof", "rack": "3"}


def test_heartbeat_history_is_kept(receiver: Receiver) -> None:
    for depth in (5, 6, 7):
        metrics = {"queue_depth": depth}
        receiver.client.post(
            "/api/telemetry", json=heartbeat(metrics=metrics), headers=receiver.headers()
        )
    events = receiver.get(f"/api/nodes/{DEVICE}/telemetry").get_json()["events"]
    assert [event["metrics"]["queue_depth"] for event in events] == [7, 6, 5]
    assert receiver.get(f"/api/nodes/{DEVICE}").get_json()["queue_depth"] == 7
    assert receiver.get("/api/nodes/nobody/telemetry").status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/telemetry", heartbeat(OTHER_DEVICE)),
        ("/api/nodes/register", registration(OTHER_DEVICE)),
    ],
)
def test_a_node_reports_only_about_itself(
    receiver: Receiver, path: str, body: dict[str, Any]
) -> None:
    response = receiver.client.post(path, json=body, headers=receiver.headers())
    details = assert_error(response, 403, "forbidden")["details"]
    assert details[0]["field"] == "node_id"
    assert OTHER_DEVICE not in nodes_by_id(receiver)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timestamp": "soon"}, "timestamp"),
        ({"uptime_seconds": -1}, "uptime_seconds"),
        ({"uptime_seconds": "long"}, "uptime_seconds"),
        ({"ip_address": "999.1.1.1"}, "ip_address"),
        ({"ip_address": 17}, "ip_address"),
        ({"metrics": [1]}, "metrics"),
        ({"metrics": {"load": 2**70}}, "metrics.load"),
        ({"tags": {"site": 1}}, "tags.site"),
        ({"tags": "site=roof"}, "tags"),
        ({"protocol_version": "one"}, "protocol_version"),
        ({"protocol_version": 2}, "protocol_version"),
        ({"protocol_version": True}, "protocol_version"),
        ({"role": ""}, "role"),
        ({"firmware": "x"}, "firmware"),
        ({"node_id": None}, "node_id"),
    ],
)
def test_bad_heartbeat_is_400_naming_the_field(
    receiver: Receiver, change: dict[str, Any], field: str
) -> None:
    response = receiver.client.post(
        "/api/telemetry", json=heartbeat(**change), headers=receiver.headers()
    )
    body = assert_error(response, 400, "invalid_body")
    assert field in [detail["field"] for detail in body["details"]]
    assert nodes_by_id(receiver)[DEVICE]["last_seen"] is None


def test_heartbeat_from_far_in_the_future_is_400(receiver: Receiver) -> None:
    future = (datetime.now(timezone.utc) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = receiver.client.post(
        "/api/telemetry", json=heartbeat(timestamp=future), headers=receiver.headers()
    )
    assert_error(response, 400, "invalid_body")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hostname": 5}, "hostname"),
        ({"ip_address": "localhost"}, "ip_address"),
        ({"tags": ["a"]}, "tags"),
        ({"serial": "x"}, "serial"),
    ],
)
def test_bad_registration_is_400(receiver: Receiver, change: dict[str, Any], field: str) -> None:
    response = receiver.client.post(
        "/api/nodes/register", json=registration(**change), headers=receiver.headers()
    )
    body = assert_error(response, 400, "invalid_body")
    assert field in [detail["field"] for detail in body["details"]]


def test_registration_and_heartbeat_need_json(receiver: Receiver) -> None:
    for path in ("/api/telemetry", "/api/nodes/register"):
        response = receiver.client.post(path, data="node_id=x", headers=receiver.headers())
        assert_error(response, 415, "unsupported_media_type")
        response = receiver.client.post(
            path, data="[1]", headers=receiver.headers(**{"Content-Type": "application/json"})
        )
        assert_error(response, 400, "invalid_body")


def test_node_endpoints_need_the_right_token(receiver: Receiver) -> None:
    assert_error(receiver.client.get("/api/nodes"), 401, "unauthorized")
    assert_error(receiver.client.get("/api/nodes", headers=receiver.headers()), 403, "forbidden")
    assert_error(
        receiver.client.post("/api/telemetry", json=heartbeat(), headers=receiver.operator()),
        403,
        "forbidden",
    )
    assert_error(
        receiver.client.post("/api/nodes/register", json=registration()), 401, "unauthorized"
    )


def test_unknown_node_is_404(receiver: Receiver) -> None:
    body = assert_error(receiver.get("/api/nodes/nobody"), 404, "not_found")
    assert "nobody" in body["message"]


def test_node_list_takes_no_parameters(receiver: Receiver) -> None:
    assert_error(receiver.get("/api/nodes", status="online"), 400, "invalid_query")


def test_fleet_module_returns_what_the_api_returns(receiver: Receiver) -> None:
    receiver.client.post("/api/telemetry", json=heartbeat(), headers=receiver.headers())
    api_nodes = receiver.get("/api/nodes").get_json()["nodes"]
    with receiver.app.app_context():
        listed = fleet.list_nodes()
        one = fleet.get_node(DEVICE)
        missing = fleet.get_node("nobody")

    def strip(node: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in node.items() if k != "last_seen_age_s"}  # it moves with time

    assert [strip(n) for n in listed] == [strip(n) for n in api_nodes]
    assert one is not None and strip(one) == strip(api_nodes[0])
    assert missing is None


def test_inventory_changes_are_picked_up(receiver: Receiver) -> None:
    path = receiver.directory / "expected-nodes.toml"
    path.write_text('[nodes."beamrider-0009"]\nrole = "sensor"\n')
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    nodes = nodes_by_id(receiver)
    assert set(nodes) == {"beamrider-0009"}
    assert nodes["beamrider-0009"]["role"] == "sensor"


def test_old_heartbeats_are_pruned(make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(telemetry_retention_days=1)
    database = receiver.state.database
    now_ms = int(time.time() * 1000)
    beat = Heartbeat(DEVICE, "2026-02-15T19:06:00Z", "agent", 1.0, "0.1.0", None, 1, 0, "{}", "{}")
    database.record_heartbeat(beat, received_at_ms=now_ms - 3 * 86_400_000)
    database.record_heartbeat(beat, received_at_ms=now_ms - 2 * 86_400_000)
    assert len(database.telemetry_events(DEVICE)) == 2
    response = receiver.client.post("/api/telemetry", json=heartbeat(), headers=receiver.headers())
    assert response.status_code == 200
    events = receiver.get(f"/api/nodes/{DEVICE}/telemetry").get_json()["events"]
    assert len(events) == 1 and events[0]["metrics"]["queue_depth"] == 42


def test_heartbeat_needs_a_device_token_and_a_small_body(
    make_receiver: Callable[..., Receiver],
) -> None:
    receiver = make_receiver(max_body_bytes=2000)
    assert_error(receiver.client.post("/api/telemetry", json=heartbeat()), 401, "unauthorized")
    big = heartbeat(metrics={"padding": "x" * 3000})
    response = receiver.client.post("/api/telemetry", json=big, headers=receiver.headers())
    assert_error(response, 413, "payload_too_large")
    response = receiver.client.post(
        "/api/nodes/register", json=registration(hostname="h" * 3000), headers=receiver.headers()
    )
    assert_error(response, 413, "payload_too_large")


def test_status_history_from_heartbeat_arrivals(receiver: Receiver) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    for _ in range(3):
        receiver.client.post("/api/telemetry", json=heartbeat(), headers=receiver.headers())
    after = datetime.now(timezone.utc) + timedelta(seconds=5)
    start, end = rfc3339_ms(before - timedelta(hours=1)), rfc3339_ms(after)
    history = receiver.get(f"/api/nodes/{DEVICE}/status-history", start=start, end=end)
    assert history.status_code == 200, history.get_json()
    body = history.get_json()
    assert body["heartbeats"] == 3 and body["truncated"] is False
    assert body["interval_s"] == receiver.state.config.telemetry_interval_s
    assert [s["status"] for s in body["segments"]] == ["none", "online"]
    assert body["segments"][0]["start"] == body["start"]
    assert body["segments"][-1]["end"] == body["end"]
    # Defaults: the last 24 hours up to now. A window without heartbeats, after the last one.
    assert receiver.get(f"/api/nodes/{DEVICE}/status-history").get_json()["heartbeats"] == 3
    later = receiver.get(
        f"/api/nodes/{DEVICE}/status-history",
        start=rfc3339_ms(after + timedelta(hours=1)),
        end=rfc3339_ms(after + timedelta(hours=2)),
    ).get_json()
    assert later["heartbeats"] == 0
    assert [s["status"] for s in later["segments"]] == ["offline"]
    # Expected but silent: no heartbeat on record.
    silent = receiver.get("/api/nodes/beamrider-0003/status-history").get_json()
    assert [s["status"] for s in silent["segments"]] == ["none"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "start"),
        ({"limit": "5"}, "limit"),
    ],
)
def test_status_history_refuses_a_bad_window(
    receiver: Receiver, query: dict[str, str], field: str
) -> None:
    response = receiver.get(f"/api/nodes/{DEVICE}/status-history", **query)
    assert response.status_code == 400
    assert field in [detail["field"] for detail in response.get_json()["details"]]
    assert receiver.get("/api/nodes/nobody/status-history").status_code == 404


def rfc3339_ms(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
