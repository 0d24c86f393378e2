"""The Raspberry Pi nodes: a3 is aarch64 (Debian 12 arm64), a4 armv7l (Debian 11 armhf,
Python 3.9), both run by qemu's user-mode emulation (docs/arm.md) with PyPI unreachable.

These run after converge and before test_rollout.py (file order), which then rolls 1.1.0
out with both ARM nodes in the last batch (a re-run changing nothing on any node, ARM ones
included) and rolls a3 back to 1.0.0 with beam.fleet.rollback: on ARM.
"""

import json
import os
import subprocess

from conftest import operator_get
from rollout_support import assert_no_gap, on_node, playbook

ARM = {"beam-mol-rollout-a3": "aarch64", "beam-mol-rollout-a4": "armv7l"}
RECEIVER = "beam-mol-rollout-rx"
testinfra_hosts = ["ansible://" + RECEIVER]
AGENT_PYTHON = "/opt/beam/agent/current/venv/bin/python"
PYPI = "import urllib.request; urllib.request.urlopen('https://pypi.org/simple/', timeout=10)"


def test_the_nodes_are_the_architectures_they_claim():
    for name, machine in ARM.items():
        assert on_node(name, "uname", "-m").stdout.strip() == machine
        # the agent's own interpreter, from the release's venv: an ARM build of CPython
        said = on_node(name, AGENT_PYTHON, "-c", "import platform, sys; print(platform.machine(), sys.version_info[:2])")
        assert said.returncode == 0, said.stderr
        print(f"{name}: {said.stdout.strip()}")
        assert said.stdout.startswith(machine)
    assert "(3, 9)" in on_node("beam-mol-rollout-a4", AGENT_PYTHON, "-c", "import sys; print(sys.version_info[:2])").stdout


def test_pypi_is_unreachable_from_them_so_the_install_was_offline():
    for name in ARM:
        tried = on_node(name, "python3", "-c", PYPI)
        assert tried.returncode != 0, f"{name} reached PyPI"


def test_psutil_was_built_on_the_armv7l_node_from_the_wheelhouse_source():
    """PyPI has no psutil wheel for armv7l: the wheelhouse carries its source (SDISTS)."""
    found = on_node("beam-mol-rollout-a4", "sh", "-c", "cat /opt/beam/wheelhouse/*/SDISTS")
    assert found.returncode == 0 and "psutil" in found.stdout, found.stdout + found.stderr
    imported = on_node("beam-mol-rollout-a4", AGENT_PYTHON, "-c",
                       "import psutil; print(psutil.__file__, psutil.cpu_count())")
    assert imported.returncode == 0, imported.stderr


def test_the_arm_agents_deliver_every_seq_once(host):
    nodes = {node["node_id"]: node for node in operator_get(host, "/api/nodes")["nodes"]}
    for name in ARM:
        assert nodes[name]["status"] == "online", nodes[name]
        assert nodes[name]["software_version"] == "1.0.0"
        print(f"{name}: highest seq {assert_no_gap(host, name)}, every one stored once")


def test_sensor_facts_runs_on_arm():
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    run = subprocess.run(
        ["ansible", "-i", inventory, ",".join(ARM), "-m", "beam.fleet.sensor_facts"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    results = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]
    for name in ARM:
        assert not results[name].get("failed"), results[name]
        found = results[name]["ansible_facts"]["beam_sensors_discovered"]
        # containers have no I2C bus or serial adapter: the module still answers, with none
        assert found["i2c"] == [] and found["serial"] == [], found


def test_a_wrong_beam_arch_is_refused_naming_host_and_variable():
    """A Pi's wheelhouse for an x86_64 node (an operator's slip in the inventory) is refused
    before anything changes. On x86_64 a1: the check is the same on every node, and an
    emulated node's run costs a minute."""
    result = playbook("agents.yml", "--limit", "beam-mol-rollout-a1", "-e", "beam_arch=aarch64")
    assert result.returncode != 0
    said = " ".join((result.stdout + result.stderr).split())
    assert "beam-mol-rollout-a1: beam_arch is aarch64, the node's architecture is x86_64" in said, said[-2000:]
    assert on_node("beam-mol-rollout-a1", "systemctl", "is-active", "beam-agent").stdout.strip() == "active"
