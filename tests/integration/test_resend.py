"""Readings parked after 404s, the config fixed, `beam-agent resend`: the real agent and the
real receiver over loopback, and every seq stored exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beam_agent.queue import ReadingQueue

from tests.support.agent import AgentProcess, counter_sensor, write_agent_config
from tests.support.constants import DEVICE
from tests.support.receiver import configure_receiver
from tests.support.waiting import wait_for

SETTINGS: dict[str, Any] = {
    "push": {"interval_ms": 200, "batch_size": 50},
    "telemetry": {"interval_s": 1},
}


def test_parked_after_404s_fixed_and_resent_every_seq_stored_once(tmp_path: Path) -> None:
    sensors = [counter_sensor("counter", 20)]
    with configure_receiver(tmp_path / "receiver", telemetry_interval_s=2) as receiver:
        # A wrong path prefix: every POST 404s. A configuration error, kept queued.
        config = write_agent_config(tmp_path, receiver.url + "/beam", sensors, **SETTINGS)
        agent = AgentProcess(config)
        agent.start()
        try:
            wait_for(
                lambda: (
                    (agent.status()["config_error"] or {}).get("status") == 404
                    and agent.status()["depth"] >= 60
                ),
                60,
                "the agent to report 404s as a configuration error",
            )
            shown = agent.cli("status").stdout
            assert "push failing:      config" in shown and "fix api_url" in shown
        finally:
            assert agent.terminate() == 0
        status = agent.status()
        assert status["dead_letters"] == 0 and status["counters"]["pushed"] == 0

        # What an agent before this release did with those 404s: parked every batch.
        with ReadingQueue(agent.state_dir) as queue:
            parked = queue.lease(1_000_000)
            seqs = [r.seq for r in parked if r.seq is not None]
            queue.dead_letter(seqs, 404, "HTTP 404: not_found no route POST /beam/api/readings")
            # ... and one batch had reached the receiver before (its answer lost).
            early = {"readings": [r.to_dict() for r in parked[:5]]}
            assert receiver.post("/api/readings", early).json()["accepted"] == 5
        count = len(seqs)
        assert seqs == list(range(1, count + 1))
        listing = agent.cli("dead-letters")
        assert f"seq 1-{count} ({count}): status 404" in listing.stdout, listing.stdout

        # The fix: the seed's api_url, which the agent cuts to the receiver's base.
        write_agent_config(tmp_path, receiver.url + "/api/readings", sensors, **SETTINGS)
        agent.start()
        try:
            agent.wait_for_pushes(0)  # new readings flow again
            resent = agent.cli("resend", "--status", "404")  # beside the running agent
            assert resent.returncode == 0, resent.stderr
            assert f"requeued {count} dead letters (seq 1-{count})" in resent.stdout
            wait_for(
                lambda: agent.status()["dead_letters"] == 0 and agent.status()["depth"] < 60,
                60,
                "the resent readings to be delivered",
            )
            wait_for(
                lambda: receiver.get(f"/api/nodes/{DEVICE}")["dead_letters"] == 0,
                30,
                "a heartbeat reporting no dead letters",
            )
        finally:
            assert agent.terminate() == 0
        agent.drain(receiver)

        stored = [reading["seq"] for reading in receiver.readings(DEVICE)]
        last_seq = agent.status()["counters"]["last_seq"]
        assert sorted(stored) == list(range(1, last_seq + 1)), "a seq missing or stored twice"
        assert last_seq > count
        final = agent.status()
        assert final["counters"]["resent"] == count
        assert final["counters"]["duplicates_acknowledged"] >= 5  # the early batch
        node = receiver.get(f"/api/nodes/{DEVICE}")
        assert node["config_error"] is None and node["dead_letters"] == 0
