"""The dashboard through Flask's test client: login, CSRF, fleet table, node page, headers.

Every test runs a real app from create_app on a real SQLite file and tokens file in
tmp_path; nodes report through the real API with device tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from beam_receiver.app import create_app
from beam_receiver.config import load_config

from tests.support.constants import PASSWORD, USER
from tests.support.readings import rfc3339
from tests.support.receiver import write_receiver_toml, write_tokens_file
from tests.support.responses import sample

DEVICE_TOKENS = {
    "beamrider-0001": "token-0001",
    "beamrider-0002": "token-0002",
    "stray-0009": "token-0009",
}
# A node id that is also markup: the dashboard must show it as text, never run it.
HOSTILE_NODE = '<script>alert("node")</script>'
DEVICE_TOKENS[HOSTILE_NODE] = "token-hostile"


def write_receiver_files(directory: Path) -> Path:
    """receiver.toml, tokens and the inventory's expected nodes; returns the config path."""
    write_tokens_file(
        directory / "receiver-tokens.toml", DEVICE_TOKENS, {"ops": "ops-token"}, {USER: PASSWORD}
    )
    (directory / "expected-nodes.toml").write_text(
        '[nodes."beamrider-0001"]\nrole = "geiger"\ntags = {site = "roof"}\n'
        '[nodes."beamrider-0002"]\nrole = "weather"\n'
        '[nodes."beamrider-0003"]\nrole = "geiger"\n',
        encoding="utf-8",
    )
    return write_receiver_toml(directory)


