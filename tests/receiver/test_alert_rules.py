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


def monitoring_snippets() -> dict[str, str]:
    """docs/monitoring.md's YAML blocks by the file each one names in its first line."""
    text = (Path(__file__).resolve().parents[2] / "docs/monitoring.md").read_text("utf-8")
    blocks = re.findall(r"```yaml\n# (\S+)[^\n]*\n(.*?)```", text, re.DOTALL)
    return {name: body for name, body in blocks}


def test_the_documented_prometheus_config_loads_the_shipped_rules(tmp_path: Path) -> None:
    """docs/monitoring.md's prometheus.yml, with /etc/prometheus moved to a temporary
    directory holding the shipped rules, the token and the CA it names."""
    snippet = monitoring_snippets()["prometheus.yml"]
    (tmp_path / "rules.d").mkdir()
    shutil.copy(RULES, tmp_path / "rules.d" / RULES.name)
    (tmp_path / "beam-operator.token").write_text("token\n")
    (tmp_path / "beam-fleet-ca.crt").write_text("")
    config = tmp_path / "prometheus.yml"
    config.write_text(snippet.replace("/etc/prometheus/", f"{tmp_path}/"))
    result = subprocess.run(
        [promtool(), "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout, result.stdout
    scraped = yaml.safe_load(snippet)["scrape_configs"]
    assert [job["job_name"] for job in scraped] == ["beam-receiver", "beam-receiver-tls"]


def test_the_documented_alertmanager_route_is_valid_and_pages_critical_alerts(
    tmp_path: Path,
) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is missing: apt-get install prometheus-alertmanager (make unit does)")
    config = tmp_path / "alertmanager.yml"
    config.write_text(monitoring_snippets()["alertmanager.yml"])
    result = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

    def route(*labels: str) -> str:
        routed = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True,
            text=True,
            check=False,
        )
        assert routed.returncode == 0, routed.stdout + routed.stderr
        return routed.stdout.strip()

    assert route("alertname=BeamNodeOffline", "severity=critical", "node_id=n1") == "fleet-pager"
    assert route("alertname=BeamDeadLetters", "severity=warning", "node_id=n1") == "fleet-chat"
    severities = {
        rule["labels"]["severity"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    assert severities == {"critical", "warning", "info"}
