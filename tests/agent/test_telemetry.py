"""The heartbeat's body: what the receiver learns about a node's queue and its push."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from beam_agent.config import load_config
from beam_agent.queue import ReadingQueue
from beam_agent.reading import Reading
from beam_agent.telemetry import heartbeat

from tests.support.agent import write_agent_config
from tests.support.constants import DEVICE

AT = datetime(2026, 2, 15, 19, 0, tzinfo=timezone.utc)


def test_heartbeat_carries_dead_letters_now_and_the_config_error(
    tmp_path: Path, queue: ReadingQueue
) -> None:
    config = load_config(write_agent_config(tmp_path, "http://127.0.0.1:9"))
    queue.enqueue([Reading(DEVICE, "g", "virtual", {"v": i}, AT) for i in range(5)])
    queue.dead_letter([1, 2], 400, "HTTP 400: invalid_body")
    queue.record_push_result(False, "HTTP 404 for http://x/api/readings: ...", AT, "config", 404)
    body = heartbeat(config, queue.status(), {}, time.monotonic(), None)
    metrics = body["metrics"]
    assert metrics["dead_letters"] == 2 and metrics["dead_lettered"] == 2
    assert metrics["config_error"] == {
        "status": 404,
        "message": "HTTP 404 for http://x/api/readings: ...",
        "at": "2026-02-15T19:00:00.000Z",
    }
    assert body["protocol_version"] == 1

    queue.record_push_result(True, "HTTP 200: delivered 3", AT)  # fixed: no error shown
    assert heartbeat(config, queue.status(), {}, 0.0, None)["metrics"]["config_error"] is None


def test_the_heartbeat_reports_the_release_beam_fleet_recorded(tmp_path: Path) -> None:
    """A node installed by beam.fleet runs from ROOT/releases/<version>/venv; ROOT/release.json
    says which release is active and which was before (the fleet view shows both)."""
    import json

    from beam_agent.telemetry import release_record

    venv = tmp_path / "agent" / "releases" / "1.1.0" / "venv"
    venv.mkdir(parents=True)
    assert release_record(str(venv)) is None  # no record yet
    (tmp_path / "agent" / "release.json").write_text(
        json.dumps(
            {
                "format": 1,
                "active": "1.1.0",
                "previous": "1.0.0",
                "changed_at": "2026-12-04T10:00:00Z",
                "changed_by": "ops@laptop",
                "rolled_back_from": "1.2.0",
                "rollout": "20261204T095900Z-agent-1.2.0",
                "history": [],
            }
        )
    )
    assert release_record(str(venv)) == {
        "active": "1.1.0",
        "previous": "1.0.0",
        "changed_at": "2026-12-04T10:00:00Z",
        "changed_by": "ops@laptop",
        "rolled_back_from": "1.2.0",
        "rollout": "20261204T095900Z-agent-1.2.0",
    }
    (tmp_path / "agent" / "release.json").write_text("{not json")
    assert release_record(str(venv)) is None  # a broken record never breaks the heartbeat
    assert release_record(str(tmp_path)) is None  # not a beam.fleet release: a pip install
