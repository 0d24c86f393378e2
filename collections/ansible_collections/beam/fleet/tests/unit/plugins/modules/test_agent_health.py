"""agent_health runs the real status command (a stand-in beam-agent program) and judges it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ansible_collections.beam.fleet.plugins.modules import agent_health
from conftest import run_module


def fake_agent(tmp_path: Path, document, exit_code: int = 0, stderr: str = "") -> Path:
    """A program that answers `status --json --config X` like beam-agent does."""
    data = tmp_path / "status.json"
    data.write_text(json.dumps(document))
    program = tmp_path / "beam-agent"
    program.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"assert sys.argv[1:4] == ['status', '--json', '--config'], sys.argv\n"
        f"sys.stderr.write({stderr!r})\n"
        f"print(open({str(data)!r}).read()) if {exit_code} == 0 else None\n"
        f"sys.exit({exit_code})\n"
    )
    program.chmod(0o755)
    return program


def healthy_status():
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "depth": 0,
        "counters": {"pushed": 10},
        "last_push": {"ok": True, "detail": "200", "at": now},
        "last_success_at": now,
        "sensors": {"wave": {"readings": 5, "errors": 0, "consecutive_errors": 0}},
    }


def test_healthy_agent(tmp_path, capsys):
    program = fake_agent(tmp_path, healthy_status())
    result, failed = run_module(
        agent_health.main,
        {"executable": str(program), "config": "/etc/beam/agent.toml", "expect_sensors": ["wave"]},
        capsys,
    )
    assert not failed
    assert result["healthy"] is True
    assert result["changed"] is False
    assert result["pushed"] == 10
    assert result["sensors"]["wave"]["readings"] == 5


def test_unhealthy_agent_fails_only_when_asked(tmp_path, capsys):
    document = healthy_status()
    document["sensors"]["wave"]["consecutive_errors"] = 4
    document["sensors"]["wave"]["last_error"] = "timeout"
    program = fake_agent(tmp_path, document)
    result, failed = run_module(agent_health.main, {"executable": str(program)}, capsys)
    assert not failed
    assert result["healthy"] is False
    assert result["reasons"] == ["sensor wave: 4 errors in a row (last: timeout)"]
    result, failed = run_module(
        agent_health.main, {"executable": str(program), "fail_on_unhealthy": True}, capsys
    )
    assert failed
    assert "agent is unhealthy: sensor wave: 4 errors in a row" in result["msg"]


def test_agent_without_state_is_unhealthy_with_its_message(tmp_path, capsys):
    program = fake_agent(tmp_path, {}, exit_code=1, stderr="no agent state in /var/lib/beam-agent")
    result, failed = run_module(agent_health.main, {"executable": str(program)}, capsys)
    assert not failed
    assert result["healthy"] is False
    assert result["reasons"] == [
        "beam-agent status failed (exit 1): no agent state in /var/lib/beam-agent"
    ]


def test_missing_program_is_reported(tmp_path, capsys):
    result, failed = run_module(
        agent_health.main, {"executable": str(tmp_path / "nowhere"), "fail_on_unhealthy": True}, capsys
    )
    assert failed
    assert result["msg"] == f"beam-agent is not installed at {tmp_path / 'nowhere'}"
