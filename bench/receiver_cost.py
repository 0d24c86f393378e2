"""beam-receiver CPU per request, in process: prints figures, asserts nothing.

The fleet simulator (fleet_sim.py) shows that the receiver's limit is its fixed cost per
request, not per reading. This bench measures that cost alone: the whole Flask app (auth,
session handling, body parsing, validation, the SQLite write, metrics, the JSON request
log to /dev/null) called as a WSGI app, no HTTP server and no network, so the figure is the
receiver's own CPU time per request (`time.process_time`), the part a faster machine or
fewer requests would scale.

For each tokens-file size (--devices) it sends --requests POST /api/readings (10 readings
each, a different device every time) and as many POST /api/telemetry heartbeats.

--baseline DIR measures a receiver imported from DIR/receiver (a checkout of an earlier
commit: `git worktree add /tmp/beam-baseline <rev>`) in the same run, alternating with this
tree's, each in its own subprocess, and prints the ratio.

Run: .venv/bin/python bench/receiver_cost.py [--devices 100,5000] [--requests 2000]
     [--baseline /tmp/beam-baseline] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent


def measure(devices: int, requests: int) -> dict[str, float]:
    """CPU ms per request for both kinds, with the receiver importable as beam_receiver."""
    from werkzeug.test import EnvironBuilder

    from beam_receiver.app import create_app
    from beam_receiver.auth import hash_token
    from beam_receiver.config import load_config
    from beam_receiver.requestlog import configure_logging

    directory = Path(tempfile.mkdtemp(prefix="beam-receiver-cost-"))
    tokens = {f"node-{i:05d}": f"token-{i:05d}-{os.urandom(8).hex()}" for i in range(devices)}
    lines = ["[devices]"] + [f'"{d}" = "{hash_token(t)}"' for d, t in tokens.items()]
    lines += ["[operators]", f'"ops" = "{hash_token("operator-token")}"']
    (directory / "tokens.toml").write_text("\n".join(lines) + "\n")
    (directory / "receiver.toml").write_text(
        f'database = "{directory / "receiver.db"}"\n'
        f'tokens_file = "{directory / "tokens.toml"}"\n'
        'synchronous = "NORMAL"\n'  # the disk is not what this bench measures
    )
    app = create_app(load_config(directory / "receiver.toml"))
    configure_logging()
    for handler in logging.getLogger("beam_receiver").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the app)
    names = list(tokens)
    seqs = dict.fromkeys(names, 0)

    def call(path: str, body: dict[str, Any], device: str) -> None:
        environ = EnvironBuilder(
            method="POST",
            path=path,
            data=json.dumps(body),
            headers={
                "Authorization": f"Bearer {tokens[device]}",
                "Content-Type": "application/json",
                "X-Beam-Device": device,
            },
        ).get_environ()
        statuses: list[str] = []
        b"".join(app(environ, lambda status, headers, exc=None: statuses.append(status)))
        if not statuses[0].startswith("200"):
            raise SystemExit(f"{path} answered {statuses[0]}")

    def readings(number: int) -> None:
        device = names[number % len(names)]
        first = seqs[device]
        seqs[device] = first + 10
        batch = [
            {
                "device_id": device,
                "seq": first + k + 1,
                "sensor": "system",
                "sensor_type": "system",
                "timestamp": "2026-11-23T10:00:00.000Z",
                "payload": {"cpu_percent": 12.5, "memory_percent": 40.1, "load1": 0.3},
            }
            for k in range(10)
        ]
        call("/api/readings", {"readings": batch}, device)

    def telemetry(number: int) -> None:
        device = names[number % len(names)]
        body = {
            "node_id": device,
            "role": "agent",
            "timestamp": "2026-11-23T10:00:00.000Z",
            "uptime_seconds": 1000 + number,
            "software_version": "1.0.0",
            "ip_address": "10.0.0.2",
            "metrics": {"queue_depth": 3, "pushed": number, "dropped": 0},
            "tags": {"site": "lab"},
            "protocol_version": 1,
        }
        call("/api/telemetry", body, device)

    def cpu_ms(send: Callable[[int], None]) -> float:
        for number in range(50):  # warm up: imports, first statements, caches
            send(number)
        started = time.process_time()
        for number in range(50, 50 + requests):
            send(number)
        return 1000 * (time.process_time() - started) / requests

    return {"readings_ms": cpu_ms(readings), "telemetry_ms": cpu_ms(telemetry)}


def run_child(source: str, devices: int, requests: int) -> dict[str, float]:
    """One measurement in a fresh interpreter, the receiver imported from source/receiver."""
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = str(Path(source) / "receiver")
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(devices), str(requests)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default="100,5000")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--baseline", default="")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return 0
    if args.baseline and not (Path(args.baseline) / "receiver" / "beam_receiver").is_dir():
        parser.error(f"--baseline {args.baseline}: no receiver/beam_receiver there")
    sources = [("baseline", args.baseline), ("this tree", "")] if args.baseline else []
    sources = sources or [("this tree", "")]
    print(
        f"beam-receiver CPU per request, in process; {args.requests} requests of each kind,"
        f" best of {args.repeat}; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'receiver':>9} {'devices':>7} {'readings POST ms':>17} {'telemetry POST ms':>18}")
    best: dict[tuple[str, int], dict[str, float]] = {}
    for devices in (int(n) for n in args.devices.split(",")):
        for _ in range(args.repeat):
            for name, source in sources:  # alternate, so load hits both alike
                result = run_child(source, devices, args.requests)
                key = (name, devices)
                kept = best.setdefault(key, result)
                for field in result:
                    kept[field] = min(kept[field], result[field])
        for name, _ in sources:
            row = best[(name, devices)]
            print(
                f"{name:>9} {devices:>7} {row['readings_ms']:>17.3f} {row['telemetry_ms']:>18.3f}"
            )
        if args.baseline:
            before, now = best[("baseline", devices)], best[("this tree", devices)]
            print(
                f"{'ratio':>9} {devices:>7} {before['readings_ms'] / now['readings_ms']:>16.2f}x"
                f" {before['telemetry_ms'] / now['telemetry_ms']:>17.2f}x"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
