"""beam-receiver on PostgreSQL against SQLite, in one run: prints figures, asserts nothing.

The whole Flask app (auth, body parsing, validation, the storage write, metrics, the JSON
request log to /dev/null) is called as a WSGI app from --threads threads, like one gunicorn
worker's threads, with no HTTP server, so the figures are the receiver's and its database's
own. Each POST /api/readings carries --batch readings of its own device. Both backends are
durable: SQLite with synchronous = FULL, PostgreSQL (15, the distribution's, started here in
a temporary directory by tests/support/postgres.py) with its defaults (fsync on,
synchronous_commit on).

Printed per backend: readings/s (wall clock), the receiver process's CPU ms per POST, and
for PostgreSQL also the server's CPU ms per POST (its processes, from psutil; SQLite's work
is inside the receiver's figure). Rounds alternate between the backends so that the load of
a shared machine hits both alike; the best round of each is kept; the last line is the
PostgreSQL / SQLite ratio.

Run: .venv/bin/python bench/storage_backends.py [--posts 300] [--batch 500] [--threads 4]
     [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from werkzeug.test import EnvironBuilder

from beam_receiver.app import create_app
from beam_receiver.auth import hash_token
from beam_receiver.config import load_config
from beam_receiver.requestlog import configure_logging
from beam_receiver.state import EXTENSION_KEY

from tests.support.files import write_private
from tests.support.postgres import PostgresServer, running_postgres

DEVICES = 16


@dataclass
class Round:
    readings_per_s: float
    receiver_cpu_ms: float  # per POST
    server_cpu_ms: float  # per POST; 0 for SQLite (its work is in the receiver's figure)


def quiet_logs() -> None:
    configure_logging()
    for handler in logging.getLogger("beam_receiver").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the run)


@contextmanager
def receiver_app(directory: Path, database: dict[str, str]) -> Iterator[tuple[Any, dict[str, str]]]:
    """An app on `database` settings with DEVICES devices; (app, device -> token)."""
    directory.mkdir(parents=True)
    tokens = {f"bench-{i:03d}": f"token-{i:03d}-{os.urandom(8).hex()}" for i in range(DEVICES)}
    lines = ["[devices]"] + [f'"{d}" = "{hash_token(t)}"' for d, t in tokens.items()]
    write_private(directory / "tokens.toml", "\n".join(lines) + "\n")
    settings = {"tokens_file": str(directory / "tokens.toml"), **database}
    (directory / "receiver.toml").write_text(
        "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    )
    app = create_app(load_config(directory / "receiver.toml"))
    try:
        yield app, tokens
    finally:
        app.extensions[EXTENSION_KEY].database.close()


def post(app: Any, token: str, device: str, body: bytes) -> None:
    environ = EnvironBuilder(
        method="POST",
        path="/api/readings",
        data=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Beam-Device": device,
        },
    ).get_environ()
    statuses: list[str] = []
    b"".join(app(environ, lambda status, headers, exc=None: statuses.append(status)))
    if not statuses[0].startswith("200"):
        raise SystemExit(f"POST /api/readings answered {statuses[0]}")


def bodies(device: str, first_seq: int, posts: int, batch: int) -> list[bytes]:
    made = []
    for number in range(posts):
        start = first_seq + number * batch
        made.append(
            json.dumps(
                {
                    "readings": [
                        {
                            "device_id": device,
                            "seq": start + k,
                            "sensor": f"sensor-{k % 4}",
                            "sensor_type": "system",
                            "timestamp": "2026-11-23T10:00:00.000Z",
                            "payload": {"cpu_percent": 12.5, "load1": 0.3, "count": k},
                        }
                        for k in range(batch)
                    ]
                }
            ).encode()
        )
    return made


def measure(
    app: Any,
    tokens: dict[str, str],
    posts: int,
    batch: int,
    threads: int,
    first_seq: int,
    server_cpu: Callable[[], float],
) -> Round:
    """posts POSTs spread over threads (each thread its own devices), after a warm-up."""
    devices = list(tokens)
    work: list[list[tuple[str, bytes]]] = [[] for _ in range(threads)]
    for number in range(posts):
        device = devices[number % len(devices)]
        seq = first_seq + (number // len(devices)) * batch
        work[number % threads].append((device, bodies(device, seq, 1, batch)[0]))
    for device in devices[:threads]:  # warm up: first statements, caches, the pool
        post(app, tokens[device], device, bodies(device, 1, 1, batch)[0])
    cpu_before, server_before, started = time.process_time(), server_cpu(), time.perf_counter()

    def run(items: list[tuple[str, bytes]]) -> None:
        for device, body in items:
            post(app, tokens[device], device, body)

    workers = [threading.Thread(target=run, args=(items,)) for items in work]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return Round(
        readings_per_s=posts * batch / elapsed,
        receiver_cpu_ms=1000 * (time.process_time() - cpu_before) / posts,
        server_cpu_ms=1000 * (server_cpu() - server_before) / posts,
    )


def postgres_cpu(server: PostgresServer) -> float:
    total = 0.0
    for pid in server.server_pids():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=300, help="POSTs per round")
    parser.add_argument("--batch", type=int, default=500, help="readings per POST")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2, help="rounds per backend")
    args = parser.parse_args()
    quiet_logs()
    work = Path(tempfile.mkdtemp(prefix="beam-storage-bench-"))
    best: dict[str, Round] = {}
    print(
        f"beam-receiver storage backends, in process: {args.posts} POSTs of {args.batch}"
        f" readings from {args.threads} threads per round, best of {args.repeat};"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    with running_postgres(durable=True) as server:
        with server.connect() as admin:
            version = admin.execute("SHOW server_version").fetchone()
        targets: dict[str, tuple[dict[str, str], Callable[[], float]]] = {
            "sqlite": ({"database": str(work / "sqlite" / "receiver.db")}, lambda: 0.0),
            "postgresql": (
                {
                    "database": server.url(server.create_database()),
                    "database_password_file": str(server.password_file),
                    "secret_key_file": str(work / "secret-key"),
                },
                lambda: postgres_cpu(server),
            ),
        }
        with (
            receiver_app(work / "sqlite", targets["sqlite"][0]) as sqlite_app,
            receiver_app(work / "postgresql", targets["postgresql"][0]) as postgres_app,
        ):
            apps = {"sqlite": sqlite_app, "postgresql": postgres_app}
            for round_number in range(args.repeat):
                first_seq = 1_000 + round_number * args.posts * args.batch
                for name in ("sqlite", "postgresql"):  # alternate, so load hits both alike
                    app, tokens = apps[name]
                    result = measure(
                        app,
                        tokens,
                        args.posts,
                        args.batch,
                        args.threads,
                        first_seq,
                        targets[name][1],
                    )
                    kept = best.get(name)
                    if kept is None or result.readings_per_s > kept.readings_per_s:
                        best[name] = result
    print(f"PostgreSQL server: {version[0] if version else '?'} (fsync on, synchronous_commit on)")
    print(
        f"{'backend':>10} {'readings/s':>11} {'receiver CPU ms/POST':>21}"
        f" {'server CPU ms/POST':>19} {'total CPU ms/POST':>18}"
    )
    for name in ("sqlite", "postgresql"):
        row = best[name]
        print(
            f"{name:>10} {row.readings_per_s:>11,.0f} {row.receiver_cpu_ms:>21.2f}"
            f" {row.server_cpu_ms:>19.2f} {row.receiver_cpu_ms + row.server_cpu_ms:>18.2f}"
        )
    sqlite, postgres = best["sqlite"], best["postgresql"]
    print(
        f"PostgreSQL / SQLite: readings/s {postgres.readings_per_s / sqlite.readings_per_s:.2f}x,"
        f" receiver CPU per POST {postgres.receiver_cpu_ms / sqlite.receiver_cpu_ms:.2f}x,"
        " total CPU per POST"
        f" {(postgres.receiver_cpu_ms + postgres.server_cpu_ms) / sqlite.receiver_cpu_ms:.2f}x"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