def device_headers(node_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {DEVICE_TOKENS[node_id]}"}


def send_heartbeat(client: FlaskClient, node_id: str, ago_s: float, **extra: Any) -> None:
    """A heartbeat stamped ago_s seconds in the past (the receiver keys status on arrival)."""
    moment = datetime.now(timezone.utc) - timedelta(seconds=ago_s)
    body = {"node_id": node_id, "timestamp": rfc3339(moment), "protocol_version": 1, **extra}
    response = client.post("/api/telemetry", json=body, headers=device_headers(node_id))
    assert response.status_code == 200, response.get_json()


@pytest.fixture()
def app(tmp_path: Path) -> Flask:
    return create_app(load_config(write_receiver_files(tmp_path)))


@pytest.fixture()
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


class FormAndTableParser(HTMLParser):
    """Collects hidden CSRF tokens, fleet rows (data-node-id, data-status) and their text.

    A row's tag chips (<span class="tags"> in the Node cell) are collected apart, in
    "tags", so "text" stays one entry per cell."""

    def __init__(self) -> None:
        super().__init__()
        self.csrf_tokens: list[str] = []
        self.rows: dict[str, dict[str, Any]] = {}
        self._row: Optional[dict[str, Any]] = None
        self._tag_depth = 0  # > 0 inside a row's <span class="tags">

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        attributes = dict(attrs)
        if tag == "input" and attributes.get("name") == "csrf_token":
            self.csrf_tokens.append(attributes.get("value") or "")
        if tag == "tr" and attributes.get("data-node-id") is not None:
            self._row = {
                "status": attributes.get("data-status"),
                "site": attributes.get("data-site"),
                "hidden": "hidden" in attributes,
                "text": [],
                "tags": [],
            }
            self.rows[attributes["data-node-id"] or ""] = self._row
        if tag == "span" and (self._tag_depth or attributes.get("class") == "tags"):
            self._tag_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        if tag == "span" and self._tag_depth:
            self._tag_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._row is not None and data.strip():
            self._row["tags" if self._tag_depth else "text"].append(data.strip())


def parse(html: str) -> FormAndTableParser:
    parser = FormAndTableParser()
    parser.feed(html)
    return parser


def csrf_token_of(client: FlaskClient, path: str = "/login") -> str:
    tokens = parse(client.get(path).get_data(as_text=True)).csrf_tokens
    assert len(tokens) == 1 and tokens[0], f"{path} has no CSRF token"
    return tokens[0]


def log_in(client: FlaskClient, next_path: Optional[str] = None) -> Any:
    url = "/login" if next_path is None else f"/login?next={next_path}"
    form = {"csrf_token": csrf_token_of(client), "username": "admin", "password": PASSWORD}
    return client.post(url, data=form)


def test_pages_redirect_to_login_when_logged_out(client: FlaskClient) -> None:
    for path in ("/", "/nodes/beamrider-0001"):
        response = client.get(path)
        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login"
        assert parse_qs(location.query)["next"] == [path]


def test_login_page_has_a_csrf_token_and_strict_headers(client: FlaskClient) -> None:
    response = client.get("/login")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert parse(html).csrf_tokens[0]
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # No inline scripts or handlers: everything the CSP allows comes from static files.
    assert not re.search(r"<script(?![^>]*\ssrc=)", html)
    assert not re.search(r"\son[a-z]+=", html)


def test_wrong_password_is_rejected(client: FlaskClient) -> None:
    form = {"csrf_token": csrf_token_of(client), "username": "admin", "password": "guess"}
    response = client.post("/login", data=form)
    assert response.status_code == 401
    assert "Unknown user or wrong password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_unknown_user_is_rejected_with_the_same_words(client: FlaskClient) -> None:
    form = {"csrf_token": csrf_token_of(client), "username": "mallory", "password": PASSWORD}
    response = client.post("/login", data=form)
    assert response.status_code == 401
    assert "Unknown user or wrong password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_rejected(client: FlaskClient) -> None:
    client.get("/login")  # a session exists, but the post carries no token
    response = client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token was missing or expired" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_with_a_forged_csrf_token_is_rejected(client: FlaskClient) -> None:
    client.get("/login")
    form = {"csrf_token": "forged", "username": "admin", "password": PASSWORD}
    assert client.post("/login", data=form).status_code == 400
    assert client.get("/").status_code == 302


def test_empty_fields_are_named(client: FlaskClient) -> None:
    form = {"csrf_token": csrf_token_of(client), "username": "", "password": ""}
    response = client.post("/login", data=form)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Enter your username." in html and "Enter your password." in html


def test_login_works_and_returns_to_the_page_asked_for(client: FlaskClient) -> None:
    response = log_in(client, next_path="/nodes/beamrider-0001")
    assert response.status_code == 302
    assert response.headers["Location"] == "/nodes/beamrider-0001"
    assert client.get("/").status_code == 200
    assert client.get("/login").status_code == 302  # already logged in


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_login_never_redirects_off_site(client: FlaskClient, target: str) -> None:
    response = log_in(client, next_path=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_logout_needs_a_post_with_its_csrf_token(client: FlaskClient) -> None:
    log_in(client)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still logged in
    token = csrf_token_of(client, "/")
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    assert client.get("/").status_code == 302


def test_fleet_table_lists_expected_and_unexpected_nodes(client: FlaskClient) -> None:
    send_heartbeat(
        client,
        "beamrider-0001",
        ago_s=0,
        software_version="1.4.2",
        metrics={"queue_depth": 17},
    )
    send_heartbeat(client, "stray-0009", ago_s=0, role="geiger", software_version="0.9.0")
    log_in(client)
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    rows = parse(response.get_data(as_text=True)).rows
    assert sorted(rows) == sorted(
        ["beamrider-0001", "beamrider-0002", "beamrider-0003", "stray-0009"]
    )
    assert rows["beamrider-0001"]["status"] == "online"
    first = rows["beamrider-0001"]["text"]
    assert first[:3] == ["beamrider-0001", "geiger", "Online"]
    assert re.fullmatch(r"\d+ s ago", first[3])
    assert first[4:] == ["1.4.2", "17", "—", "—", "ok"]  # no `dropped`, no dead letters
    assert rows["beamrider-0002"]["status"] == "offline"
    assert rows["beamrider-0002"]["text"] == [
        "beamrider-0002",
        "weather",
        "Offline",
        "never",
        "—",
        "—",
        "—",
        "—",
        "—",
    ]
    assert rows["stray-0009"]["status"] == "unexpected"
    assert "Unexpected" in rows["stray-0009"]["text"]


def test_fleet_rows_show_tags_and_carry_what_the_filters_compare(client: FlaskClient) -> None:
    send_heartbeat(client, "beamrider-0001", ago_s=0, tags={"rack": "A"})
    log_in(client)
    html = client.get("/").get_data(as_text=True)
    rows = parse(html).rows
    assert rows["beamrider-0001"]["tags"] == ["rack=A", "site=roof"]  # reported + inventory
    assert rows["beamrider-0001"]["site"] == "roof"
    assert rows["beamrider-0002"]["tags"] == [] and rows["beamrider-0002"]["site"] == ""
    assert not any(row["hidden"] for row in rows.values())
    assert "3 of 3 shown" in html
    # Each status is offered with its count; each site and role that occurs, with its own.
    assert re.search(r'<option value="online" data-count="1"[^>]*>Online \(1\)</option>', html)
    assert re.search(r'<option value="offline" data-count="2"[^>]*>Offline \(2\)</option>', html)
    assert re.search(r'<option value="roof" data-count="1"[^>]*>roof \(1\)</option>', html)
    assert re.search(r'<option value="geiger" data-count="2"[^>]*>geiger \(2\)</option>', html)
    assert "/dashboard/static/fleet.js" in html


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("site=roof", ["beamrider-0001"]),
        ("role=geiger", ["beamrider-0001", "beamrider-0003", "stray-0009"]),
        ("status=offline", ["beamrider-0002", "beamrider-0003"]),
        ("role=geiger&status=offline", ["beamrider-0003"]),
        ("site=cellar", []),
        ("colour=red", ["beamrider-0001", "beamrider-0002", "beamrider-0003", "stray-0009"]),
    ],
)
def test_fleet_filters_work_without_javascript(
    client: FlaskClient, query: str, shown: list[str]
) -> None:
    send_heartbeat(client, "beamrider-0001", ago_s=0)
    send_heartbeat(client, "stray-0009", ago_s=0, role="geiger")
    log_in(client)
    html = client.get(f"/?{query}").get_data(as_text=True)
    rows = parse(html).rows
    assert len(rows) == 4  # every row is there, for the script to filter again
    assert sorted(node for node, row in rows.items() if not row["hidden"]) == shown
    assert f"{len(shown)} of 4 shown" in html
    if query == "role=geiger&status=offline":
        # Counts per status keep the other filters: three geiger nodes, one in each status.
        for status, count in [("online", 1), ("degraded", 0), ("offline", 1), ("unexpected", 1)]:
            assert re.search(f'value="{status}" data-count="{count}"', html), status
    if query == "site=cellar":  # a site no node has is still shown as chosen
        assert re.search(r'<option value="cellar" data-count="0" selected>', html)


