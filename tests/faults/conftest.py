"""What the fault tests share: a real `beam-receiver serve` that can be killed and restarted
on its port, real `beam-agent run` processes on one state directory, and exact accounting
by seq (the identity of a reading) of what the agent produced against what the receiver
stored.

Every fault test prints one `FAULT <name>: key=value ...` line with its counts, before it
asserts, and the lines are repeated at the end of the pytest run ("fault results") so that
CI logs show the counts whether the tests passed or not.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pytest
import requests

from beam_agent.queue import QueueError, ReadingQueue
from beam_receiver.auth import hash_password, hash_token

from tests.integration.test_agent_to_receiver import (
    DEVICE,
    DEVICE_TOKEN,
    OPERATOR_TOKEN,
    free_port,
    healthy,
    start_receiver,
    wait_for,
)

DASHBOARD_USER = "admin"
DASHBOARD_PASSWORD = "fault-test dashboard password"
FAULT_RESULTS: list[str] = []


def env_number(name: str, default: float) -> float:
    """A test parameter that CI or an operator may override from the environment."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise pytest.UsageError(f"{name}={text!r} is not a number") from None
    if value <= 0:
        raise pytest.UsageError(f"{name}={text!r} must be positive")
    return value


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC timestamp as the API writes it ('Z' suffix)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def report(name: str, **counts: object) -> str:
    """Print and remember a fault's one-line result (asserted on by the caller after)."""
    line = f"FAULT {name}: " + " ".join(f"{key}={value}" for key, value in counts.items())
    FAULT_RESULTS.append(line)
    print(line, flush=True)
    return line


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FAULT_RESULTS:
        terminalreporter.section("fault results")
        for line in FAULT_RESULTS:
            terminalreporter.write_line(line)


# -- the receiver -----------------------------------------------------------------------


