"""What beam.fleet.agent leaves on a node, read from the node itself."""

import json

from conftest import MAX_EXPOSURE, VERSION, unit_exposure

BEAM_AGENT = "/opt/beam/agent/current/venv/bin/beam-agent"


def test_unit_is_enabled_and_running(host):
    service = host.service("beam-agent.service")
    assert service.is_enabled
    assert service.is_running
    assert host.run("systemctl show -p Type --value beam-agent.service").stdout.strip() == "notify"


def test_runs_as_the_service_user(host):
    pid = host.run("systemctl show -p MainPID --value beam-agent.service").stdout.strip()
    assert pid not in ("", "0")
    status = host.file(f"/proc/{pid}/status").content_string
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert int(uid) == host.user("beam-agent").uid


def test_unit_is_hardened(host):
    assert unit_exposure(host, "beam-agent.service") <= MAX_EXPOSURE
    unit = host.file("/etc/systemd/system/beam-agent.service")
    assert unit.mode == 0o644
    for line in (
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "StateDirectory=beam-agent",
        "WatchdogSec=60",
        "Restart=always",
        "PrivateDevices=true",
    ):
        assert unit.contains(f"^{line}$"), line


def test_release_layout(host):
    current = host.file("/opt/beam/agent/current")
    assert current.is_symlink
    assert current.linked_to == f"/opt/beam/agent/releases/{VERSION}"
    assert host.file(BEAM_AGENT).is_file
    assert host.file(f"/opt/beam/agent/releases/{VERSION}/BUILD").content_string.startswith(f"{VERSION}-")


def test_config_and_token_modes(host):
    config = host.file("/etc/beam/agent.toml")
    assert (config.user, config.group, config.mode) == ("root", "beam-agent", 0o640)
    assert config.contains('^device_id = "beam-mol-agent"$')
    token = host.file("/etc/beam/agent.token")
    assert (token.user, token.group, token.mode) == ("beam-agent", "beam-agent", 0o600)
    assert len(token.content_string.strip()) == 48


def test_config_is_accepted_by_the_agent(host):
    result = host.run(f"{BEAM_AGENT} check-config --config /etc/beam/agent.toml")
    assert result.rc == 0, result.stderr
    assert "3 sensors" in result.stdout


def test_state_directory_belongs_to_the_agent(host):
    state = host.file("/var/lib/beam-agent")
    assert state.is_directory
    assert state.user == "beam-agent"
    assert state.mode == 0o750


def test_sensors_are_read_and_queued(host):
    result = host.run(f"{BEAM_AGENT} status --json --config /etc/beam/agent.toml")
    assert result.rc == 0, result.stderr
    status = json.loads(result.stdout)
    assert set(status["sensors"]) == {"system", "wave", "counter"}
    for name, stats in status["sensors"].items():
        assert stats["readings"] > 0, name
    # no receiver in this scenario: everything read is still queued, nothing lost
    assert status["depth"] > 0
    assert status["counters"].get("dropped", 0) == 0


def test_top_processes_lists_other_users_processes(host):
    """top_processes sees the whole node: the unit relaxes ProtectProc for it and stays hardened."""
    script = (
        "import json, sqlite3; c = sqlite3.connect('file:/var/lib/beam-agent/queue.db?mode=ro', uri=True);"
        " print(c.execute(\"SELECT payload FROM readings WHERE sensor = 'system' ORDER BY seq DESC LIMIT 1\")"
        ".fetchone()[0])"
    )
    result = host.run("python3 -c %s", script)
    assert result.rc == 0, result.stderr
    processes = json.loads(result.stdout)["top_processes"]
    assert len(processes) == 5, processes
    # PID 1 (systemd, root's) is listed or at least other pids than the agent's own are
    agent_pid = int(host.check_output("systemctl show -p MainPID --value beam-agent.service"))
    assert any(entry["pid"] != agent_pid for entry in processes), processes
    assert host.file("/etc/systemd/system/beam-agent.service").contains("^ProtectProc=default$")
    exposure = unit_exposure(host, "beam-agent.service")
    print(f"beam-agent.service exposure with top_processes: {exposure}")
    assert exposure <= MAX_EXPOSURE
