"""The agent as a real process: 100 Hz sensor, SIGKILL at random moments, nothing missing."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess, sensorless, write_agent_config
from tests.support.receiver_double import ReceiverDouble
from tests.support.waiting import wait_for

SENSOR_100HZ = """
[[sensor]]
name = "fast"
type = "virtual"
signal = "counter"
interval_ms = 10
"""


@pytest.mark.slow
def test_sigkill_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(2026)
    push = {"batch_size": 200, "interval_ms": 100, "timeout_s": 5}
    with ReceiverDouble() as receiver:
        config = write_agent_config(
            tmp_path, receiver.url, SENSOR_100HZ, push=push, telemetry={"interval_s": 1}
        )
        agent = AgentProcess(config)
        for _ in range(6):
            agent.start()
            time.sleep(rng.uniform(1.0, 2.5))
            agent.kill()
        assert receiver.stored_count() > 0, "nothing was pushed between the kills"

        # A last run with no sensors drains what the killed agents left queued, then stops
        # on SIGTERM: exit status 0 within the contract's 10 s.
        last_seq = agent.status()["counters"]["last_seq"]
        registrations = len(receiver.requests_to("/api/nodes/register"))
        agent.start(sensorless(config))
        wait_for(
            lambda: len(receiver.requests_to("/api/nodes/register")) > registrations,
            30,
            "the draining agent to start",
        )
        wait_for(lambda: agent.status()["depth"] == 0, 60, "the queue to drain")
        stopped_at = time.monotonic()
        assert agent.terminate() == 0, agent.log_tail()
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
        agent = AgentProcess(write_agent_config(tmp_path, receiver.url, SENSOR_100HZ))
        agent.start()
        wait_for(lambda: (agent.state_dir / "queue.db").exists(), 30, "the queue")
        time.sleep(2.0)
        assert agent.terminate() == 0, agent.log_tail()
        status = agent.status()
        assert status["depth"] == status["counters"]["last_seq"] > 50
        assert status["counters"]["pushed"] == 0
        assert status["last_push"] is not None and "503" in str(status["last_push"])
        assert status["sensors"]["fast"]["readings"] >= status["depth"]
        # the last log line tells the operator what waits for the next start
        stopped = f"agent stopped; {status['depth']} readings queued for the next start"
        assert stopped in agent.log_tail(), agent.log_tail()
