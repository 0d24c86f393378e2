"""`beam-receiver serve` as a real process (gunicorn, two workers) driven over real HTTP."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from beam_receiver.auth import hash_token

from tests.support.constants import DEVICE, DEVICE_TOKEN
from tests.support.readings import valid_reading
from tests.support.receiver import ReceiverProcess, agent_nodes, configure_receiver
from tests.support.responses import sample
from tests.support.waiting import wait_for

OLD_TOKEN = DEVICE_TOKEN
NEW_TOKEN = "new-device-token-0001"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ReceiverProcess]:
    with configure_receiver(
        tmp_path, expected_nodes=agent_nodes(DEVICE), users={}, workers=2, threads=2
    ) as receiver:
        yield receiver


def reading(seq: int) -> dict[str, Any]:
    return valid_reading(
        seq, payload={"cps": 1, "cpm": 30 + seq, "usv_per_hr": 0.2, "mode": "SLOW"}
    )


def test_serve_ingests_over_http_reloads_tokens_on_sighup_and_stops_on_sigterm(
    served: ReceiverProcess,
) -> None:
    # Ingest: a batch, the same batch again (dedupe), and a gzip body.
    batch = {"readings": [reading(seq) for seq in range(1, 501)]}
    first = served.post("/api/readings", batch, **{"X-Request-ID": "serve-test-1"})
    assert first.status_code == 200
    assert first.json() == {"accepted": 500, "duplicates": 0}
    assert first.headers["X-Request-ID"] == "serve-test-1"
    assert served.post("/api/readings", batch).json() == {"accepted": 0, "duplicates": 500}
    zipped = requests.post(
        served.url + "/api/readings",
        data=gzip.compress(json.dumps({"readings": [reading(501)]}).encode()),
        headers={
            "Authorization": f"Bearer {OLD_TOKEN}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=30,
    )
    assert zipped.json() == {"accepted": 1, "duplicates": 0}
    assert served.post("/api/readings", reading(1), token="wrong").status_code == 401

    # Read back, paged, and see the node come online from a heartbeat.
    page = served.get("/api/readings", limit=1000)
    assert [r["seq"] for r in page["readings"]] == list(range(1, 502))
    heartbeat = {"node_id": DEVICE, "timestamp": "2026-02-15T19:06:00Z", "metrics": {}}
    assert served.post("/api/telemetry", heartbeat).status_code == 200
    assert served.get(f"/api/nodes/{DEVICE}")["status"] == "online"

    # Counters from both workers add up, whichever worker answers the scrape.
    for seq in range(502, 522):
        assert requests.post(
            served.url + "/api/readings",
            json=reading(seq),
            headers={"Authorization": f"Bearer {OLD_TOKEN}", "Connection": "close"},
            timeout=30,
        ).ok
    for _ in range(4):
        text = served.request("GET", "/metrics", served.operator_token).text
        assert sample(text, "beam_receiver_readings_accepted_total", device_id=DEVICE) == 521
        assert sample(text, "beam_receiver_readings_duplicates_total", device_id=DEVICE) == 500

    # Rotate the device token in place, keeping size, inode and mtime: only SIGHUP can
    # make the receiver notice.
    tokens = served.directory / "receiver-tokens.toml"
    before = tokens.stat()
    old_text = tokens.read_text()
    new_text = old_text.replace(hash_token(OLD_TOKEN), hash_token(NEW_TOKEN))
    assert len(new_text) == len(old_text) and new_text != old_text
    with tokens.open("r+") as handle:
        handle.write(new_text)
    os.utime(tokens, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert tokens.stat().st_ino == before.st_ino
    assert served.post("/api/readings", reading(600)).status_code == 200

    served.signal(signal.SIGHUP)

    def answers_after_rotation() -> bool:
        new = requests.post(
            served.url + "/api/readings",
            json=reading(700),
            headers={"Authorization": f"Bearer {NEW_TOKEN}", "Connection": "close"},
            timeout=30,
        )
        old = requests.post(
            served.url + "/api/readings",
            json=reading(701),
            headers={"Authorization": f"Bearer {OLD_TOKEN}", "Connection": "close"},
            timeout=30,
        )
        return new.status_code == 200 and old.status_code == 401

    def rotated() -> bool:
        # Fresh connections each time, so that every worker of the new generation is asked.
        # gunicorn 23 (what Python 3.9 gets) may reset a connection that an exiting worker
        # had just accepted; agents retry those, so it counts as "not yet" here.
        try:
            return all(answers_after_rotation() for _ in range(6))
        except requests.ConnectionError:
            return False

    wait_for(rotated, 90, "the new token to work and the old one to be refused")
    assert served.post("/api/readings", reading(702), token=NEW_TOKEN).json() == {
        "accepted": 1,
        "duplicates": 0,
    }
    refused = served.post("/api/readings", reading(703), token=OLD_TOKEN)
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    served.get("/healthz")  # asserts 200

    # A broken tokens file and another SIGHUP: the new workers start from the last good
    # tokens instead of failing to boot, and the server keeps answering.
    tokens.write_text("[devices\n")
    served.signal(signal.SIGHUP)
    wait_for(
        lambda: "new workers start from the last good tokens" in served.log.read_text(),
        60,
        "the master to log that it keeps the last good tokens",
    )

    def still_serving() -> bool:
        assert served.running, served.log_tail()
        try:
            return all(
                served.post("/api/readings", reading(seq), token=NEW_TOKEN).status_code == 200
                for seq in range(800, 810)
            )
        except requests.ConnectionError:  # see rotated() above
            return False

    wait_for(
        lambda: served.log.read_text().count("Booting worker") >= 6,  # 2 at start + 2 per HUP
        60,
        "the third generation of workers to boot",
    )
    wait_for(still_serving, 60, "the receiver to keep accepting the last good token")
    time.sleep(1)  # had a new worker failed to boot, the master would now be exiting
    assert still_serving()

    # SIGTERM: a graceful stop with exit status 0.
    assert served.stop(60) == 0

    log_lines = [line for line in served.log.read_text().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in log_lines]
    tagged = [e for e in entries if e.get("request_id") == "serve-test-1"]
    assert tagged and tagged[0]["status"] == 200 and tagged[0]["path"] == "/api/readings"