def test_fleet_table_cells_follow_the_api(client: FlaskClient) -> None:
    """The table shows what GET /api/nodes says, field for field."""
    send_heartbeat(
        client,
        "beamrider-0001",
        ago_s=0,
        software_version="2.0.0",
        metrics={"queue_depth": 3, "dropped": 12},
    )
    log_in(client)
    api = {node["node_id"]: node for node in client.get("/api/nodes").get_json()["nodes"]}
    rows = parse(client.get("/").get_data(as_text=True)).rows
    for node_id, node in api.items():
        text = rows[node_id]["text"]
        assert rows[node_id]["status"] == node["status"]
        assert text[0] == node_id
        assert text[1] == (node["role"] or "—")
        assert text[4] == (node["software_version"] or "—")
        assert text[5] == ("—" if node["queue_depth"] is None else str(node["queue_depth"]))
        assert text[6] == ("—" if node["dropped"] is None else str(node["dropped"]))
        assert text[7] == ("—" if node["dead_letters"] is None else str(node["dead_letters"]))


def test_dropped_readings_show_in_the_api_the_table_and_the_node_page(
    client: FlaskClient,
) -> None:
    """The agent's `dropped` counter from the last heartbeat: what an outage cost for good."""
    send_heartbeat(client, "beamrider-0001", ago_s=0, metrics={"queue_depth": 9, "dropped": 4})
    send_heartbeat(client, "beamrider-0001", ago_s=0, metrics={"queue_depth": 0, "dropped": 1234})
    for node_id, junk in (("beamrider-0002", True), ("stray-0009", -3)):
        send_heartbeat(client, node_id, ago_s=0, metrics={"dropped": junk})
    log_in(client)
    api = {node["node_id"]: node for node in client.get("/api/nodes").get_json()["nodes"]}
    assert api["beamrider-0001"]["dropped"] == 1234  # the latest heartbeat's, not a sum
    assert client.get("/api/nodes/beamrider-0001").get_json()["dropped"] == 1234
    assert api["beamrider-0002"]["dropped"] is None  # not a count: not shown as one
    assert api["stray-0009"]["dropped"] is None
    assert api["beamrider-0003"]["dropped"] is None  # never reported
    rows = parse(client.get("/").get_data(as_text=True)).rows
    assert rows["beamrider-0001"]["text"][6] == "1234"
    assert rows["beamrider-0002"]["text"][6] == "—"
    html = client.get("/nodes/beamrider-0001").get_data(as_text=True)
    assert re.search(r'<dd id="node-dropped">1234</dd>', html)


