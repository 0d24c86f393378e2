"""Rollouts end to end: 1.0.0 deployed, 1.1.0 rolled out, a broken 1.2.0 stopped at the canary.

The tests run in file order, each building on the fleet the one before left, and drive the
playbooks exactly as an operator does (ansible-playbook with the scenario's inventory).
"""

import json
import subprocess
import time
from datetime import datetime

from conftest import operator_get
from rollout_support import (
    REPORTS,
    assert_no_gap,
    latest_report,
    latest_report_path,
    on_node,
    playbook,
    recap,
    release_record,
)

AGENTS = [f"beam-mol-rollout-a{i}" for i in range(1, 5)]  # inventory order: a1 is the canary
RECEIVER = "beam-mol-rollout-rx"
testinfra_hosts = ["ansible://" + RECEIVER]

def test_converge_deployed_the_pinned_release():
    for name in AGENTS:
        record = release_record(name)
        assert record["active"] == "1.0.0", (name, record)
        assert on_node(name, "readlink", "/opt/beam/agent/current").stdout.strip() == "releases/1.0.0"


def test_rollout_of_1_1_0_goes_canary_first_and_passes_every_gate(host):
    result = playbook("rollout.yml", "-e", "beam_version=1.1.0")
    assert result.returncode == 0
    report = latest_report("agent", "1.1.0")
    assert report["result"] == "completed", report["summary"]
    by_node = {node["node"]: node for node in report["nodes"]}
    assert set(by_node) == set(AGENTS)
    # batches [1, "25%", "100%"] of 4 nodes: the canary alone, then one, then the last two
    assert [by_node[name]["batch"] for name in AGENTS] == [1, 2, 3, 3]
    for name in AGENTS:
        node = by_node[name]
        assert (node["result"], node["version_before"], node["version_after"]) == ("passed", "1.0.0", "1.1.0")
        assert node["switched"] and not node["rolled_back"]
        record = release_record(name)
        assert (record["active"], record["previous"]) == ("1.1.0", "1.0.0")
        assert record["rollout"] == latest_report_path("agent", "1.1.0").stem  # the rollout's id
    nodes = {node["node_id"]: node for node in operator_get(host, "/api/nodes")["nodes"]}
    for name in AGENTS:
        assert (nodes[name]["status"], nodes[name]["software_version"]) == ("online", "1.1.0")
    started = datetime.fromisoformat(report["started_at"].replace("Z", "+00:00"))
    switched = {name: datetime.fromisoformat(release_record(name)["changed_at"].replace("Z", "+00:00")) for name in AGENTS}
    print("rollout 1.1.0, each node's switch after the rollout started (a3 aarch64 and a4 armv7l are "
          "emulated): " + ", ".join(f"{name[-2:]} {(switched[name] - started).total_seconds():.0f} s" for name in AGENTS))
    gates = [by_node[name]["gate_seconds"] for name in AGENTS]
    print(f"rollout 1.1.0: {result.seconds:.0f} s for {len(AGENTS)} nodes in 3 batches; "
          f"per node switch-to-gate-passed: {', '.join('%.0f s' % s for s in gates)}")
    (REPORTS / "timing.txt").write_text(f"rollout_seconds={result.seconds:.1f} nodes={len(AGENTS)} gates={gates}\n")


def test_no_reading_was_lost_or_doubled_by_the_upgrade(host):
    for name in AGENTS:
        assert_no_gap(host, name)


def test_rerunning_a_finished_rollout_changes_nothing():
    result = playbook("rollout.yml", "-e", "beam_version=1.1.0")
    assert result.returncode == 0
    counts = recap(result.stdout)
    for name in AGENTS:
        assert counts[name]["changed"] == 0, (name, counts[name])
    report = latest_report("agent", "1.1.0")
    assert report["result"] == "completed"
    assert not any(node["switched"] for node in report["nodes"])


def test_a_broken_release_is_stopped_at_the_canary_and_rolled_back(host):
    before = {name: release_record(name) for name in AGENTS}
    result = playbook("rollout.yml", "-e", "beam_version=1.2.0", "-e", "beam_rollout_gate_timeout_s=45")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "rollout of beam-agent 1.2.0: stopped after batch 1; 1 node(s) failed (budget 0)" in output
    assert "beam-mol-rollout-a1 (failed; rolled back to 1.1.0)" in output
    report = latest_report("agent", "1.2.0")
    assert report["result"] == "stopped"
    assert report["failed"] == ["beam-mol-rollout-a1"]
    assert report["rolled_back"] == ["beam-mol-rollout-a1"]
    assert report["not_reached"] == AGENTS[1:]
    canary = {node["node"]: node for node in report["nodes"]}["beam-mol-rollout-a1"]
    assert (canary["version_before"], canary["version_after"]) == ("1.1.0", "1.1.0")
    assert any("healthy again" in reason for reason in canary["reasons"]), canary["reasons"]

    record = release_record("beam-mol-rollout-a1")
    assert (record["active"], record["rolled_back_from"]) == ("1.1.0", "1.2.0")
    assert record["rollout"] == latest_report_path("agent", "1.2.0").stem
    assert [entry["action"] for entry in record["history"][-2:]] == ["activate", "rollback"]
    assert on_node("beam-mol-rollout-a1", "systemctl", "is-active", "beam-agent").stdout.strip() == "active"
    for name in AGENTS[1:]:
        assert release_record(name) == before[name], f"{name} was touched"
        assert on_node(name, "test", "-e", "/opt/beam/agent/releases/1.2.0").returncode == 1


