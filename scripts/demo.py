"""`make demo`: a receiver and an agent with virtual and system sensors on this machine.

Everything lives in .demo/ (configs, tokens, databases); Ctrl-C stops both processes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the receiver and the agent, as the tests start them

from beam_receiver.auth import hash_password

from tests.support.agent import AgentProcess, write_agent_config
from tests.support.processes import program
from tests.support.receiver import configure_receiver


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
    receiver = configure_receiver(
        demo,
        port=args.port,
        devices={"demo-0001": device_token},
        operators={"ops": operator_token},
        users={"admin": password},
        password_hash=hash_password,
        expected_nodes='[nodes."demo-0001"]\nrole = "agent"\ntags = { site = "laptop" }\n'
        '[nodes."demo-0002"]\nrole = "agent"\ntags = { site = "never-deployed" }\n',
        to_console=True,
        secret_key_file=str(demo / "secret.key"),
        telemetry_interval_s=5,
        workers=2,
    )
    config = write_agent_config(
        demo,
        receiver.url,
        [
            {
                "name": "wave",
                "type": "virtual",
                "signal": "sine",
                "period_s": 120.0,
                "amplitude": 10.0,
                "interval_ms": 1000,
            },
            {"name": "walk", "type": "virtual", "signal": "random_walk", "interval_ms": 2000},
            {"name": "host", "type": "system", "interval_ms": 10000, "top_processes": 3},
        ],
        device_id="demo-0001",
        token=device_token,
        tags={"site": "laptop"},
        telemetry={"interval_s": 5},
    )
    try:
        receiver.start(timeout=30)
    except AssertionError:
        print("the receiver did not start; see its output above", file=sys.stderr)
        return 1
    agent = AgentProcess(config, to_console=True)
    agent.start()
    url = receiver.url
    print(f"\n  dashboard: {url}/   user: admin   password: {password}")
    print(f"  API:       curl -H 'Authorization: Bearer {operator_token}' {url}/api/nodes")
    print(f"  agent:     {' '.join(program('beam-agent'))} status --config {config}")
    print("  Ctrl-C stops both.\n", flush=True)
    try:
        while receiver.running and agent.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    agent.stop(15)
    receiver.stop(15)
    return 0


def interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt)  # stop both children on SIGTERM as on Ctrl-C
    os.chdir(ROOT)
    sys.exit(main())
