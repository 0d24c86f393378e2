"""A network partition between the agents and the receiver is an outage like any other.

The receiver's container is taken off the scenario's docker network for PARTITION_S while
every agent keeps reading; the agents' queues must grow and their pushes fail. Once it is
back, every agent must drain its backlog: the receiver then holds seq 1..last of every agent,
each exactly once (nothing lost in the partition, nothing stored twice by the retries).

Runs after test_fleet.py (file order), on the deployed fleet; costs PARTITION_S plus the
drain (the agents' back-off after a minute of failures is up to about two minutes).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from conftest import FLEET_AGENTS as AGENTS
from conftest import stored_seqs, wait_for

RECEIVER = "beam-mol-fleet-rx"
NETWORK = "beam-mol-fleet"
testinfra_hosts = ["ansible://" + RECEIVER]

PARTITION_S = 60.0
DRAIN_TIMEOUT_S = 420.0
STATUS = "/opt/beam/agent/current/venv/bin/beam-agent status --json --config /etc/beam/agent.toml"
LAST_SEQ = (
    "import sqlite3; c = sqlite3.connect('file:/var/lib/beam-agent/queue.db?mode=ro', uri=True);"
    " print(c.execute('SELECT max(seq) FROM readings').fetchone()[0])"
)


def docker(*args: str) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout


def on_agent(container: str, command: str) -> str:
    """Run a shell command on an agent node through docker exec (not over the network)."""
    return docker("exec", container, "sh", "-c", command)


def agent_status(container: str) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(on_agent(container, STATUS))
    return status


def agent_last_seq(container: str) -> int:
    return int(on_agent(container, f'python3 -c "{LAST_SEQ}"').strip())


def receiver_aliases() -> list[str]:
    networks = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", RECEIVER))
    assert NETWORK in networks, f"{RECEIVER} is not on {NETWORK}: {sorted(networks)}"
    return [a for a in networks[NETWORK].get("Aliases") or [] if a != RECEIVER]


def test_agents_buffer_through_a_partition_and_drain_after(host):
    before = {device: max(stored_seqs(host, device)) for device in AGENTS.values()}
    depth_before = {name: agent_status(name)["depth"] for name in AGENTS}
    aliases = receiver_aliases()
    started = time.monotonic()
    docker("network", "disconnect", NETWORK, RECEIVER)
    try:
        time.sleep(15.0)  # a push in flight at the cut has ended (push timeout 10 s)
        cut = {device: max(stored_seqs(host, device)) for device in AGENTS.values()}
        time.sleep(PARTITION_S - 15.0)
        during = {name: agent_status(name) for name in AGENTS}
        last_seq = {name: agent_last_seq(name) for name in AGENTS}
        held = {device: max(stored_seqs(host, device)) for device in AGENTS.values()}
    finally:
        connect = ["network", "connect"]
        for alias in aliases:
            connect += ["--alias", alias]
        docker(*connect, NETWORK, RECEIVER)
    partition_s = time.monotonic() - started

    for name, device in AGENTS.items():
        status = during[name]
        # the agent kept reading and queued what it could not deliver
        assert status["depth"] >= depth_before[name] + 100, (name, depth_before[name], status)
        assert status["last_push"]["ok"] is False, (name, status["last_push"])
        # and the receiver got nothing more from it while cut off
        assert held[device] == cut[device] >= before[device], (device, before, cut, held)
        assert last_seq[name] > held[device], (name, last_seq[name], held[device])

    def delivered() -> dict[str, int]:
        return {device: max(stored_seqs(host, device)) for device in AGENTS.values()}

    drained = wait_for(
        delivered,
        lambda now: all(now[AGENTS[name]] >= last_seq[name] for name in AGENTS),
        DRAIN_TIMEOUT_S,
        every_s=5.0,
    )
    drain_s = time.monotonic() - started - partition_s
    lines = []
    for name, device in AGENTS.items():
        assert drained[device] >= last_seq[name], (device, drained[device], last_seq[name])
        seqs = stored_seqs(host, device)
        missing = set(range(1, max(seqs) + 1)) - set(seqs)
        duplicates = len(seqs) - len(set(seqs))
        assert not missing and not duplicates, (device, sorted(missing)[:20], duplicates)
        assert agent_status(name)["dead_letters"] == 0, device
        lines.append(
            f"{device}: queued {during[name]['depth']} during the partition, receiver holds "
            f"1..{max(seqs)} ({len(seqs)} rows), 0 missing, 0 duplicates"
        )
    print(f"\npartition {partition_s:.0f} s, all drained {drain_s:.0f} s after reconnecting")
    print("\n".join(lines))