def test_the_canary_pushes_again_and_lost_nothing(host):
    def canary_seq():
        return assert_no_gap(host, "beam-mol-rollout-a1")

    first = canary_seq()
    deadline = time.monotonic() + 60
    while canary_seq() <= first and time.monotonic() < deadline:
        time.sleep(2)
    assert canary_seq() > first, "the rolled-back canary does not deliver new readings"

    # The receiver's fleet view knows the last rollout from the nodes' heartbeats.
    rollout = latest_report_path("agent", "1.2.0").stem
    deadline = time.monotonic() + 60
    while True:
        fleet = operator_get(host, "/api/nodes")
        last = fleet["last_rollout"]
        if (last and last["id"] == rollout) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert last is not None and last["id"] == rollout, last
    assert (last["version"], last["rolled_back"], last["switched"]) == ("1.2.0", ["beam-mol-rollout-a1"], [])
    assert set(AGENTS[1:]) <= set(last["not_changed"])
    canary = {node["node_id"]: node for node in fleet["nodes"]}["beam-mol-rollout-a1"]
    assert (canary["release"]["active"], canary["release"]["rolled_back_from"]) == ("1.1.0", "1.2.0")


def test_rollback_playbook_returns_a_node_to_its_release_before(host):
    result = playbook("rollback.yml", "--limit", "beam-mol-rollout-a3")
    assert result.returncode == 0
    assert "rolled back from 1.1.0 to 1.0.0" in result.stdout
    record = release_record("beam-mol-rollout-a3")
    assert (record["active"], record["rolled_back_from"]) == ("1.0.0", "1.1.0")
    assert release_record("beam-mol-rollout-a2")["active"] == "1.1.0"
    # guarded by rollback_from, a second run changes nothing
    again = playbook("rollback.yml", "--limit", "beam-mol-rollout-a3", "-e", "rollback_from=1.1.0")
    assert again.returncode == 0
    assert recap(again.stdout)["beam-mol-rollout-a3"]["changed"] == 0
    assert release_record("beam-mol-rollout-a3")["active"] == "1.0.0"


def test_status_shows_the_active_and_previous_release_of_every_node(host):
    result = playbook("status.yml", "-e", f"beam_status_report_file={REPORTS}/status.json")
    assert result.returncode == 0
    rows = {row["host"]: row for row in json.loads((REPORTS / "status.json").read_text())["nodes"]}
    assert rows["beam-mol-rollout-a3"]["releases"]["agent"]["active"] == "1.0.0"
    assert rows["beam-mol-rollout-a2"]["releases"]["agent"]["active"] == "1.1.0"
    assert rows["beam-mol-rollout-a2"]["releases"]["agent"]["previous"] == "1.0.0"
    assert rows[RECEIVER]["releases"]["receiver"]["active"] == "1.0.0"
    assert "1.1.0 (1.0.0)" in result.stdout


def test_every_agent_lost_nothing_through_all_of_it(host):
    for name in AGENTS:
        assert_no_gap(host, name)



def test_an_unreachable_node_counts_against_the_budget():
    """a2 is down: with max_failed_nodes=1 the rollout goes on and reports it; with 0 it stops.

    Limited to a1 and a2 (an operator's --limit), so the ARM nodes' slow gates are not paid
    twice more: a1 is the canary, a2 the next batch.
    """
    limit = ("--limit", "beam-mol-rollout-a1,beam-mol-rollout-a2")
    subprocess.run(["docker", "stop", "--time", "5", "beam-mol-rollout-a2"], check=True, capture_output=True)
    try:
        result = playbook("rollout.yml", *limit, "-e", "beam_version=1.1.0", "-e", "max_failed_nodes=1")
        report = latest_report("agent", "1.1.0")
        by_node = {node["node"]: node for node in report["nodes"]}
        assert by_node["beam-mol-rollout-a2"]["result"] == "unreachable"
        assert report["failed"] == ["beam-mol-rollout-a2"]
        assert sorted(by_node) == ["beam-mol-rollout-a1", "beam-mol-rollout-a2"]  # the limit held
        assert report["result"] == "completed within the failure budget", report["summary"]
        assert by_node["beam-mol-rollout-a1"]["result"] == "passed"
        assert release_record("beam-mol-rollout-a1")["active"] == "1.1.0"
        assert "unreachable" in result.stdout

        stopped = playbook("rollout.yml", *limit, "-e", "beam_version=1.1.0")
        assert stopped.returncode != 0
        assert "1 node(s) failed (budget 0)" in stopped.stdout + stopped.stderr
        assert latest_report("agent", "1.1.0")["result"] == "stopped"
    finally:
        subprocess.run(["docker", "start", "beam-mol-rollout-a2"], check=False, capture_output=True)
