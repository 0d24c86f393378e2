"""A real `beam-agent run`: its config.toml and token file, and the process on its state
directory, started, stopped and killed at will, its queue read as `beam-agent status` does."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from beam_agent.config import load_config
from beam_agent.queue import QueueError, ReadingQueue

from tests.support.constants import DEVICE, DEVICE_TOKEN
from tests.support.files import toml_lines, write_private
from tests.support.processes import ChildProcess, program, run_program
from tests.support.readings import parse_time
from tests.support.waiting import wait_for

if TYPE_CHECKING:  # the receiver's side needs Flask, which the agent's tests may not have
    from tests.support.receiver import ReceiverProcess

Sensors = Union[str, Sequence[Mapping[str, object]]]


def counter_sensor(name: str, interval_ms: int) -> dict[str, object]:
    """A virtual sensor counting 1, 2, 3 ...: every reading's value says where it belongs."""
    return {"name": name, "type": "virtual", "signal": "counter", "interval_ms": interval_ms}


def write_agent_config(
    directory: Path,
    api_url: str,
    sensors: Sensors = (),
    *,
    name: str = "agent.toml",
    device_id: str = DEVICE,
    token: str = DEVICE_TOKEN,
    state_dir: Optional[Path] = None,
    tags: Optional[Mapping[str, str]] = None,
    ca_file: Optional[Path] = None,
    **tables: Mapping[str, object],
) -> Path:
    """directory/name, with its token file (0600) beside it, and a state directory that
    defaults to one named after the config (agent.toml: agent-state).

    `sensors` are [[sensor]] tables (mappings), or TOML text written as it is; `tables` are
    the config's other tables (push={...}, queue={...}, telemetry={...}).
    """
    stem = Path(name).stem
    token_file = write_private(directory / f"{stem}.token", token + "\n")
    lines = toml_lines(
        {
            "device_id": device_id,
            "api_url": api_url,
            "device_token_file": str(token_file),
            "ca_file": None if ca_file is None else str(ca_file),
            "state_dir": str(state_dir or directory / f"{stem}-state"),
            "tags": tags,
        }
    )
    for table, values in tables.items():
        lines += [f"[{table}]", *toml_lines(values)]
    if isinstance(sensors, str):
        lines += ["", textwrap.dedent(sensors)]
    else:
        for sensor in sensors:
            lines += ["[[sensor]]", *toml_lines(sensor)]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


def sensorless(config: Path) -> Path:
    """The same config without its sensors (drain.toml beside it): an agent that only
    pushes what is queued and sends heartbeats."""
    drain = config.with_name("drain.toml")
    drain.write_text(config.read_text().split("[[sensor]]")[0])
    return drain


class AgentProcess(ChildProcess):
    """`beam-agent run --config CONFIG` (or another config on the same state directory);
    its output is appended to agent.log beside the config unless `log` says otherwise."""

    def __init__(
        self,
        config: Path,
        env: Optional[Mapping[str, str]] = None,
        log: Optional[Path] = None,
        to_console: bool = False,
        executable: Optional[Path] = None,
    ) -> None:
        """`executable`: a `beam-agent` script to run instead of this interpreter's."""
        super().__init__(None if to_console else log or config.parent / "agent.log", env)
        self.config = config
        self.state_dir = load_config(config).state_dir
        self.command = [str(executable)] if executable else program("beam-agent")

    def start(self, config: Optional[Path] = None) -> subprocess.Popen[bytes]:
        return self.spawn([*self.command, "run", "--config", str(config or self.config)])

    def terminate(self) -> int:
        """SIGTERM; the contract: exit status 0 within 10 s."""
        assert self.process is not None, "never started"
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)

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
        started = datetime.now(timezone.utc)
        self.start(sensorless(self.config))

        def heard_since_start() -> bool:
            seen = receiver.get(f"/api/nodes/{DEVICE}")["last_seen"]
            return seen is not None and parse_time(seen) >= started

        wait_for(heard_since_start, 120, "a heartbeat from the draining agent")
        wait_for(lambda: self.status()["depth"] == 0, 120, "the queue to drain")
        assert self.terminate() == 0, "the draining agent did not exit 0 on SIGTERM"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `beam-agent` subcommand on this agent's config (e.g. status)."""
        return run_program("beam-agent", *args, "--config", str(self.config))
