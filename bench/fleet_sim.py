"""beam-fleet fleet simulator: prints figures, asserts nothing.

How many nodes does one `beam-receiver serve` hold on this machine? Thousands of simulated
agents run in a few worker processes against one real receiver (gunicorn, a temp SQLite
database, a tokens file with one sha256 hash per device plus an operator, an expected-node
list for the whole fleet), started afresh for every step of a ramp.

Every simulated agent is made of the agent's own code, not a reimplementation:
- its own device id and token, its own `ReadingQueue` (a SQLite file under --queue-dir,
  /dev/shm by default: tmpfs, so the simulator's fsyncs cost nothing and the disk is the
  receiver's alone), filled at --rate readings/s (one `enqueue` transaction per reading,
  as the agent's writer does at 1 Hz);
- its own `ReceiverClient` (so its own requests session: one kept-alive connection per
  node, as a real fleet presents it; the client's pool allows 2, used when a heartbeat and
  a push overlap), wrapped only to time each POST;
- the real `Pusher.cycle` (drain, deliver, back-off, the push interval) every
  --push-interval-ms, batches of 500 as the agent's default `[push]` says;
- registration once, then a heartbeat every --heartbeat-s, built by the agent's own
  `telemetry.registration` and `telemetry.heartbeat` (queue status included) and sent to
  /api/nodes/register and /api/telemetry.
Within a worker process one scheduler thread keeps a heap of due events (enqueue, push,
heartbeat) and hands them to a bounded thread pool (--pool threads), so thousands of agents
need no thousands of threads. Enqueue is open loop (due every 1/rate s whatever happened);
a push is due one interval after the previous cycle ended, as `Pusher.run` does.

Per step (N nodes x push interval, --seconds long): offered and stored readings/s (stored
is counted in the receiver's SQLite file), POST latency p50/p99 (per POST of readings, from
the send to the answer read), how late the scheduler started pushes (if that is large the
simulator, not the receiver, was the limit), errors by class, readings still queued at the
end, the CPU of the receiver (master and workers) and of the simulator. Then enqueueing
stops, every agent drains its queue, and the receiver's table is checked per device: the
stored seqs must be exactly 1..last_seq of that device's queue (stored once, none missing).

A step "holds" when every reading was stored exactly once, the backlog at the end of the
window is no more than two push intervals' worth, and POST p99 < 1 s.

--baseline DIR runs every step twice, alternating, once against a receiver imported from
DIR/receiver (a checkout of an earlier commit: `git worktree add /tmp/beam-baseline <rev>`)
and once against this tree's, so a change's gain is a ratio measured in one run.

--profile samples the receiver's gunicorn workers with py-spy during the last step and
prints where their time goes (own time per function, and time inside a few chosen parts).

Run: .venv/bin/python bench/fleet_sim.py [--nodes 500,1000,2000,3000,5000] [--rate 1]
     [--push-interval-ms 1000,10000] [--seconds 30] [--processes 2] [--profile]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import multiprocessing
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Optional

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the receiver process, as the tests start it

from beam_agent import __version__ as agent_version
from beam_agent.config import AgentConfig
from beam_agent.push import Pusher, PushOutcome, ReceiverClient
from beam_agent.queue import ReadingQueue
from beam_agent.reading import Reading, utc_now
from beam_agent.telemetry import heartbeat, registration
from beam_receiver import __version__ as receiver_version

from tests.support.receiver import (
    ReceiverProcess,
    agent_nodes,
    configure_receiver,
    stored_count,
)

OPERATOR_TOKEN = "fleet-sim-operator"
BATCH_SIZE = 500  # the agent's default [push] batch_size
TIMEOUT_S = 10.0  # the agent's default [push] timeout_s
WRITE_LINGER_S = 0.25  # the agent's writer groups readings that arrive within this


def device_id(index: int) -> str:
    return f"sim-{index:05d}"


def device_token(index: int) -> str:
    return f"sim-token-{index:05d}-{index * 7919 % 100003:05d}"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# -- the receiver ------------------------------------------------------------------------


def receiver_processes(receiver: ReceiverProcess) -> list[psutil.Process]:
    """The gunicorn master and its workers."""
    assert receiver.process is not None
    master = psutil.Process(receiver.process.pid)
    return [master, *master.children(recursive=True)]


def start_receiver(directory: Path, nodes: int, args: argparse.Namespace) -> ReceiverProcess:
    """A real `beam-receiver serve` on a free loopback port, its files in directory."""
    receiver = configure_receiver(
        directory,
        devices={device_id(i): device_token(i) for i in range(nodes)},
        operators={"fleet-sim": OPERATOR_TOKEN},
        users={},
        expected_nodes=agent_nodes(*(device_id(i) for i in range(nodes))),
        prefix=["taskset", "-c", ",".join(map(str, args.receiver_cpus))]
        if args.receiver_cpus
        else [],
        env={"PYTHONPATH": str(Path(args.receiver_src) / "receiver")} if args.receiver_src else {},
        workers=args.workers,
        threads=args.threads,
        synchronous=args.synchronous,
        telemetry_interval_s=args.heartbeat_s,
    )
    receiver.start()
    return receiver


def stored_per_device(database: Path) -> dict[str, tuple[int, int, int, int]]:
    """device -> (rows, distinct seqs, min seq, max seq) in the receiver's table."""
    with sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute(
            "SELECT device_id, count(*), count(DISTINCT seq), min(seq), max(seq) "
            "FROM readings GROUP BY device_id"
        ).fetchall()
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


