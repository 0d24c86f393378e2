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
