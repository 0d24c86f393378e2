"""An agent given the wrong CA: it delivers nothing through nginx, loses nothing, and once its
ca_file is right again every reading arrives exactly once."""

import json
import subprocess
import time

from conftest import stored_seqs

AGENT = "beam-mol-fleet-a2"
DEVICE = "beam-mol-fleet-a2"
RECEIVER = "beam-mol-fleet-rx"
testinfra_hosts = ["ansible://" + RECEIVER]

STATUS = "/opt/beam/agent/current/venv/bin/beam-agent status --json --config /etc/beam/agent.toml"
# Debian's public CAs: a real bundle, but not the fleet's CA
WRONG_CA = "/etc/ssl/certs/ca-certificates.crt"


def on_agent(command: str) -> str:
    result = subprocess.run(["docker", "exec", AGENT, "sh", "-c", command],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return result.stdout


def point_ca_file_at(path: str) -> None:
    on_agent(f"sed -i 's|^ca_file = .*|ca_file = \"{path}\"|' /etc/beam/agent.toml && systemctl restart beam-agent")


def test_a_wrong_ca_delivers_nothing_loses_nothing_and_everything_once_fixed(host):
    point_ca_file_at(WRONG_CA)
    try:
        time.sleep(5)
        stored_before = len(stored_seqs(host, DEVICE))
        time.sleep(15)
        status = json.loads(on_agent(STATUS))
        assert status["last_push"]["failure"] == "tls", status["last_push"]
        assert "TLS" in status["last_push"]["detail"], status["last_push"]
        assert len(stored_seqs(host, DEVICE)) == stored_before  # nothing got through
        assert status["depth"] > 0  # ... and nothing was dropped: it waits in the queue
    finally:
        point_ca_file_at("/etc/beam/fleet-ca.crt")
    deadline = time.monotonic() + 120
    while True:
        seqs = stored_seqs(host, DEVICE)
        status = json.loads(on_agent(STATUS))
        if status["depth"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert sorted(seqs) == list(range(1, max(seqs) + 1))
    assert len(seqs) > stored_before
