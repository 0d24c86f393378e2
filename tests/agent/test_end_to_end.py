"""The agent as a real process: 100 Hz sensor, SIGKILL at random moments, nothing missing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from beam_agent.queue import ReadingQueue

from tests.agent.conftest import agent_config
from tests.agent.receiver_double import ReceiverDouble

SENSOR_100HZ = """
[[sensor]]
name = "fast"
type = "virtual"
signal = "counter"
interval_ms = 10
"""


def start_agent(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "beam_agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_sigkill_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(2026)
    push = {"batch_size": 200, "interval_ms": 100, "timeout_s": 5}
    with ReceiverDouble() as receiver:
        config = agent_config(
            tmp_path, receiver.url, SENSOR_100HZ, push=push, telemetry={"interval_s": 1}
        )
        for _ in range(6):
            agent = start_agent(config)
            time.sleep(rng.uniform(1.0, 2.5))
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
        assert receiver.stored_count() > 0, "nothing was pushed between the kills"

        # A last run with no sensors drains what the killed agents left queued, then stops
        # on SIGTERM: exit status 0 within the contract's 10 s.
        drain_config = agent_config(tmp_path, receiver.url, "", push=push)
        state = ReadingQueue.read_status(tmp_path / "state")
        last_seq = state["counters"]["last_seq"]
        registrations = len(receiver.requests_to("/api/nodes/register"))
        agent = start_agent(drain_config)
        wait_until(
            lambda: len(receiver.requests_to("/api/nodes/register")) > registrations,
            30,
            "the draining agent to start",
        )
        wait_until(
            lambda: ReadingQueue.read_status(tmp_path / "state")["depth"] == 0,
            60,
            "the queue to drain",
        )
        stopped_at = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0, agent.stderr.read().decode() if agent.stderr else ""
        assert time.monotonic() - stopped_at < 10

        seqs = receiver.stored_seqs("beamrider-0001")
        assert last_seq > 300  # the 100 Hz sensor really ran across the restarts
        missing = set(range(1, last_seq + 1)) - seqs
        assert not missing, f"{len(missing)} seqs never arrived, e.g. {sorted(missing)[:10]}"
        assert max(seqs) == last_seq
        # Each agent start registered and sent heartbeats carrying the queue depth.
        assert receiver.requests_to("/api/nodes/register")
        heartbeats = receiver.requests_to("/api/telemetry")
        assert heartbeats and "queue_depth" in heartbeats[-1]["metrics"]


def test_sigterm_commits_what_was_read(tmp_path: Path) -> None:
    """Readings read before SIGTERM are committed with seqs, ready for the next start."""
    with ReceiverDouble() as receiver:
        receiver.fail_all(503)  # the receiver is down: everything must stay queued
        config = agent_config(tmp_path, receiver.url, SENSOR_100HZ)
        agent = start_agent(config)
        wait_until(lambda: (tmp_path / "state" / "queue.db").exists(), 30, "the queue")
        time.sleep(2.0)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
        status = ReadingQueue.read_status(tmp_path / "state")
        assert status["depth"] == status["counters"]["last_seq"] > 50
        assert status["counters"]["pushed"] == 0
        assert status["last_push"] is not None and "503" in str(status["last_push"])
        assert status["sensors"]["fast"]["readings"] >= status["depth"]
