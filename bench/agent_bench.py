"""beam-agent benchmark: prints figures, asserts nothing.

1. Durable enqueue (ReadingQueue.enqueue in batches, WAL + synchronous=FULL) against the raw
   rate of batched SQLite inserts of the same rows on the same disk, measured in this run.
2. End to end: readings pushed from a filled queue to a local receiver double over HTTP.
3. The agent as a real process with 20 virtual sensors at 1 Hz: CPU % of one core and RSS.

Run: make bench   (or .venv/bin/python bench/agent_bench.py [--seconds 30])
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the receiver double and the agent process

from beam_agent import __version__
from beam_agent.push import ReceiverClient, drain
from beam_agent.queue import ReadingQueue
from beam_agent.reading import Reading, format_timestamp

from tests.support.agent import AgentProcess, write_agent_config
from tests.support.receiver_double import ReceiverDouble

BATCH = 500


def make_readings(count: int) -> list[Reading]:
    now = datetime.now(timezone.utc)
    return [
        Reading("bench-0001", f"s{i % 20}", "virtual", {"value": i * 0.5, "cpm": i % 60}, now)
        for i in range(count)
    ]


def raw_sqlite_rate(directory: Path, readings: list[Reading]) -> float:
    """The ceiling: executemany into a WAL table, one commit per batch, same pragmas."""
    db = sqlite3.connect(directory / "raw.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE r (seq INTEGER PRIMARY KEY AUTOINCREMENT, sensor TEXT, "
        "sensor_type TEXT, payload TEXT, timestamp TEXT, sent INTEGER DEFAULT 0)"
    )
    started = time.perf_counter()
    for start in range(0, len(readings), BATCH):
        rows = [
            (r.sensor, r.sensor_type, json.dumps(r.payload), format_timestamp(r.timestamp))
            for r in readings[start : start + BATCH]
        ]
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO r (sensor, sensor_type, payload, timestamp) VALUES (?, ?, ?, ?)", rows
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return len(readings) / elapsed


def enqueue_rate(directory: Path, readings: list[Reading]) -> float:
    queue = ReadingQueue(directory / "agent", max_readings=10 * len(readings))
    started = time.perf_counter()
    for start in range(0, len(readings), BATCH):
        queue.enqueue(readings[start : start + BATCH])
    elapsed = time.perf_counter() - started
    queue.close()
    return len(readings) / elapsed


def push_rate(directory: Path, readings: list[Reading]) -> float:
    queue = ReadingQueue(directory / "push", max_readings=10 * len(readings))
    queue.enqueue(readings)
    with ReceiverDouble() as receiver:
        client = ReceiverClient(receiver.url, "bench-0001", lambda: "token", 10.0, __version__)
        started = time.perf_counter()
        while queue.depth():
            drain(queue, client, BATCH)
        elapsed = time.perf_counter() - started
        assert receiver.stored_count() == len(readings), "bench lost readings"
    queue.close()
    return len(readings) / elapsed


def agent_footprint(directory: Path, seconds: float) -> tuple[float, float]:
    """CPU % of one core and peak RSS (MB) of `beam-agent run` with 20 sensors at 1 Hz."""
    with ReceiverDouble() as receiver:
        sensors = [
            {"name": f"v{i}", "type": "virtual", "interval_ms": 1000, "signal": "sine"}
            for i in range(20)
        ]
        config = write_agent_config(
            directory,
            receiver.url,
            sensors,
            device_id="bench-0001",
            token="bench-token",
            telemetry={"interval_s": 30},
        )
        agent = AgentProcess(config, to_console=True)
        try:
            process = psutil.Process(agent.start().pid)
            time.sleep(3.0)  # start-up (imports, first registration) is not steady state
            before = process.cpu_times()
            started = time.monotonic()
            peak_rss = 0
            while time.monotonic() - started < seconds:
                peak_rss = max(peak_rss, process.memory_info().rss)
                time.sleep(0.5)
            after = process.cpu_times()
            elapsed = time.monotonic() - started
        finally:
            agent.stop(15)
        stored = receiver.stored_count()
    cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
    print(f"  (receiver stored {stored} readings from the 20-sensor agent)")
    return cpu, peak_rss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    readings = make_readings(args.readings)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        directory = Path(tmp)
        raw = raw_sqlite_rate(directory, readings)
        durable = enqueue_rate(directory, readings)
        print(f"raw SQLite batched inserts:  {raw:12,.0f} rows/s (batches of {BATCH})")
        print(
            f"durable enqueue:             {durable:12,.0f} readings/s "
            f"= {durable / raw:.0%} of raw (target >= 25%)"
        )
        pushed = push_rate(directory, readings)
        print(
            f"pushed end to end over HTTP: {pushed:12,.0f} readings/s (batches of {BATCH}, "
            f"local receiver double)"
        )
        cpu, rss = agent_footprint(directory, args.seconds)
        print(
            f"agent, 20 sensors at 1 Hz:   {cpu:.2f}% of one core (target < 2%), "
            f"peak RSS {rss:.1f} MB (target < 40 MB) over {args.seconds:.0f} s"
        )


if __name__ == "__main__":
    main()
