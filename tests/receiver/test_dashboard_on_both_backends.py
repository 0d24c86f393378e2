"""What the dashboard's pages and scripts read, on each storage backend: the fleet page's
filters and counts, and the status history and node list its scripts fetch with the
dashboard session (GET /api/nodes/<id>/status-history, GET /api/nodes)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from tests.support.app import Receiver
from tests.support.constants import DEVICE, OTHER_DEVICE
from tests.support.readings import rfc3339


def send_heartbeat(receiver: Receiver, node_id: str, **fields: object) -> None:
    body = {"node_id": node_id, "timestamp": rfc3339(datetime.now(timezone.utc)), **fields}
    response = receiver.client.post("/api/telemetry", json=body, headers=receiver.headers(node_id))
    assert response.status_code == 200, response.get_json()


def shown_rows(html: str) -> list[str]:
    rows = re.findall(r'<tr data-node-id="([^"]+)"[^>]*?(\shidden)?>', html)
    return [node for node, hidden in rows if not hidden]


def test_fleet_filters_and_counts(receiver: Receiver) -> None:
    send_heartbeat(receiver, DEVICE)
    send_heartbeat(receiver, OTHER_DEVICE, role="agent", tags={"site": "lab"})
    receiver.login()
    html = receiver.client.get("/").get_data(as_text=True)
    assert shown_rows(html) == [DEVICE, OTHER_DEVICE, "beamrider-0003"]
    assert re.search(r'<option value="lab" data-count="2"[^>]*>lab \(2\)</option>', html)
    html = receiver.client.get("/?site=lab&status=online").get_data(as_text=True)
    assert shown_rows(html) == [DEVICE]
    assert "1 of 3 shown" in html
    assert re.search(r'value="unexpected" data-count="1"', html)  # beamrider-0002, in lab


def test_what_the_node_page_scripts_read(receiver: Receiver) -> None:
    for _ in range(3):
        send_heartbeat(receiver, DEVICE, metrics={"queue_depth": 1})
    receiver.login()
    page = receiver.client.get(f"/nodes/{DEVICE}").get_data(as_text=True)
    assert "/dashboard/static/history.js" in page and "/dashboard/static/format.js" in page
    assert 'id="history"' in page and "data-server-now=" in page
    # The session alone (no token) reads the status history and the node list, as the
    # scripts do.
    history = receiver.client.get(f"/api/nodes/{DEVICE}/status-history").get_json()
    assert history["heartbeats"] == 3
    assert [segment["status"] for segment in history["segments"]] == ["none", "online"]
    nodes = receiver.client.get("/api/nodes").get_json()["nodes"]
    online = next(node for node in nodes if node["node_id"] == DEVICE)
    assert online["status"] == "online" and online["last_seen_age_s"] is not None
