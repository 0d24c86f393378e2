"""`make demo`: a receiver and an agent with virtual and system sensors on this machine.

Everything lives in .demo/ (configs, tokens, databases); Ctrl-C stops both processes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def hashed(command: str, secret: str) -> str:
    result = subprocess.run(
        [str(BIN / "beam-receiver"), command],
        input=secret,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dir", type=Path, default=ROOT / ".demo")
    args = parser.parse_args()
    demo = args.dir
    demo.mkdir(exist_ok=True)
    device_token = secrets.token_urlsafe(32)
    operator_token = secrets.token_urlsafe(32)
    password = secrets.token_urlsafe(12)
    write_private(demo / "agent.token", device_token + "\n")
    write_private(
        demo / "receiver-tokens.toml",
        "\n".join(
            [
                "[devices]",
                f'"demo-0001" = "{hashed("hash-token", device_token)}"',
                "[operators]",
                f'"ops" = "{hashed("hash-token", operator_token)}"',
                "[users]",
                f'"admin" = "{hashed("hash-password", password)}"',
                "",
            ]
        ),
    )
    (demo / "expected-nodes.toml").write_text(
        '[nodes."demo-0001"]\nrole = "agent"\ntags = { site = "laptop" }\n'
        '[nodes."demo-0002"]\nrole = "agent"\ntags = { site = "never-deployed" }\n'
    )
    (demo / "receiver.toml").write_text(
        "\n".join(
            [
                f'listen = "127.0.0.1:{args.port}"',
                f'database = "{demo / "receiver.db"}"',
                f'tokens_file = "{demo / "receiver-tokens.toml"}"',
                f'expected_nodes_file = "{demo / "expected-nodes.toml"}"',
                f'secret_key_file = "{demo / "secret.key"}"',
                "telemetry_interval_s = 5",
                "workers = 2",
                "",
            ]
        )
    )
    (demo / "agent.toml").write_text(
        "\n".join(
            [
                'device_id = "demo-0001"',
                f'api_url = "http://127.0.0.1:{args.port}"',
                f'device_token_file = "{demo / "agent.token"}"',
                f'state_dir = "{demo / "agent-state"}"',
                'tags = { site = "laptop" }',
                "[telemetry]",
                "interval_s = 5",
                "[[sensor]]",
                'name = "wave"',
                'type = "virtual"',
                'signal = "sine"',
                "period_s = 120.0",
                "amplitude = 10.0",
                "interval_ms = 1000",
                "[[sensor]]",
                'name = "walk"',
                'type = "virtual"',
                'signal = "random_walk"',
                "interval_ms = 2000",
                "[[sensor]]",
                'name = "host"',
                'type = "system"',
                "interval_ms = 10000",
                "top_processes = 3",
                "",
            ]
        )
    )

    receiver = subprocess.Popen(
        [str(BIN / "beam-receiver"), "serve", "--config", str(demo / "receiver.toml")]
    )
    url = f"http://127.0.0.1:{args.port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or receiver.poll() is not None:
            receiver.terminate()
            print("the receiver did not start; see its output above", file=sys.stderr)
            return 1
        time.sleep(0.3)
    agent = subprocess.Popen(
        [str(BIN / "beam-agent"), "run", "--config", str(demo / "agent.toml")],
        stdout=subprocess.DEVNULL,
    )
    print(f"\n  dashboard: {url}/   user: admin   password: {password}")
    print(f"  API:       curl -H 'Authorization: Bearer {operator_token}' {url}/api/nodes")
    print(f"  agent:     {BIN / 'beam-agent'} status --config {demo / 'agent.toml'}")
    print("  Ctrl-C stops both.\n", flush=True)
    try:
        while receiver.poll() is None and agent.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for process in (agent, receiver):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in (agent, receiver):
        process.wait(15)
    return 0


def interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt)  # stop both children on SIGTERM as on Ctrl-C
    os.chdir(ROOT)
    sys.exit(main())
