"""The real agent pushing to the real receiver: both as processes, over loopback HTTP.

This is the contract tested from both ends at once: the agent's headers, payloads and retry
policy against the receiver's validation, auth, dedupe and fleet status.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from beam_agent.queue import ReadingQueue
from beam_receiver.auth import hash_token

DEVICE = "beamrider-0001"
DEVICE_TOKEN = "integration-device-token"
OPERATOR_TOKEN = "integration-operator-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


@dataclass
class Receiver:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(
            self.url + path,
            params=params,
            timeout=30,
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        )
        assert response.status_code == 200, response.text
        return response.json()


def start_receiver(directory: Path, port: int) -> subprocess.Popen[bytes]:
    log = directory / "receiver.log"
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "beam_receiver",
                "serve",
                "--config",
                str(directory / "receiver.toml"),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # its own process group, like a systemd unit's cgroup


def healthy(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    port = free_port()
    (tmp_path / "tokens.toml").write_text(
        f'[devices]\n"{DEVICE}" = "{hash_token(DEVICE_TOKEN)}"\n'
        f'[operators]\n"ops" = "{hash_token(OPERATOR_TOKEN)}"\n'
    )
    (tmp_path / "expected.toml").write_text(
        f'[nodes."{DEVICE}"]\nrole = "agent"\n[nodes."never-seen"]\nrole = "agent"\n'
    )
    (tmp_path / "receiver.toml").write_text(
        "\n".join(
            [
                f'listen = "127.0.0.1:{port}"',
                f'database = "{tmp_path / "receiver.db"}"',
                f'tokens_file = "{tmp_path / "tokens.toml"}"',
                f'expected_nodes_file = "{tmp_path / "expected.toml"}"',
                "telemetry_interval_s = 2",
                "workers = 2",
                "",
            ]
        )
    )
    process = start_receiver(tmp_path, port)
    served = Receiver(f"http://127.0.0.1:{port}", process, tmp_path / "receiver.log")
    try:
        wait_for(lambda: healthy(served.url), 60, "the receiver to answer /healthz")
        yield served
    finally:
        if served.process.poll() is None:
            served.process.terminate()
            served.process.wait(30)


def write_agent_config(directory: Path, receiver_url: str) -> Path:
    token = directory / "agent.token"
    token.write_text(DEVICE_TOKEN + "\n")
    token.chmod(0o600)
    config = directory / "agent.toml"
    config.write_text(
        "\n".join(
            [
                f'device_id = "{DEVICE}"',
                f'api_url = "{receiver_url}"',
                f'device_token_file = "{token}"',
                f'state_dir = "{directory / "agent-state"}"',
                'tags = { site = "lab" }',
                "[push]",
                "interval_ms = 200",
                "batch_size = 100",
                "[telemetry]",
                "interval_s = 1",
                "[[sensor]]",
                'name = "counter"',
                'type = "virtual"',
                'signal = "counter"',
                "interval_ms = 20",
                "[[sensor]]",
                'name = "host"',
                'type = "system"',
                "interval_ms = 1000",
                "top_processes = 2",
                "",
            ]
        )
    )
    return config


def test_agent_delivers_everything_through_a_receiver_restart(
    receiver: Receiver, tmp_path: Path
) -> None:
    config = write_agent_config(tmp_path, receiver.url)
    agent = subprocess.Popen(
        [sys.executable, "-m", "beam_agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for(
            lambda: receiver.get(f"/api/nodes/{DEVICE}")["status"] == "online",
            60,
            "the agent's heartbeat to make the node online",
        )
        node = receiver.get(f"/api/nodes/{DEVICE}")
        assert node["software_version"]
        assert node["tags"] == {"site": "lab"}
        assert "queue_depth" in node

        # The receiver crashes (master and workers, as systemd kills a unit's cgroup) and
        # comes back: the agent buffers, then drains.
        os.killpg(receiver.process.pid, signal.SIGKILL)
        receiver.process.wait(30)
        time.sleep(3)
        port = int(receiver.url.rsplit(":", 1)[1])
        receiver.process = start_receiver(tmp_path, port)
        wait_for(lambda: healthy(receiver.url), 60, "the restarted receiver")
        time.sleep(2)
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0

    # What SIGTERM left queued goes out with the next start: an agent with no sensors on
    # the same state directory drains it, so the final count is exact.
    drain = tmp_path / "drain.toml"
    drain.write_text(config.read_text().split("[[sensor]]")[0])
    last_seq = ReadingQueue.read_status(tmp_path / "agent-state")["counters"]["last_seq"]
    agent = subprocess.Popen(
        [sys.executable, "-m", "beam_agent", "run", "--config", str(drain)],
        stdout=subprocess.DEVNULL,
    )
    wait_for(
        lambda: ReadingQueue.read_status(tmp_path / "agent-state")["depth"] == 0,
        60,
        "the queue to drain",
    )
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(15) == 0

    seqs: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"device_id": DEVICE, "limit": 1000}
        if cursor:
            params["after"] = cursor
        page = receiver.get("/api/readings", **params)
        seqs += [r["seq"] for r in page["readings"]]
        cursor = page["next"]
        if not cursor:
            break
    assert seqs == list(range(1, last_seq + 1)), "a seq is missing, reordered or stored twice"
    assert last_seq > 100

    latest = {
        r["sensor"]: r for r in receiver.get("/api/readings/latest", device_id=DEVICE)["readings"]
    }
    assert set(latest) == {"counter", "host"}
    assert 0 <= latest["host"]["payload"]["cpu_percent"] <= 100
    nodes = {n["node_id"]: n for n in receiver.get("/api/nodes")["nodes"]}
    assert nodes["never-seen"]["status"] == "offline"
