"""beam-receiver benchmark: prints figures, asserts nothing.

1. Ingest at full speed: batches of 500 readings POSTed over real HTTP to a real
   `beam-receiver serve` (gunicorn, workers from --workers) by --clients concurrent
   clients; readings/s and p50/p99 batch latency.
2. The same receiver at half that rate (open loop: batches are sent on a fixed schedule,
   not when the previous answer arrives); p50/p99 batch latency.
3. The raw SQLite insert rate of the very same rows on the same disk, in this run: the
   receiver's storage layer (same schema, indexes and pragmas) in batches of 500, no HTTP,
   no JSON, no validation. The ratio HTTP/raw says what the web layer costs.

Run: .venv/bin/python bench/receiver_bench.py [--batches 200] [--clients 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the receiver process, as the tests start it

from beam_receiver import __version__
from beam_receiver.storage import Database, NewReading
from beam_receiver.timestamps import format_ms, now_ms

from tests.support.receiver import ReceiverProcess, configure_receiver, stored_count

BATCH = 500
DEVICES = 8


@dataclass
class Batch:
    device: str
    body: bytes
    rows: list[NewReading]


def make_batches(count: int, first_seq: int) -> list[Batch]:
    """Realistic batches: one device each, four sensors, Geiger-like payloads, recent times."""
    rng = random.Random(first_seq)
    start_ms = now_ms() - 3_600_000
    batches = []
    for index in range(count):
        device = f"bench-{index % DEVICES:04d}"
        base_seq = first_seq + (index // DEVICES) * BATCH
        readings = []
        rows = []
        for offset in range(BATCH):
            seq = base_seq + offset
            ts_ms = start_ms + (index * BATCH + offset) * 7  # within the last hour or so
            payload = {
                "cps": rng.randint(0, 5),
                "cpm": rng.randint(20, 60),
                "usv_per_hr": round(rng.uniform(0.1, 0.4), 3),
                "mode": "SLOW",
            }
            reading = {
                "device_id": device,
                "sensor": f"sensor-{offset % 4}",
                "sensor_type": "mightyohm",
                "payload": payload,
                "timestamp": format_ms(ts_ms),
                "seq": seq,
            }
            readings.append(reading)
            rows.append(
                NewReading(
                    device,
                    seq,
                    reading["sensor"],
                    "mightyohm",
                    reading["timestamp"],
                    ts_ms,
                    json.dumps(payload, separators=(",", ":")),
                )
            )
        body = json.dumps({"readings": readings}, separators=(",", ":")).encode()
        batches.append(Batch(device, body, rows))
    return batches


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def start_receiver(
    directory: Path, workers: int, threads: int, synchronous: str
) -> ReceiverProcess:
    """A real `beam-receiver serve` on a free loopback port, its files in directory."""
    receiver = configure_receiver(
        directory,
        devices={f"bench-{i:04d}": f"token-{i}" for i in range(DEVICES)},
        operators={},
        users={},
        telemetry_interval_s=None,
        workers=workers,
        threads=threads,
        synchronous=synchronous,
    )
    receiver.start()
    return receiver


class BenchmarkError(RuntimeError):
    """The receiver answered something other than 200 with every reading accepted."""


def post(session: requests.Session, url: str, batch: Batch) -> float:
    """Send one batch; the seconds it took. Any answer but 200 ends the benchmark."""
    index = int(batch.device.rsplit("-", 1)[1])
    started = time.perf_counter()
    response = session.post(
        url + "/api/readings",
        data=batch.body,
        headers={
            "Authorization": f"Bearer token-{index}",
            "Content-Type": "application/json",
            "X-Beam-Device": batch.device,
        },
        timeout=60,
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or response.json()["accepted"] != BATCH:
        raise BenchmarkError(f"unexpected answer {response.status_code}: {response.text[:300]}")
    return elapsed


def run_clients(clients: int, target: Callable[[], None]) -> None:
    """Run target in client threads; re-raise the first failure here, not silently there."""
    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:  # reported below, in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def full_speed(url: str, batches: list[Batch], clients: int) -> tuple[float, list[float]]:
    """Every client sends its next batch as soon as the last one is answered."""
    work: queue.Queue[Optional[Batch]] = queue.Queue()
    for batch in batches:
        work.put(batch)
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            while True:
                try:
                    batch = work.get_nowait()
                except queue.Empty:
                    return
                elapsed = post(session, url, batch)  # type: ignore[arg-type]
                with lock:
                    latencies.append(elapsed)

    started = time.perf_counter()
    run_clients(clients, client)
    return time.perf_counter() - started, latencies


def paced(
    url: str, batches: list[Batch], clients: int, readings_per_s: float
) -> tuple[float, list[float], list[float]]:
    """Open loop: batch i is due at start + i * interval whatever happened before.

    Returns (elapsed, latency from sending, latency from the scheduled time); the second
    includes any wait for a free client, so a slow answer cannot hide the ones behind it.
    """
    interval = BATCH / readings_per_s
    work: queue.Queue[tuple[float, Batch]] = queue.Queue()
    service: list[float] = []
    scheduled: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not (done.is_set() and work.empty()):
                try:
                    due, batch = work.get(timeout=0.1)
                except queue.Empty:
                    continue
                elapsed = post(session, url, batch)
                finished = time.perf_counter()
                with lock:
                    service.append(elapsed)
                    scheduled.append(finished - due)

    def schedule() -> None:
        for index, batch in enumerate(batches):
            due = started + index * interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            work.put((due, batch))
        done.set()

    started = time.perf_counter()
    scheduler = threading.Thread(target=schedule)
    scheduler.start()
    try:
        run_clients(clients, client)
    finally:
        done.set()
        scheduler.join()
    return time.perf_counter() - started, service, scheduled


def raw_insert_rate(directory: Path, batches: list[Batch], synchronous: str) -> float:
    """The storage layer alone: the same rows, 500 per transaction, same schema and pragmas."""
    database = Database(directory / "raw.db", synchronous=synchronous)
    database.migrate()
    started = time.perf_counter()
    for batch in batches:
        result = database.insert_readings(batch.rows)
        assert result.accepted == BATCH
    elapsed = time.perf_counter() - started
    database.close()
    return len(batches) * BATCH / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=200, help="batches at full speed")
    parser.add_argument("--paced-batches", type=int, default=100, help="batches at half rate")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    figures: dict[str, Any] = {
        "version": __version__,
        "cpus": os.cpu_count(),
        "load_before": round(os.getloadavg()[0], 2),
        "workers": args.workers,
        "threads": args.threads,
        "clients": args.clients,
        "synchronous": args.synchronous,
    }
    print(f"beam-receiver {__version__} benchmark: {os.cpu_count()} CPUs,", end=" ")
    print(f"load average {figures['load_before']}")
    print(
        f"building {args.batches + args.paced_batches} batches of {BATCH} readings ...", flush=True
    )
    fast = make_batches(args.batches, first_seq=1)
    slow = make_batches(args.paced_batches, first_seq=10_000_000)

    with tempfile.TemporaryDirectory(prefix="beam-receiver-bench-") as temporary:
        directory = Path(temporary)
        receiver = start_receiver(directory, args.workers, args.threads, args.synchronous)
        url = receiver.url
        try:
            # Warm up: connections, worker imports, SQLite caches (not counted).
            warm = make_batches(2 * args.clients, first_seq=20_000_000)
            full_speed(url, warm, args.clients)

            elapsed, latencies = full_speed(url, fast, args.clients)
            rate = len(fast) * BATCH / elapsed
            figures.update(
                http_readings_per_s=round(rate),
                http_batch_p50_ms=round(percentile(latencies, 0.50) * 1000, 1),
                http_batch_p99_ms=round(percentile(latencies, 0.99) * 1000, 1),
            )
            print(
                f"\nfull speed over HTTP ({len(fast)} batches, {args.clients} clients,"
                f" {args.workers} workers x {args.threads} threads,"
                f" synchronous={args.synchronous}):"
            )
            print(f"  {rate:12,.0f} readings/s")
            print(
                f"  batch latency p50 {figures['http_batch_p50_ms']} ms,"
                f" p99 {figures['http_batch_p99_ms']} ms"
            )

            target = rate / 2
            elapsed, service, scheduled = paced(url, slow, args.clients, target)
            figures.update(
                half_rate_target_readings_per_s=round(target),
                half_rate_achieved_readings_per_s=round(len(slow) * BATCH / elapsed),
                half_rate_p50_ms=round(percentile(service, 0.50) * 1000, 1),
                half_rate_p99_ms=round(percentile(service, 0.99) * 1000, 1),
                half_rate_p99_from_schedule_ms=round(percentile(scheduled, 0.99) * 1000, 1),
            )
            print(f"\nhalf that rate, open loop ({len(slow)} batches at {target:,.0f} readings/s):")
            print(f"  achieved {figures['half_rate_achieved_readings_per_s']:,} readings/s")
            print(
                f"  batch latency p50 {figures['half_rate_p50_ms']} ms,"
                f" p99 {figures['half_rate_p99_ms']} ms (p99 from the scheduled send time:"
                f" {figures['half_rate_p99_from_schedule_ms']} ms)"
            )
        finally:
            receiver.stop(60)
        expected = (len(fast) + len(slow) + 2 * args.clients) * BATCH
        stored = stored_count(receiver.database)
        figures["stored_ok"] = stored == expected
        print(f"\nstored readings: {stored:,} of {expected:,} sent")

        raw = raw_insert_rate(directory, fast, args.synchronous)
        figures["raw_sqlite_readings_per_s"] = round(raw)
        figures["http_to_raw_ratio"] = round(figures["http_readings_per_s"] / raw, 3)
        print(
            f"\nraw SQLite insert, same {len(fast) * BATCH:,} rows, batches of {BATCH},"
            f" same schema and indexes, synchronous={args.synchronous}:"
        )
        print(f"  {raw:12,.0f} readings/s")
        print(f"  HTTP / raw = {figures['http_to_raw_ratio']:.2f}")
    figures["load_after"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
