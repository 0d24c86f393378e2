"""The receiver's CPU per POST: the Flask app alone against the app behind gunicorn.

Prints figures, asserts nothing. The same POST /api/readings of one reading (the agent's
body, a new seq every time), sent one after another by one client (so nothing waits for a
CPU and the figure is cost, not contention):

  app       the whole Flask app called as a WSGI app in this process (auth, sessions,
            parsing, validation, the SQLite write, metrics, the request log to /dev/null);
            CPU of this process, less the cost of building the request (measured apart)
  gunicorn  a real `beam-receiver serve` (--workers x --threads) on a loopback port, over one
            kept-alive connection; CPU of its master and workers (user and system)

The difference is what gunicorn (HTTP parsing, its thread pool, the socket) adds per request.

Run: .venv/bin/python bench/post_floor.py [--posts 2000] [--workers 2] [--threads 4]
     [--synchronous NORMAL]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
import requests
from werkzeug.test import EnvironBuilder

from beam_receiver.app import create_app
from beam_receiver.config import load_config
from beam_receiver.requestlog import configure_logging

from tests.support.constants import DEVICE, DEVICE_TOKEN
from tests.support.receiver import configure_receiver


def body(seq: int) -> dict[str, Any]:
    return {
        "readings": [
            {
                "device_id": DEVICE,
                "seq": seq,
                "sensor": "geiger",
                "sensor_type": "mightyohm",
                "timestamp": "2026-11-23T10:00:00.000Z",
                "payload": {"cps": 1, "cpm": 30, "usv_per_hr": 0.17, "mode": "SLOW"},
            }
        ]
    }


HEADERS = {
    "Authorization": f"Bearer {DEVICE_TOKEN}",
    "Content-Type": "application/json",
    "X-Beam-Device": DEVICE,
    "X-Beam-Agent-Version": "bench",
}


def in_process(directory: Path, posts: int, synchronous: str) -> float:
    """CPU ms per POST of the Flask app alone."""
    receiver = configure_receiver(directory, synchronous=synchronous)
    app = create_app(load_config(receiver.config))
    configure_logging()
    for handler in logging.getLogger("beam_receiver").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the run)

    def environ(seq: int) -> dict[str, Any]:
        built: dict[str, Any] = EnvironBuilder(
            method="POST", path="/api/readings", data=json.dumps(body(seq)), headers=HEADERS
        ).get_environ()
        return built

    def call(seq: int) -> None:
        statuses: list[str] = []
        b"".join(app(environ(seq), lambda status, headers, exc=None: statuses.append(status)))
        if not statuses[0].startswith("200"):
            raise SystemExit(f"in process: {statuses[0]}")

    for seq in range(1, 101):  # warm up
        call(seq)
    started = time.process_time()
    for seq in range(101, 101 + posts):
        call(seq)
    total = time.process_time() - started
    started = time.process_time()
    for seq in range(101, 101 + posts):
        environ(seq)
    building = time.process_time() - started
    return 1000 * (total - building) / posts


def over_http(directory: Path, posts: int, args: argparse.Namespace) -> tuple[float, float, float]:
    """(user, system, POST/s): gunicorn's CPU ms per POST over one kept-alive connection."""
    receiver = configure_receiver(
        directory, workers=args.workers, threads=args.threads, synchronous=args.synchronous
    )
    with receiver:
        assert receiver.process is not None
        master = psutil.Process(receiver.process.pid)
        processes = [master, *master.children(recursive=True)]
        session = requests.Session()
        session.headers.update(HEADERS)

        def post(seq: int) -> None:
            answer = session.post(receiver.url + "/api/readings", json=body(seq), timeout=30)
            if answer.status_code != 200:
                raise SystemExit(f"over HTTP: {answer.status_code} {answer.text[:200]}")

        def cpu() -> tuple[float, float]:
            times = [process.cpu_times() for process in processes]
            return sum(t.user for t in times), sum(t.system for t in times)

        for seq in range(1, 101):
            post(seq)
        user, system = cpu()
        started = time.monotonic()
        for seq in range(101, 101 + posts):
            post(seq)
        elapsed = time.monotonic() - started
        user_after, system_after = cpu()
    return (
        1000 * (user_after - user) / posts,
        1000 * (system_after - system) / posts,
        posts / elapsed,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--synchronous", default="NORMAL", choices=["FULL", "NORMAL"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="beam-post-floor-") as temporary:
        app_ms = in_process(Path(temporary) / "app", args.posts, args.synchronous)
        user, system, rate = over_http(Path(temporary) / "http", args.posts, args)
    print(
        f"one-reading POSTs, one client, {args.posts} each, SQLite {args.synchronous};"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    print(f"app (WSGI, in process):  {app_ms:.2f} ms CPU per POST")
    print(
        f"gunicorn ({args.workers} x {args.threads}):      {user + system:.2f} ms CPU per POST"
        f" (user {user:.2f}, system {system:.2f}), {rate:.0f} POST/s"
    )
    print(f"gunicorn / app: {(user + system) / app_ms:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
