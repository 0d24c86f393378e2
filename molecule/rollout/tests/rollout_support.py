"""What the rollout scenario's tests share: playbooks run as an operator runs them, and reads
of the nodes' release records and the receiver's stored seqs."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

from conftest import EPHEMERAL, stored_seqs

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
REPORTS = EPHEMERAL / "reports"


def playbook(name, *args):
    """Run one of the project's playbooks against the scenario's fleet; timed."""
    command = ["ansible-playbook", "beam.fleet." + name.removesuffix(".yml"), *args]
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if inventory:
        command[1:1] = ["-i", inventory]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, env=env, check=False)
    result.seconds = time.monotonic() - started
    print(f"$ {' '.join(command)}  ({result.seconds:.0f} s)\n{result.stdout[-2500:]}\n{result.stderr[-1500:]}")
    return result


def recap(output):
    """PLAY RECAP counts per host: {host: {'ok': n, 'changed': n, ...}}."""
    counts = {}
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        counts[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", fields)}
    return counts


def on_node(name, *command):
    result = subprocess.run(["docker", "exec", name, *command], capture_output=True, text=True, check=False)
    return result


def release_record(name):
    result = on_node(name, "cat", "/opt/beam/agent/release.json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def latest_report(component, version):
    return json.loads(latest_report_path(component, version).read_text())


def latest_report_path(component, version):
    """The newest record's file; its name without .json is the rollout's id."""
    reports = sorted(REPORTS.glob(f"*-{component}-{version}.json"))
    assert reports, f"no rollout record for {component} {version} in {REPORTS}"
    return reports[-1]


def assert_no_gap(host, device_id):
    """Every seq from 1 to the highest stored, once each: nothing lost or doubled by a switch."""
    seqs = stored_seqs(host, device_id)
    assert seqs, device_id
    assert len(seqs) == len(set(seqs)), f"{device_id}: seqs stored twice"
    missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
    assert not missing, f"{device_id}: {len(missing)} seqs missing, first {missing[:10]}"
    return max(seqs)
