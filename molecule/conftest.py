"""Shared testinfra helpers for every scenario: the journal on failure, unit checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

EXPOSURE = re.compile(r"Overall exposure level for \S+: ([0-9.]+)")
MAX_EXPOSURE = 2.5
# The fleet scenario's agents: container -> device id (inventory/fleet.yml).
FLEET_AGENTS = {
    "beam-mol-fleet-a1": "beam-mol-fleet-a1",
    "beam-mol-fleet-a2": "beam-mol-fleet-a2",
    "beam-mol-fleet-a3": "fleet-node-3",
    "beam-mol-fleet-a4": "beam-mol-fleet-a4",
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can see whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture(autouse=True)
def journal_on_failure(request, host):
    """When a test fails, print the node's beam journals: the first thing anyone asks for."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        journal = host.run(
            "journalctl --no-pager --lines 60 --unit 'beam-*' --output short-iso"
        ).stdout
        print(f"\n--- journal of {host.backend.get_hostname()} ---\n{journal}")


def unit_exposure(host, unit: str) -> float:
    """`systemd-analyze security` overall exposure of a unit (0 best, 10 worst)."""
    result = host.run(f"systemd-analyze security --no-pager {unit}")
    assert result.rc == 0, result.stderr
    match = EXPOSURE.search(result.stdout)
    assert match, result.stdout
    return float(match.group(1))


EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
REPOSITORY = Path(__file__).resolve().parents[1]
# The version this tree builds (pyproject.toml; galaxy.yml and the bundled wheel say the same).
VERSION = re.search(r'(?m)^version = "([^"]+)"', (REPOSITORY / "pyproject.toml").read_text()).group(1)
# The fleet scenario deploys from an operator's project directory (fleet/converge.yml); its
# secrets are where an operator's are, <inventory>/.secrets. Other scenarios set the directory.
OPERATOR = EPHEMERAL / "operator"
SECRETS = OPERATOR / "inventory" / ".secrets" if (OPERATOR / "inventory").is_dir() else EPHEMERAL / "secrets"


def operator_playbook(name: str, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`ansible-playbook beam.fleet.<name>` in the operator's project, as converge ran site."""
    run = subprocess.run(
        [str(REPOSITORY / "molecule" / "scripts" / "operator.sh"), str(OPERATOR),
         "ansible-playbook", "-i", "inventory", f"beam.fleet.{name}", *extra],
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    print(run.stdout[-4000:], run.stderr[-2000:])
    return run
HTTP_GET = r"""
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(request, timeout=10) as answer:
    print(answer.read().decode())
"""


def operator_get(host, path):
    """GET a receiver API path on the receiver node with the scenario's operator token."""
    token = (SECRETS / "operators" / "ops").read_text().strip()
    result = host.run("python3 -c %s %s %s", HTTP_GET, "http://127.0.0.1:8000" + path, token)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def stored_seqs(host, device_id):
    """Every seq the receiver stored for a device, in stored order, all pages."""
    seqs, after = [], None
    while True:
        query = f"/api/readings?device_id={device_id}&limit=1000"
        page = operator_get(host, query + (f"&after={after}" if after else ""))
        seqs.extend(row["seq"] for row in page["readings"])
        after = page.get("next")
        if not after:
            return seqs


def wait_for(read, done, timeout_s=90.0, every_s=2.0):
    """Read until done(value) holds or time runs out (then the last value, for the assert);
    generous for a loaded 2-core machine."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(every_s)