# -- one simulated agent, and a worker process full of them ----------------------------


@dataclass
class Post:
    """One POST as the simulator saw it."""

    path: str
    started: float  # time.monotonic()
    elapsed: float
    status: Optional[int]
    kind: str


class TimedClient(ReceiverClient):
    """The agent's ReceiverClient; only the time of each POST is written down."""

    def __init__(self, record: Callable[[Post], None], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = record

    def post_json(self, path: str, body: dict[str, Any]) -> PushOutcome:
        started = time.monotonic()
        outcome = super().post_json(path, body)
        self.record(
            Post(path, started, time.monotonic() - started, outcome.status, outcome.kind.value)
        )
        return outcome


@dataclass
class SimAgent:
    index: int
    config: AgentConfig
    queue: ReadingQueue
    client: TimedClient
    pusher: Pusher
    started_at: float
    enqueued: int = 0
    enqueuing: bool = True  # an enqueue is still to come (the drain waits for it)
    registered: bool = False
    pushing: bool = False


@dataclass(order=True)
class Event:
    due: float
    order: int
    kind: str = field(compare=False)
    agent: SimAgent = field(compare=False)


def make_reading(agent: SimAgent, rng: random.Random, age_s: float = 0.0) -> Reading:
    payload = {
        "cps": rng.randint(0, 5),
        "cpm": rng.randint(20, 60),
        "usv_per_hr": round(rng.uniform(0.1, 0.4), 3),
        "mode": "SLOW",
    }
    moment = utc_now() - timedelta(seconds=age_s)
    return Reading(agent.config.device_id, "geiger", "mightyohm", payload, moment)


def run_worker(spec: dict[str, Any], go: Any, ready: Any, results: Any) -> None:
    """A worker process: build its agents, wait for `go`, run the window, drain, report."""
    try:
        results.put(simulate(spec, go, ready))
    except BaseException as exc:  # reported by the parent, not lost in a child's stderr
        results.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def simulate(spec: dict[str, Any], go: Any, ready: Any) -> dict[str, Any]:
    if spec["cpus"]:
        os.sched_setaffinity(0, spec["cpus"])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rng = random.Random(spec["first"])
    posts: list[Post] = []
    lags: list[float] = []
    url: str = spec["url"]
    interval_ms: int = spec["push_interval_ms"]
    agents: list[SimAgent] = []
    for index in range(spec["first"], spec["first"] + spec["count"]):
        token = device_token(index)
        state_dir = Path(spec["queue_dir"]) / device_id(index)
        config = AgentConfig(
            path=state_dir / "agent.toml",
            device_id=device_id(index),
            api_url=url,
            state_dir=state_dir,
            device_token=token,
        )
        queue = ReadingQueue(state_dir)
        client = TimedClient(
            posts.append, url, config.device_id, config.read_token, TIMEOUT_S, agent_version
        )
        pusher = Pusher(queue, client, BATCH_SIZE, interval_ms)
        agents.append(SimAgent(index, config, queue, client, pusher, 0.0))
    ready.put(spec["first"])
    go.wait()

    rate: float = spec["rate"]
    period = spec["enqueue_every_s"] or max(1.0 / rate, WRITE_LINGER_S)
    per_enqueue = max(1, round(rate * period))
    spacing = period / per_enqueue
    push_s = interval_ms / 1000.0
    heartbeat_s: float = spec["heartbeat_s"]
    start = time.monotonic()
    window_end = start + spec["seconds"]
    drain_end = window_end + spec["drain_s"]
    heap: list[Event] = []
    order = itertools.count()
    lock = threading.Lock()
    wake = threading.Condition(lock)
    pending = [0]  # tasks handed to the pool and not finished

    def schedule(due: float, kind: str, agent: SimAgent) -> None:
        with wake:
            heapq.heappush(heap, Event(due, next(order), kind, agent))
            wake.notify()

    for agent in agents:
        agent.started_at = start
        schedule(start + rng.uniform(0, period), "enqueue", agent)
        schedule(start + rng.uniform(0, push_s), "register", agent)

    def run(event: Event) -> None:
        agent = event.agent
        now = time.monotonic()
        try:
            if event.kind == "enqueue":
                readings = [
                    make_reading(agent, rng, (per_enqueue - 1 - k) * spacing)
                    for k in range(per_enqueue)
                ]
                agent.queue.enqueue(readings)
                agent.enqueued += len(readings)
                if event.due + period < window_end:
                    schedule(event.due + period, "enqueue", agent)
                else:
                    agent.enqueuing = False
            elif event.kind == "register":
                outcome = agent.client.post_json(
                    "/api/nodes/register", registration(agent.config, "127.0.0.1")
                )
                if not outcome.ok:
                    schedule(time.monotonic() + 1.0, "register", agent)
                    return
                agent.registered = True
                schedule(now, "heartbeat", agent)
                schedule(now, "push", agent)
            elif event.kind == "heartbeat":
                status = agent.queue.status()
                status["handoff_refused"] = 0
                body = heartbeat(agent.config, status, {}, agent.started_at, "127.0.0.1")
                agent.client.post_json("/api/telemetry", body)
                if event.due + heartbeat_s < window_end:
                    schedule(event.due + heartbeat_s, "heartbeat", agent)
            elif event.kind == "push":
                if now < window_end:
                    lags.append(now - event.due)
                delay = agent.pusher.cycle()
                after = time.monotonic()
                if after < window_end:
                    schedule(after + delay, "push", agent)
                elif after < drain_end and (agent.queue.depth() or agent.enqueuing):
                    # The final drain: at once while readings are left, unless backing off
                    # (or waiting for a late enqueue, when the simulator runs behind).
                    result = agent.pusher.last_result
                    failed = result is None or result.failure is not None
                    wait = delay if failed or not agent.queue.depth() else 0.0
                    schedule(after + wait, "push", agent)
        finally:
            with wake:
                pending[0] -= 1
                wake.notify()

    window_depth = 0
    window_enqueued = 0
    depth_taken = False
    with ThreadPoolExecutor(spec["pool"]) as pool:
        while True:
            with wake:
                now = time.monotonic()
                due_events: list[Event] = []
                while now < drain_end and heap and heap[0].due <= now:
                    due_events.append(heapq.heappop(heap))
                if not due_events:
                    if pending[0] == 0 and (not heap or now >= drain_end):
                        break
                    timeout = 0.5
                    if heap:
                        timeout = min(timeout, heap[0].due - now)
                    if not depth_taken:
                        timeout = min(timeout, window_end - now)
                    wake.wait(max(timeout, 0.0005))
                pending[0] += len(due_events)
            if not depth_taken and time.monotonic() >= window_end:
                window_depth = sum(agent.queue.depth() for agent in agents)
                window_enqueued = sum(agent.enqueued for agent in agents)
                depth_taken = True
            for event in due_events:
                pool.submit(run, event)
    finished = time.monotonic()
    if not depth_taken:
        window_depth = sum(agent.queue.depth() for agent in agents)
        window_enqueued = sum(agent.enqueued for agent in agents)
    last_seqs = {}
    depth_after = 0
    dead = 0
    for agent in agents:
        counters = agent.queue.counters()
        last_seqs[agent.config.device_id] = counters["last_seq"]
        dead += counters["dead_lettered"]
        depth_after += agent.queue.depth()
        agent.client.close()
        agent.queue.close()
    in_window = [p for p in posts if p.started < window_end]
    return {
        "first": spec["first"],
        "enqueued_window": window_enqueued,
        "depth_window_end": window_depth,
        "depth_after_drain": depth_after,
        "drain_s": max(0.0, finished - window_end),
        "dead_lettered": dead,
        "last_seqs": last_seqs,
        "push_latencies": [p.elapsed for p in in_window if p.path == "/api/readings"],
        "heartbeat_latencies": [p.elapsed for p in in_window if p.path == "/api/telemetry"],
        "statuses": Counter(
            f"{p.path} {p.status if p.status is not None else 'net'}" for p in in_window
        ),
        "drain_statuses": Counter(
            f"{p.path} {p.status if p.status is not None else 'net'}"
            for p in posts
            if p.started >= window_end
        ),
        "lags": lags,
    }


# -- one step of the ramp ------------------------------------------------------------------


def profile_receiver(
    receiver: ReceiverProcess, seconds: float, directory: Path
) -> tuple[list[Path], list[Path]]:
    """py-spy record of every gunicorn worker for `seconds`, collapsed stacks: once of
    every thread not sleeping (wall time, so fsync and lock waits show) and once of only
    the thread holding the GIL (--gil: where the CPU in Python goes)."""
    outputs: list[Path] = []
    procs = []
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    assert receiver.process is not None
    workers = [child.pid for child in psutil.Process(receiver.process.pid).children()]
    for pid, gil in itertools.product(workers, ("", "--gil")):
        output = directory / f"py-spy-{pid}{gil}.txt"
        procs.append(
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, int(seconds))),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--nonblocking",
                    *([gil] if gil else []),
                    "--output",
                    str(output),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        outputs.append(output)
    for proc in procs:
        proc.wait()
    found = [output for output in outputs if output.exists()]
    return [p for p in found if "--gil" not in p.name], [p for p in found if "--gil" in p.name]