def test_dead_letters_and_a_config_error_show_in_the_api_the_table_and_the_node_page(
    client: FlaskClient,
) -> None:
    """What a node's heartbeat says about its push: readings parked, and an api_url that
    leads nowhere (its pushes get 404), so an operator sees it in the fleet table."""
    problem = {
        "status": 404,
        "message": "HTTP 404 for https://r/api/readings/api/readings: ...; fix api_url",
        "at": "2026-02-15T19:00:00.000Z",
    }
    send_heartbeat(
        client, "beamrider-0001", ago_s=0, metrics={"dead_letters": 37, "config_error": problem}
    )
    send_heartbeat(client, "beamrider-0002", ago_s=0, metrics={"config_error": {"oops": 1}})
    log_in(client)
    api = {node["node_id"]: node for node in client.get("/api/nodes").get_json()["nodes"]}
    assert api["beamrider-0001"]["dead_letters"] == 37
    assert api["beamrider-0001"]["config_error"] == problem
    assert api["beamrider-0002"]["config_error"] is None  # malformed: not shown as one
    rows = parse(client.get("/").get_data(as_text=True)).rows
    assert rows["beamrider-0001"]["text"][7:] == ["37", "Error: HTTP 404"]
    assert rows["beamrider-0002"]["text"][7:] == ["—", "ok"]
    html = client.get("/nodes/beamrider-0001").get_data(as_text=True)
    assert '<dd id="node-dead-letters">37</dd>' in html
    assert "fix api_url (at 2026-02-15T19:00:00.000Z)" in html
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "beam_receiver_node_config_error", node_id="beamrider-0001") == 1
    assert sample(text, "beam_receiver_node_config_error", node_id="beamrider-0002") == 0
    assert 'beam_receiver_node_config_error{node_id="beamrider-0003"}' not in text  # silent


def test_everything_a_node_sends_is_escaped(client: FlaskClient) -> None:
    hostile = '"><img src=x onerror=alert(1)>'
    send_heartbeat(
        client,
        HOSTILE_NODE,
        ago_s=0,
        software_version=hostile,
        role=hostile,
        tags={"site": hostile},
    )
    log_in(client)
    fleet_html = client.get("/").get_data(as_text=True)
    node_page = client.get("/nodes/" + quote(HOSTILE_NODE, safe=""))
    assert node_page.status_code == 200
    node_html = node_page.get_data(as_text=True)
    for html in (fleet_html, node_html):
        assert HOSTILE_NODE not in html and hostile not in html
        assert "&lt;script&gt;alert(&#34;node&#34;)&lt;/script&gt;" in html
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def test_node_page_shows_details_and_the_chart_frame(client: FlaskClient) -> None:
    send_heartbeat(
        client, "beamrider-0001", ago_s=0, software_version="1.4.2", metrics={"queue_depth": 5}
    )
    log_in(client)
    response = client.get("/nodes/beamrider-0001?range=6h")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-node-id="beamrider-0001"' in html
    assert "1.4.2" in html and "site=roof" in html
    for name in ("1h", "6h", "24h", "7d"):
        assert f'data-range="{name}"' in html
    assert re.search(r'data-range="6h"[^>]*aria-current="true"', html)
    assert "/dashboard/static/vendor/uplot/uPlot.iife.min.js" in html
    assert "/dashboard/static/dashboard.js" in html


def test_node_page_falls_back_to_24h_for_an_unknown_range(client: FlaskClient) -> None:
    log_in(client)
    html = client.get("/nodes/beamrider-0002?range=1y").get_data(as_text=True)
    assert re.search(r'data-range="24h"[^>]*aria-current="true"', html)
    assert html.count('aria-current="true"') == 1


def test_unknown_node_is_a_404_page(client: FlaskClient) -> None:
    log_in(client)
    response = client.get("/nodes/nobody-here")
    assert response.status_code == 404
    assert "nobody-here" in response.get_data(as_text=True)


def test_vendored_chart_library_is_served_with_its_licence(client: FlaskClient) -> None:
    script = client.get("/dashboard/static/vendor/uplot/uPlot.iife.min.js")
    assert script.status_code == 200
    assert script.mimetype in ("text/javascript", "application/javascript")
    assert b"uPlot" in script.data
    licence = client.get("/dashboard/static/vendor/uplot/LICENSE")
    assert b"MIT License" in licence.data
    version = client.get("/dashboard/static/vendor/uplot/VERSION").get_data(as_text=True)
    assert "uPlot 1.6.32" in version


