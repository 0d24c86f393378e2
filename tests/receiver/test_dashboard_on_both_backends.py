"""What the dashboard's pages and scripts read, on each storage backend: the fleet page's
filters and counts, the status history and node list its scripts fetch with the dashboard
session (GET /api/nodes/<id>/status-history, GET /api/nodes), and a collectd node's latest
value lists and series (GET /api/readings/latest, GET /api/analytics/series)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.support.app import Receiver
from tests.support.constants import DEVICE, OTHER_DEVICE
from tests.support.readings import rfc3339

COLLECTD_SAMPLES = Path(__file__).parent / "collectd_samples"


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


def test_what_the_node_page_reads_for_a_collectd_node(receiver: Receiver) -> None:
    """A node that sends only collectd: its page, its latest value lists, and a series for
    every "type[-type_instance].dsname" field dashboard.js flattens them into."""
    samples = [
        item
        for path in sorted(COLLECTD_SAMPLES.glob("*.json"))
        for item in json.loads(path.read_text())
    ]
    first = min(item["time"] for item in samples)
    start_s = time.time() - 60  # the captures re-timed to the last minute, spacing kept
    body = [
        dict(item, host=DEVICE, time=round(start_s + item["time"] - first, 3)) for item in samples
    ]
    response = receiver.client.post("/api/collectd", json=body, headers=receiver.headers(DEVICE))
    assert response.status_code == 200, response.get_json()
    receiver.login()
    page = receiver.client.get(f"/nodes/{DEVICE}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="charts"' in html and "/dashboard/static/dashboard.js" in html

    latest = receiver.client.get("/api/readings/latest", query_string={"device_id": DEVICE})
    readings = latest.get_json()["readings"]
    assert {reading["sensor_type"] for reading in readings} == {"collectd"}
    fields = {
        (reading["sensor"], f"{key}.{dsname}"): value
        for reading in readings
        for key, sources in reading["payload"].items()
        for dsname, value in sources.items()
    }
    for name in [("cpu-0", "percent-user.value"), ("memory", "memory-used.value")]:
        assert name in fields, sorted(fields)
    assert ("interface-lo", "if_octets.rx") in fields
    now = datetime.now(timezone.utc)
    for (sensor, field), value in sorted(fields.items()):
        series = receiver.client.get(
            "/api/analytics/series",
            query_string={
                "device_id": DEVICE,
                "sensor": sensor,
                "field": field,
                "bucket": "1h",
                "start": rfc3339(now - timedelta(hours=2)),
                "end": rfc3339(now + timedelta(hours=1)),
            },
        )
        assert series.status_code == 200, (sensor, field, series.get_json())
        buckets = series.get_json()["buckets"]
        if value is None:  # collectd's NaN: no number to bucket
            continue
        assert sum(bucket["count"] for bucket in buckets) >= 1, (sensor, field)
        assert min(b["min"] for b in buckets) <= value <= max(b["max"] for b in buckets)