@dataclass
class ReceiverProcess:
    """`beam-receiver serve` in its own process group (as systemd runs a unit's cgroup), so a
    SIGKILL takes the gunicorn master and its workers at once, like a crash of the unit."""

    directory: Path
    port: int
    process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = start_receiver(self.directory, self.port)
        wait_for(lambda: healthy(self.url), 60, "the receiver to answer /healthz")

    def kill(self) -> None:
        """SIGKILL to the whole process group: no graceful shutdown, nothing flushed."""
        assert self.process is not None and self.process.poll() is None, "not running"
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(
            self.url + path,
            params=params,
            timeout=30,
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
        )
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def readings(self, device_id: str = DEVICE) -> list[dict[str, Any]]:
        """Every stored reading of a device, in stored order (GET /api/readings pages)."""
        readings: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"device_id": device_id, "limit": 1000}
            if cursor:
                params["after"] = cursor
            page = self.get("/api/readings", **params)
            readings += page["readings"]
            cursor = page["next"]
            if not cursor:
                return readings

    def dashboard(self) -> requests.Session:
        """A logged-in dashboard session (the login form's CSRF token included)."""
        session = requests.Session()
        form = session.get(self.url + "/login", timeout=30).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
        assert token, "the login page has no CSRF token"
        response = session.post(
            self.url + "/login",
            data={
                "csrf_token": token.group(1),
                "username": DASHBOARD_USER,
                "password": DASHBOARD_PASSWORD,
            },
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 302, f"dashboard login failed: {response.status_code}"
        return session


def write_receiver_config(directory: Path, port: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokens.toml").write_text(
        f'[devices]\n"{DEVICE}" = "{hash_token(DEVICE_TOKEN)}"\n'
        f'[operators]\n"ops" = "{hash_token(OPERATOR_TOKEN)}"\n'
        f'[users]\n"{DASHBOARD_USER}" = "{hash_password(DASHBOARD_PASSWORD)}"\n'
    )
    (directory / "expected.toml").write_text(f'[nodes."{DEVICE}"]\nrole = "agent"\n')
    (directory / "receiver.toml").write_text(
        "\n".join(
            [
                f'listen = "127.0.0.1:{port}"',
                f'database = "{directory / "receiver.db"}"',
                f'tokens_file = "{directory / "tokens.toml"}"',
                f'expected_nodes_file = "{directory / "expected.toml"}"',
                "telemetry_interval_s = 2",
                "workers = 2",
                "",
            ]
        )
    )


@pytest.fixture
def receiver_down(tmp_path: Path) -> Iterator[ReceiverProcess]:
    """A configured receiver with nothing listening on its port yet (`.start()` it)."""
    receiver = ReceiverProcess(tmp_path / "receiver", free_port())
    write_receiver_config(receiver.directory, receiver.port)
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def receiver(receiver_down: ReceiverProcess) -> ReceiverProcess:
    """A running receiver (killed or stopped at the end of the test)."""
    receiver_down.start()
    return receiver_down


# -- the agent --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sensor:
    name: str
    interval_ms: int


def write_agent_config(
    directory: Path,
    receiver_url: str,
    sensors: Sequence[Sensor],
    queue: Optional[Mapping[str, object]] = None,
    push: Optional[Mapping[str, object]] = None,
    name: str = "agent.toml",
) -> Path:
    """A real config.toml: token file (0600), state_dir, virtual counter sensors."""
    token = directory / "agent.token"
    token.write_text(DEVICE_TOKEN + "\n")
    token.chmod(0o600)
    lines = [
        f'device_id = "{DEVICE}"',
        f'api_url = "{receiver_url}"',
        f'device_token_file = "{token}"',
        f'state_dir = "{directory / "agent-state"}"',
        "[telemetry]",
        "interval_s = 1",
    ]
    for table, values in (("queue", queue or {}), ("push", push or {})):
        lines.append(f"[{table}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    for sensor in sensors:
        lines += [
            "[[sensor]]",
            f'name = "{sensor.name}"',
            'type = "virtual"',
            'signal = "counter"',
            f"interval_ms = {sensor.interval_ms}",
        ]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


def toml_value(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


@dataclass
class AgentProcess:
    """`beam-agent run` as a child process on one state directory, started and killed at
    will; its log (stderr) is appended to agent.log next to the config."""

    config: Path
    env: dict[str, str] = field(default_factory=dict)
    process: Optional[subprocess.Popen[bytes]] = None

    @property
    def state_dir(self) -> Path:
        return self.config.parent / "agent-state"

    def start(self, config: Optional[Path] = None) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with (self.config.parent / "agent.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "beam_agent", "run", "--config", str(config or self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )

    def kill(self) -> None:
        assert self.process is not None and self.process.poll() is None, "the agent had died"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self) -> int:
        """SIGTERM; the contract: exit status 0 within 10 s."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(15)
        return code

    def status(self) -> dict[str, Any]:
        """The queue's status as `beam-agent status --json` shows it (read-only, any time)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                status: dict[str, Any] = ReadingQueue.read_status(self.state_dir)
                return status
            except (FileNotFoundError, QueueError):  # the agent is just creating the file
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def wait_for_pushes(self, more_than: int, timeout: float = 60) -> None:
        wait_for(
            lambda: self.status()["counters"]["pushed"] > more_than,
            timeout,
            f"the agent to push more than {more_than} readings",
        )

    def drain(self, receiver: ReceiverProcess) -> None:
        """Deliver what is left queued: an agent with the same settings and no sensors runs
        until the queue is empty and the receiver has its heartbeat (so it is up and its
        counters are the final ones), then stops on SIGTERM (exit 0)."""
        sensorless = self.config.with_name("drain.toml")
        sensorless.write_text(self.config.read_text().split("[[sensor]]")[0])
        started = datetime.now(timezone.utc)
        self.start(sensorless)

        def heard_since_start() -> bool:
            seen = receiver.get(f"/api/nodes/{DEVICE}")["last_seen"]
            return seen is not None and parse_time(seen) >= started

        wait_for(heard_since_start, 120, "a heartbeat from the draining agent")
        wait_for(lambda: self.status()["depth"] == 0, 120, "the queue to drain")
        assert self.terminate() == 0, "the draining agent did not exit 0 on SIGTERM"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `beam-agent` subcommand on this agent's config (e.g. status)."""
        return subprocess.run(
            [sys.executable, "-m", "beam_agent", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)


@pytest.fixture
def agent_processes() -> Iterator[list[AgentProcess]]:
    """Agents a test registers here are killed at its end, whatever happened."""
    agents: list[AgentProcess] = []
    try:
        yield agents
    finally:
        for agent in agents:
            agent.stop_if_running()


# -- accounting -------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What the agent produced (seqs 1..produced) against what the receiver stored."""

    produced: int
    stored: list[int]  # seqs in the receiver's stored order

    @classmethod
    def of(cls, agent: AgentProcess, receiver: ReceiverProcess) -> Delivery:
        produced = agent.status()["counters"]["last_seq"]
        return cls(produced, [reading["seq"] for reading in receiver.readings()])

    @property
    def missing(self) -> list[int]:
        return sorted(set(range(1, self.produced + 1)) - set(self.stored))

    @property
    def duplicates(self) -> int:
        return len(self.stored) - len(set(self.stored))

    @property
    def unknown(self) -> int:
        """Stored seqs the agent never produced (would mean a reused or invented seq)."""
        return sum(1 for seq in set(self.stored) if not 1 <= seq <= self.produced)

    @property
    def in_order(self) -> bool:
        return all(a < b for a, b in zip(self.stored, self.stored[1:]))


def runs(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted seqs as (first, last) runs of consecutive numbers."""
    result: list[tuple[int, int]] = []
    for seq in seqs:
        if result and seq == result[-1][1] + 1:
            result[-1] = (result[-1][0], seq)
        else:
            result.append((seq, seq))
    return result