def test_a_dashboard_session_reads_the_api_the_charts_use(client: FlaskClient) -> None:
    moment = datetime.now(timezone.utc) - timedelta(minutes=5)
    reading = {
        "device_id": "beamrider-0001",
        "sensor": "geiger",
        "sensor_type": "mightyohm",
        "payload": {"cpm": 38, "mode": "SLOW"},
        "timestamp": rfc3339(moment),
        "seq": 1,
    }
    posted = client.post("/api/readings", json=reading, headers=device_headers("beamrider-0001"))
    assert posted.get_json() == {"accepted": 1, "duplicates": 0}
    assert client.get("/api/readings/latest?device_id=beamrider-0001").status_code == 401
    log_in(client)
    latest = client.get("/api/readings/latest?device_id=beamrider-0001").get_json()
    assert [r["payload"]["cpm"] for r in latest["readings"]] == [38]
    series = client.get(
        "/api/analytics/series",
        query_string={
            "device_id": "beamrider-0001",
            "sensor": "geiger",
            "field": "cpm",
            "bucket": "15m",
            "start": rfc3339(moment - timedelta(hours=1)),
            "end": rfc3339(moment + timedelta(hours=1)),
        },
    ).get_json()
    assert [(b["count"], b["avg"]) for b in series["buckets"]] == [(1, 38)]


def test_each_node_shows_its_active_and_previous_release(client: FlaskClient) -> None:
    """From the heartbeat's metrics.release (beam.fleet's record on the node)."""
    release = {
        "active": "1.1.0",
        "previous": "1.0.0",
        "changed_at": "2026-12-04T10:00:00Z",
        "changed_by": "ops@laptop",
    }
    send_heartbeat(
        client, "beamrider-0001", ago_s=0, software_version="1.1.0", metrics={"release": release}
    )
    node = client.get("/api/nodes/beamrider-0001", headers={"Authorization": "Bearer ops-token"})
    assert node.get_json()["release"] == dict(release, rolled_back_from=None, rollout=None)
    log_in(client)
    fleet = client.get("/").get_data(as_text=True)
    assert "(was 1.0.0)" in fleet
    page = client.get("/nodes/beamrider-0001").get_data(as_text=True)
    assert "1.1.0, before: 1.0.0 (switched 2026-12-04T10:00:00Z by ops@laptop)" in page


def test_the_fleet_page_shows_the_last_rollout_the_nodes_report(client: FlaskClient) -> None:
    """beam.fleet.rollout records its id in each node's release record; the newest id any
    node reports is the last rollout, with who switched, who was rolled back and who not."""
    old = "20261203T080000Z-agent-1.1.0"
    new = "20261204T093000Z-agent-1.2.0"

    def release(active: str, previous: str, rollout: Optional[str], back: Optional[str] = None):
        return {
            "active": active,
            "previous": previous,
            "changed_at": "2026-12-04T09:31:00Z",
            "changed_by": "ops@laptop",
            "rolled_back_from": back,
            "rollout": rollout,
        }

    reported = {
        "beamrider-0001": release("1.1.0", "1.0.0", new, back="1.2.0"),  # the canary, rolled back
        "beamrider-0002": release("1.1.0", "1.0.0", old),  # last changed by an older rollout
        "stray-0009": release("1.2.0", "1.1.0", new),  # switched to 1.2.0
    }
    for node_id, record in reported.items():
        send_heartbeat(
            client, node_id, ago_s=0, software_version=record["active"], metrics={"release": record}
        )
    nodes = client.get("/api/nodes", headers={"Authorization": "Bearer ops-token"}).get_json()
    assert nodes["last_rollout"] == {
        "id": new,
        "component": "agent",
        "version": "1.2.0",
        "started": "2026-12-04T09:30:00Z",
        "switched": ["stray-0009"],
        "rolled_back": ["beamrider-0001"],
        "not_changed": ["beamrider-0002", "beamrider-0003"],
    }
    log_in(client)
    page = client.get("/").get_data(as_text=True)
    line = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page.split('id="fleet-rollout"')[1]))
    assert "Last rollout: agent 1.2.0, started 2026-12-04T09:30:00Z" in line
    assert "1 on 1.2.0 · 1 rolled back: beamrider-0001 · 2 not changed by it" in line
    assert f"{new}.json" in line
    assert "(rolled back from 1.2.0)" in page
    assert "(was 1.0.0)" in page  # beamrider-0002: an ordinary switch


def test_without_rollouts_the_fleet_page_has_no_rollout_line(client: FlaskClient) -> None:
    send_heartbeat(client, "beamrider-0001", ago_s=0, software_version="1.1.0")
    assert (
        client.get("/api/nodes", headers={"Authorization": "Bearer ops-token"}).get_json()[
            "last_rollout"
        ]
        is None
    )
    log_in(client)
    assert 'id="fleet-rollout"' not in client.get("/").get_data(as_text=True)