def run_step(
    nodes: int, push_interval_ms: int, args: argparse.Namespace, profile: bool
) -> dict[str, Any]:
    queues_dir = tempfile.mkdtemp(prefix="beam-fleet-sim-queues-", dir=args.queue_dir)
    try:
        return run_step_in(nodes, push_interval_ms, args, profile, queues_dir)
    finally:
        shutil.rmtree(queues_dir, ignore_errors=True)


def run_step_in(
    nodes: int, push_interval_ms: int, args: argparse.Namespace, profile: bool, queues: str
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="beam-fleet-sim-") as temporary:
        directory = Path(temporary)
        receiver = start_receiver(directory, nodes, args)
        context = multiprocessing.get_context("spawn")
        go = context.Event()
        ready = context.Queue()
        results = context.Queue()
        processes = []
        share = -(-nodes // args.processes)
        try:
            for first in range(0, nodes, share):
                spec = {
                    "url": receiver.url,
                    "first": first,
                    "count": min(share, nodes - first),
                    "rate": args.rate,
                    "push_interval_ms": push_interval_ms,
                    "heartbeat_s": args.heartbeat_s,
                    "seconds": args.seconds,
                    "drain_s": args.drain_s,
                    "pool": args.pool,
                    "enqueue_every_s": args.enqueue_every_s,
                    "cpus": args.simulator_cpus,
                    "queue_dir": queues,
                }
                process = context.Process(target=run_worker, args=(spec, go, ready, results))
                process.start()
                processes.append(process)
            setup_started = time.monotonic()
            for _ in processes:
                ready.get(timeout=600)
            setup_s = time.monotonic() - setup_started
            simulator = [psutil.Process(p.pid) for p in processes]
            receiver_procs = receiver_processes(receiver)
            stored_before = stored_count(receiver.database)
            cpu_receiver = cpu_seconds(receiver_procs)
            cpu_sim = cpu_seconds(simulator)
            go.set()
            started = time.monotonic()
            profiles: tuple[list[Path], list[Path]] = ([], [])
            if profile:
                time.sleep(min(5.0, args.seconds / 4))  # past the start-up ripple
                profiles = profile_receiver(
                    receiver, args.seconds - (time.monotonic() - started) - 1, directory
                )
            time.sleep(max(0.0, started + args.seconds - time.monotonic()))
            elapsed = time.monotonic() - started
            stored_window = stored_count(receiver.database) - stored_before
            cpu_receiver = cpu_seconds(receiver_procs) - cpu_receiver
            cpu_sim = cpu_seconds(simulator) - cpu_sim
            reports = [results.get(timeout=args.drain_s + 600) for _ in processes]
            for process in processes:
                process.join(60)
            errors = [r["error"] for r in reports if "error" in r]
            if errors:
                raise SystemExit(f"a simulator process failed: {errors[0]}")
            profile_text = ""
            if profiles[0]:
                profile_text += "threads not sleeping (wall time):\n"
                profile_text += summarize_profiles(profiles[0])
            if profiles[1]:
                profile_text += "\nthe thread holding the GIL (CPU in Python, py-spy --gil):\n"
                profile_text += summarize_profiles(profiles[1])
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
            receiver.stop(60)
        per_device = stored_per_device(receiver.database)
        if args.keep_logs:
            shutil.copy(receiver.log, Path(args.keep_logs) / f"receiver-{nodes}.log")

    push = [value for r in reports for value in r["push_latencies"]]
    beats = [value for r in reports for value in r["heartbeat_latencies"]]
    lags = [value for r in reports for value in r["lags"]]
    statuses: Counter[str] = sum((r["statuses"] for r in reports), Counter())
    drain_statuses: Counter[str] = sum((r["drain_statuses"] for r in reports), Counter())
    last_seqs: dict[str, int] = {}
    for report in reports:
        last_seqs.update(report["last_seqs"])
    wrong = [
        device
        for device, last in last_seqs.items()
        if per_device.get(device) != ((last, last, 1, last) if last else None)
    ]
    enqueued = sum(r["enqueued_window"] for r in reports)
    depth_end = sum(r["depth_window_end"] for r in reports)
    codes: Counter[str] = Counter()
    for key, count in statuses.items():
        codes[key.split()[1]] += count
    readings_posts = sum(c for k, c in statuses.items() if k.startswith("/api/readings"))
    push_s = push_interval_ms / 1000
    backlog_ok = depth_end <= 2 * nodes * args.rate * push_s + nodes
    exactly_once = not wrong and sum(r["depth_after_drain"] for r in reports) == 0
    p99 = percentile(push, 0.99)
    step = {
        "receiver": "baseline" if args.receiver_src else "this tree",
        "nodes": nodes,
        "push_interval_s": push_s,
        "rate_per_node": args.rate,
        "seconds": round(elapsed, 1),
        "setup_s": round(setup_s, 1),
        "offered_per_s": round(enqueued / elapsed, 1),
        "stored_per_s": round(stored_window / elapsed, 1),
        "reading_posts_per_s": round(readings_posts / elapsed, 1),
        "posts_per_s": round(sum(statuses.values()) / elapsed, 1),
        "push_p50_ms": round(percentile(push, 0.50) * 1000, 1),
        "push_p99_ms": round(p99 * 1000, 1),
        "heartbeat_p99_ms": round(percentile(beats, 0.99) * 1000, 1),
        "schedule_lag_p99_ms": round(percentile(lags, 0.99) * 1000, 1),
        "status_counts": dict(sorted(codes.items())),
        "errors_network": codes.get("net", 0),
        "errors_5xx": sum(c for k, c in codes.items() if k != "net" and int(k) >= 500),
        "errors_503": codes.get("503", 0),
        "errors_429": codes.get("429", 0),
        "drain_status_counts": dict(sorted(drain_statuses.items())),
        "queued_at_end": depth_end,
        "queued_after_drain": sum(r["depth_after_drain"] for r in reports),
        "drain_s": round(max(r["drain_s"] for r in reports), 1),
        "dead_lettered": sum(r["dead_lettered"] for r in reports),
        "receiver_cpu_pct": round(100 * cpu_receiver / elapsed, 1),
        "simulator_cpu_pct": round(100 * cpu_sim / elapsed, 1),
        "receiver_cpu_ms_per_post": round(1000 * cpu_receiver / max(1, sum(statuses.values())), 2),
        "devices_wrong": len(wrong),
        "exactly_once": exactly_once,
        "holds": exactly_once and backlog_ok and p99 < 1.0,
        "profile": profile_text,
    }
    return step


# -- the profile ----------------------------------------------------------------------------

PARTS = {
    "SQLite commit (fsync)": ("COMMIT", "commit", "transaction (beam_receiver/storage.py"),
    "SQLite executemany/execute": ("executemany", "execute ("),
    "token check (sha256 + compare_digest over every device)": ("identify_token",),
    "JSON parse of the body": ("read_json_body",),
    "validation of readings": ("parse_readings", "reading_items"),
    "Prometheus metrics": ("prometheus_client",),
    "request log (JSON line, logging)": ("requestlog", "logging/__init__"),
    "Flask-Login and the session cookie": ("flask_login", "flask/sessions"),
    "JSON encode of the answer": ("json/encoder",),
    "tokens file / node list stat() per request": ("reloading.py",),
    "Flask/werkzeug routing and response": ("full_dispatch_request", "wsgi_app"),
    "gunicorn (accept, parse, keep-alive)": ("gunicorn/workers", "gunicorn/http"),
}


def summarize_profiles(paths: list[Path]) -> str:
    """Own time per function and time inside a few parts, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    idle = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            leaf = frames[-1]
            if any(word in leaf for word in ("wait (threading", "select (selectors", "_wait_for")):
                idle += count
                continue
            total += count
            own[leaf] += count
            for frame in set(frames):
                if "beam_receiver/" in frame:
                    inclusive[frame] += count
            for part, needles in PARTS.items():
                if any(any(needle in frame for needle in needles) for frame in frames):
                    inside[part] += count
    if not total:
        return "py-spy recorded no busy samples"
    lines = [f"busy samples: {total} ({idle} idle samples left out)", "time inside:"]
    for part, count in inside.most_common():
        lines.append(f"  {100 * count / total:5.1f}%  {part}")
    lines.append("own time, top functions:")
    for leaf, count in own.most_common(12):
        lines.append(f"  {100 * count / total:5.1f}%  {leaf}")
    lines.append("inclusive time, beam_receiver lines:")
    for frame, count in inclusive.most_common(12):
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def print_table(steps: list[dict[str, Any]]) -> None:
    header = (
        f"{'receiver':>9} {'nodes':>6} {'push s':>6} {'offered/s':>9} {'stored/s':>9} {'POST/s':>7}"
        f" {'p50 ms':>7} {'p99 ms':>7} {'lag p99':>8} {'net':>5} {'5xx':>5} {'429':>4}"
        f" {'queued':>7} {'rcv CPU':>7} {'sim CPU':>7} {'once':>5} {'holds':>5}"
    )
    print(header)
    for s in steps:
        print(
            f"{s['receiver']:>9} {s['nodes']:>6} {s['push_interval_s']:>6g}"
            f" {s['offered_per_s']:>9,.0f}"
            f" {s['stored_per_s']:>9,.0f} {s['posts_per_s']:>7,.0f} {s['push_p50_ms']:>7.1f}"
            f" {s['push_p99_ms']:>7.1f} {s['schedule_lag_p99_ms']:>8.1f}"
            f" {s['errors_network']:>5} {s['errors_5xx']:>5} {s['errors_429']:>4}"
            f" {s['queued_at_end']:>7} {s['receiver_cpu_pct']:>6.0f}%"
            f" {s['simulator_cpu_pct']:>6.0f}% {'yes' if s['exactly_once'] else 'NO':>5}"
            f" {'yes' if s['holds'] else 'no':>5}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int_list, default=[500, 1000, 2000, 3000, 5000])
    parser.add_argument("--rate", type=float, default=1.0, help="readings/s per node")
    parser.add_argument(
        "--push-interval-ms", type=int_list, default=[1000], help="one or more, comma separated"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="window of each step")
    parser.add_argument("--drain-s", type=float, default=120.0, help="final drain, at most")
    parser.add_argument("--heartbeat-s", type=float, default=30.0)
    parser.add_argument(
        "--enqueue-every-s",
        type=float,
        default=0.0,
        help="group a node's readings into one enqueue every this many s (default: each"
        " reading on its own, as the agent at 1 Hz); the receiver sees the same batches as"
        " long as this is no longer than the push interval, the simulator spends less CPU",
    )
    parser.add_argument("--processes", type=int, default=2, help="simulator processes")
    parser.add_argument("--pool", type=int, default=64, help="threads per simulator process")
    parser.add_argument("--workers", type=int, default=2, help="receiver gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="receiver threads per worker")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument(
        "--receiver-cpus", type=int_list, default=[], help="pin the receiver (taskset), e.g. 0"
    )
    parser.add_argument(
        "--simulator-cpus", type=int_list, default=[], help="pin the simulator, e.g. 1"
    )
    parser.add_argument("--queue-dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    parser.add_argument("--profile", action="store_true", help="py-spy on the last step")
    parser.add_argument("--stop-after-failure", action="store_true")
    parser.add_argument("--keep-logs", help="copy each step's receiver log into this folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--baseline",
        help="a checkout of an earlier commit: run every step against its receiver too",
    )
    args = parser.parse_args()
    if args.profile and not (
        shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists()
    ):
        parser.error("--profile needs py-spy: pip install py-spy (in the dev extra)")
    if args.baseline and not (Path(args.baseline) / "receiver" / "beam_receiver").is_dir():
        parser.error(f"--baseline {args.baseline}: no receiver/beam_receiver there")

    print(
        f"beam-fleet fleet simulator: agent {agent_version}, receiver {receiver_version},"
        f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"receiver: {args.workers} workers x {args.threads} threads,"
        f" synchronous={args.synchronous}; simulator: {args.processes} processes x"
        f" {args.pool} threads, queues in {args.queue_dir or tempfile.gettempdir()};"
        f" {args.rate:g} reading/s per node, heartbeat every {args.heartbeat_s:g} s,"
        f" {args.seconds:g} s per step; CPUs: receiver {args.receiver_cpus or 'any'},"
        f" simulator {args.simulator_cpus or 'any'}",
        flush=True,
    )
    steps: list[dict[str, Any]] = []
    sources = [args.baseline, None] if args.baseline else [None]
    plan = [(n, i, src) for i in args.push_interval_ms for n in args.nodes for src in sources]
    for number, (nodes, interval, source) in enumerate(plan):
        profile = args.profile and number == len(plan) - 1
        args.receiver_src = source
        which = f" (receiver from {source})" if source else ""
        print(f"\n-- {nodes} nodes, push every {interval / 1000:g} s{which} ...", flush=True)
        step = run_step(nodes, interval, args, profile)
        steps.append(step)
        print_table([step])
        print(
            f"   setup {step['setup_s']} s, drain {step['drain_s']} s, heartbeat p99"
            f" {step['heartbeat_p99_ms']} ms, receiver CPU"
            f" {step['receiver_cpu_ms_per_post']} ms per POST, statuses"
            f" {step['status_counts']}, in the drain {step['drain_status_counts']}"
        )
        if not step["exactly_once"]:
            print(
                f"   NOT exactly once: {step['devices_wrong']} devices differ,"
                f" {step['queued_after_drain']} readings still queued after the drain"
            )
        if step["profile"]:
            print("\nreceiver profile (py-spy, gunicorn workers, this step):")
            print(step["profile"])
        if args.stop_after_failure and not step["holds"]:
            break

    print("\nsummary:")
    print_table(steps)
    for interval in args.push_interval_ms:
        for receiver in sorted({s["receiver"] for s in steps}):
            held = [
                s["nodes"]
                for s in steps
                if s["push_interval_s"] * 1000 == interval
                and s["holds"]
                and s["receiver"] == receiver
            ]
            best = max(held) if held else None
            print(
                f"{receiver}: largest fleet that held (all stored once, p99 < 1 s) with"
                f" {interval / 1000:g} s pushes: {best or 'none of the steps'}"
            )
    if args.baseline:
        for now in (s for s in steps if s["receiver"] == "this tree"):
            before = next(
                b
                for b in steps
                if b["receiver"] == "baseline"
                and (b["nodes"], b["push_interval_s"]) == (now["nodes"], now["push_interval_s"])
            )
            gain = before["receiver_cpu_ms_per_post"] / max(0.001, now["receiver_cpu_ms_per_post"])
            print(
                f"{now['nodes']} nodes, {now['push_interval_s']:g} s pushes: receiver CPU per"
                f" POST {before['receiver_cpu_ms_per_post']} -> {now['receiver_cpu_ms_per_post']}"
                f" ms (x{gain:.2f} less), p99 {before['push_p99_ms']:.0f}"
                f" -> {now['push_p99_ms']:.0f} ms"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps(steps, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
