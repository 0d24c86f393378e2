"""The alerting rules the collection ships: valid for Prometheus, right on test series, and
reading only metrics a receiver really exports.

promtool (Debian's prometheus package; `make unit` installs it) checks and unit-tests the
rules (beam-fleet-rules.test.yml holds the series and the alerts each must raise).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.app import Receiver
from tests.support.constants import DEVICE

RULES_DIR = (
    Path(__file__).resolve().parents[2]
    / "collections/ansible_collections/beam/fleet/roles/receiver/files/prometheus"
)
RULES = RULES_DIR / "beam-fleet-rules.yml"
# Series the rules read that a receiver does not export: Prometheus's own and the
# blackbox exporter's (docs/monitoring.md).
FROM_ELSEWHERE = {"up", "probe_ssl_earliest_cert_expiry"}
PROMQL_FUNCTIONS = {"max", "sum", "by", "increase", "deriv", "rate", "time", "and"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: apt-get install prometheus (make unit does it as root)")
    return found


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_every_rule_fires_on_its_series_and_only_there() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", "beam-fleet-rules.test.yml"],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(
        re.findall(r"alertname: (\w+)", (RULES_DIR / "beam-fleet-rules.test.yml").read_text())
    )
    shipped = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    assert shipped - tested == set(), "rules without a promtool test"


def test_the_rules_read_only_metrics_a_receiver_exports(receiver: Receiver) -> None:
    heartbeat = {
        "node_id": DEVICE,
        "timestamp": "2026-02-15T19:06:00Z",
        "metrics": {"queue_depth": 3, "dropped": 0, "dead_letters": 0},
    }
    assert receiver.client.post(
        "/api/telemetry", json=heartbeat, headers=receiver.headers()
    ).status_code in (200, 202)
    exported = set(
        re.findall(
            r"^# TYPE (\w+) ",
            receiver.client.get("/metrics", headers=receiver.operator()).get_data(as_text=True),
            re.MULTILINE,
        )
    )
    exported |= {name + "_total" for name in exported}  # counters' samples
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            expression = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\bby \([^)]*\)', "", rule["expr"])
            names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b", expression)) - PROMQL_FUNCTIONS
            unknown = names - exported - FROM_ELSEWHERE
            assert unknown == set(), f"{rule['alert']} reads {sorted(unknown)}, not exported"
