"""The fleet end to end: every agent's readings reached the receiver, the report says online."""

import json

from conftest import (
    FLEET_AGENTS as AGENTS,
    MAX_EXPOSURE,
    VERSION,
    operator_get,
    operator_playbook,
    stored_seqs,
    unit_exposure,
    wait_for,
)

RECEIVER = "beam-mol-fleet-rx"
testinfra_hosts = ["ansible://" + RECEIVER]


def test_every_agent_delivered_readings(host):
    def delivered():
        latest = operator_get(host, "/api/readings/latest")
        rows = latest.get("readings", latest) if isinstance(latest, dict) else latest
        return {(row["device_id"], row["sensor"]) for row in rows}

    wanted = {(agent, sensor) for agent in AGENTS.values() for sensor in ("counter", "wave")}
    found = wait_for(delivered, lambda pairs: wanted <= pairs)
    assert wanted <= found, sorted(wanted - found)


def test_no_gap_in_any_agents_seq(host):
    """The agents push in seq order and lose nothing: the receiver holds seq 1..N, once each."""
    for device_id in AGENTS.values():
        seqs = stored_seqs(host, device_id)
        assert seqs, device_id
        assert sorted(seqs) == list(range(1, max(seqs) + 1)), device_id


def test_every_agent_is_online_at_the_receiver(host):
    def statuses():
        nodes = operator_get(host, "/api/nodes")["nodes"]
        return {node["node_id"]: node["status"] for node in nodes}

    seen = wait_for(statuses, lambda now: all(now.get(a) == "online" for a in AGENTS.values()))
    for device_id in AGENTS.values():
        assert seen.get(device_id) == "online", seen


def test_units_are_hardened_everywhere(host):
    assert unit_exposure(host, "beam-receiver.service") <= MAX_EXPOSURE
    for name in AGENTS:
        agent = host.get_host("ansible://" + name, ansible_inventory=host.backend.ansible_inventory)
        assert agent.service("beam-agent.service").is_running
        assert unit_exposure(agent, "beam-agent.service") <= MAX_EXPOSURE


def test_fleet_report_shows_every_agent_online(tmp_path):
    report_file = tmp_path / "fleet.json"
    completed = operator_playbook("status", "-e", f"beam_status_report_file={report_file}", timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(report_file.read_text())
    rows = {row["node_id"]: row for row in report["nodes"]}
    for device_id in AGENTS.values():
        row = rows[device_id]
        assert row["status"] == "online", row
        assert row["healthy"] is True, row
        assert row["version"] == VERSION, row
        assert row["queue_depth"] is not None
    assert report["unexpected"] == []
    assert "NODE" in completed.stdout and "online" in completed.stdout
