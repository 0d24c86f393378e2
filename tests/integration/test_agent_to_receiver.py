"""The real agent pushing to the real receiver: both as processes, over loopback HTTP.

This is the contract tested from both ends at once: the agent's headers, payloads and retry
policy against the receiver's validation, auth, dedupe and fleet status.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.agent import AgentProcess, counter_sensor, write_agent_config
from tests.support.constants import DEVICE
from tests.support.receiver import ReceiverProcess, agent_nodes, configure_receiver
from tests.support.waiting import wait_for


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverProcess]:
    with configure_receiver(
        tmp_path,
        expected_nodes=agent_nodes(DEVICE, "never-seen"),
        telemetry_interval_s=2,
        workers=2,
    ) as served:
        yield served


def test_agent_delivers_everything_through_a_receiver_restart(
    receiver: ReceiverProcess, tmp_path: Path
) -> None:
    config = write_agent_config(
        tmp_path,
        receiver.url,
        [
            counter_sensor("counter", 20),
            {"name": "host", "type": "system", "interval_ms": 1000, "top_processes": 2},
        ],
        tags={"site": "lab"},
        push={"interval_ms": 200, "batch_size": 100},
        telemetry={"interval_s": 1},
    )
    agent = AgentProcess(config)
    agent.start()
    try:
        wait_for(
            lambda: receiver.get(f"/api/nodes/{DEVICE}")["status"] == "online",
            60,
            "the agent's heartbeat to make the node online",
        )
        node = receiver.get(f"/api/nodes/{DEVICE}")
        assert node["software_version"]
        assert node["tags"] == {"site": "lab"}
        assert "queue_depth" in node

        # The receiver crashes (master and workers, as systemd kills a unit's cgroup) and
        # comes back: the agent buffers, then drains.
        receiver.kill()
        time.sleep(3)
        receiver.start()
        time.sleep(2)
    finally:
        assert agent.terminate() == 0

    # What SIGTERM left queued goes out with the next start: an agent with no sensors on
    # the same state directory drains it, so the final count is exact.
    last_seq = agent.status()["counters"]["last_seq"]
    agent.drain(receiver)

    seqs = [reading["seq"] for reading in receiver.readings(DEVICE)]
    assert seqs == list(range(1, last_seq + 1)), "a seq is missing, reordered or stored twice"
    assert last_seq > 100

    latest = {
        r["sensor"]: r for r in receiver.get("/api/readings/latest", device_id=DEVICE)["readings"]
    }
    assert set(latest) == {"counter", "host"}
    assert 0 <= latest["host"]["payload"]["cpu_percent"] <= 100
    nodes = {n["node_id"]: n for n in receiver.get("/api/nodes")["nodes"]}
    assert nodes["never-seen"]["status"] == "offline"
