from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest

AgentCommand = Callable[..., "subprocess.CompletedProcess[str]"]


def agent_config(tmp_path: Path, api_url: str, sensors: str, **extra: Any) -> Path:
    """Write a config.toml with a token file and a state dir inside tmp_path."""
    token = tmp_path / "agent.token"
    token.write_text("device-secret-token\n")
    token.chmod(0o600)
    lines = [
        'device_id = "beamrider-0001"',
        f'api_url = "{api_url}"',
        f'device_token_file = "{token}"',
        f'state_dir = "{tmp_path / "state"}"',
    ]
    for table, values in extra.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {value!r}".replace("'", '"') for key, value in values.items())
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n\n" + textwrap.dedent(sensors))
    return path


@pytest.fixture
def beam_agent() -> AgentCommand:
    """Run the real `beam-agent` entry point in a subprocess."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.run(
            [sys.executable, "-m", "beam_agent", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    return run
