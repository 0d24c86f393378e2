"""beam-fleet fleet simulator: prints figures, asserts nothing.

How many nodes does one `beam-receiver serve` hold on this machine? Thousands of simulated
agents run in a few worker processes against one real receiver (gunicorn, a temp SQLite
database, a tokens file with one sha256 hash per device plus an operator, an expected-node
list for the whole fleet), started afresh for every step of a ramp.

The receiving side (--backend, --receivers, --nginx, --tls):
- `--backend sqlite` (default): the receiver's own SQLite file, `synchronous` FULL.
- `--backend postgres`: the distribution's PostgreSQL 15 started once for the run in a temp
  dir on a loopback port (tests/support/postgres.py; durable: fsync and synchronous_commit
  on), or an existing server with `--postgres-url postgresql://USER@HOST:PORT/DB
  --postgres-password-file F` (the role must be allowed to CREATE DATABASE). Every step gets
  a fresh database, dropped after it.
- `--receivers N` (postgres only): N gunicorn receivers on that one database, the same
  tokens and one session key, behind one address: the distribution's nginx
  (/usr/sbin/nginx, not a daemon, its files in the step's temp dir, on a loopback port)
  with the receiver role's nginx.conf, its upstream the N gunicorns (round robin, a failed
  one stepped around). Every simulated agent pushes to that one address. `--nginx` puts
  nginx in front of one receiver too; `--tls` makes it HTTPS (a CA made for the run, which
  the agents verify).

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
Stored readings are counted in whichever database the step used.

CPU per POST over real HTTP: CPU seconds of every gunicorn process of every receiver
(masters and workers, summed) over the window, divided by all POSTs answered in the window
(readings, heartbeats, registrations); nginx's processes and PostgreSQL's (when started
here) are counted apart, never in the receiver's figure. Also per stored reading.

A step "holds" when every reading was stored exactly once, the backlog at the end of the
window is no more than two push intervals' worth, POST p99 < 1 s, and the simulator offered
at least 95% of the readings asked (nodes x rate): a step whose simulator fell behind
shows "sim" in the holds column, since it says nothing about the receiver.

--baseline DIR runs every step twice, alternating, once against a receiver imported from
DIR/receiver (a checkout of an earlier commit: `git worktree add /tmp/beam-baseline <rev>`)
and once against this tree's, so a change's gain is a ratio measured in one run.

--profile samples the receiver's gunicorn workers with py-spy during the last step and
prints where their time goes (own time per function, and time inside a few chosen parts).

--push-interval-ms and --heartbeat-s default to the agent's own defaults
(beam_agent.config: PushConfig, TelemetryConfig), so a run with no such option measures the
fleet as the agent ships.

Figures (SQLite, PostgreSQL, two receivers behind nginx, 1 s and 10 s pushes) and the
commands that produce them: docs/receiver.md, "Scaling: a simulated fleet over real HTTP".

Run: .venv/bin/python bench/fleet_sim.py [--nodes 500,1000,2000,3000,5000] [--rate 1]
     [--push-interval-ms 1000,10000] [--seconds 30] [--processes 2] [--profile]
     [--backend sqlite|postgres] [--receivers N] [--nginx] [--tls]
"""

from __future__ import annotations

import argparse
import contextlib
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
from urllib.parse import urlsplit, urlunsplit

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the receiver process, as the tests start it
sys.path.insert(0, str(ROOT / "bench"))  # tls_front: the role's nginx.conf, rendered

from tls_front import ensure_nginx, render_nginx_conf

from beam_agent import __version__ as agent_version
from beam_agent.config import AgentConfig, PushConfig, TelemetryConfig
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
from tests.support.tls import make_fleet_pki
from tests.support.waiting import free_port, wait_for

OPERATOR_TOKEN = "fleet-sim-operator"
BATCH_SIZE = PushConfig().batch_size  # the agent's defaults
TIMEOUT_S = PushConfig().timeout_s
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


# -- the receiver: its database, its gunicorns, nginx in front ----------------------------


class StepDatabase:
    """Where one step's receivers store; counted after the step for the exactly-once check."""

    def settings(self, shared: Path) -> dict[str, Any]:
        """receiver.toml keys for every receiver of the step (`shared`: the step's folder)."""
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def per_device(self) -> dict[str, tuple[int, int, int, int]]:
        """device -> (rows, distinct seqs, min seq, max seq) in the readings table."""
        raise NotImplementedError

    def close(self) -> None:
        pass


PER_DEVICE_SQL = (
    "SELECT device_id, count(*), count(DISTINCT seq), min(seq), max(seq)"
    " FROM readings GROUP BY device_id"
)


class SqliteDatabase(StepDatabase):
    """The receiver's own file, receiver.db beside its receiver.toml (one receiver only)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def settings(self, shared: Path) -> dict[str, Any]:
        return {"database": str(self.path)}

    def count(self) -> int:
        return stored_count(self.path)

    def per_device(self) -> dict[str, tuple[int, int, int, int]]:
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as db:
            rows = db.execute(PER_DEVICE_SQL).fetchall()
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


class PostgresDatabase(StepDatabase):
    """A fresh database on the run's PostgreSQL server, dropped after the step."""

    def __init__(self, place: PostgresPlace, url: str, drop: Callable[[], None]) -> None:
        self.place = place
        self.url = url
        self.drop = drop

    def settings(self, shared: Path) -> dict[str, Any]:
        return {
            "database": self.url,
            "database_password_file": str(self.place.password_file),
            # one key for the pool, as the collection gives its receivers
            "secret_key_file": str(shared / "session.secret-key"),
        }

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, password=self.place.password, autocommit=True) as db:
            return list(db.execute(sql).fetchall())

    def count(self) -> int:
        return int(self.query("SELECT count(*) FROM readings")[0][0])

    def per_device(self) -> dict[str, tuple[int, int, int, int]]:
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in self.query(PER_DEVICE_SQL)}

    def close(self) -> None:
        self.drop()


class PostgresPlace:
    """The run's PostgreSQL: the distribution's PostgreSQL 15 started here in a temp dir
    (tests/support/postgres.py, durable: fsync and synchronous_commit on), or an existing
    server (`--postgres-url`, its role allowed to CREATE DATABASE). Every step gets a fresh
    database on it, dropped afterwards."""

    def __init__(self, url: Optional[str], password_file: Optional[str]) -> None:
        from tests.support.postgres import start_postgres

        self.server = None if url else start_postgres(durable=True)
        if self.server is not None:
            self.password_file = self.server.password_file
            self.admin_url = self.server.url("postgres")
        else:
            assert url is not None and password_file is not None
            self.password_file = Path(password_file)
            self.admin_url = url
        self.password = self.password_file.read_text(encoding="utf-8").strip()
        self.steps = itertools.count(1)

    def describe(self) -> str:
        if self.server is not None:
            return f"PostgreSQL 15 started here (durable), port {self.server.port}"
        return f"PostgreSQL at {self.admin_url}"

    def new_database(self) -> PostgresDatabase:
        import psycopg

        if self.server is not None:
            server = self.server
            name = server.create_database()  # copied from the migrated template
            return PostgresDatabase(self, server.url(name), lambda: server.drop_database(name))
        name = f"beam_fleet_sim_{os.getpid()}_{next(self.steps)}"
        with psycopg.connect(self.admin_url, password=self.password, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")

        def drop() -> None:
            with psycopg.connect(self.admin_url, password=self.password, autocommit=True) as db:
                db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

        url = urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{name}"))
        return PostgresDatabase(self, url, drop)

    def processes(self) -> list[psutil.Process]:
        """The server's processes, when it runs here (else none: its CPU is not counted)."""
        if self.server is None:
            return []
        found = []
        for pid in self.server.server_pids():
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))
        return found

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            shutil.rmtree(self.server.password_file.parent, ignore_errors=True)


@dataclass
class Front:
    """The receiving side of one step: the receivers, nginx (if any), the agents' URL."""

    receivers: list[ReceiverProcess]
    database: StepDatabase
    url: str
    ca_file: Optional[Path] = None
    nginx: Optional[subprocess.Popen[bytes]] = None
    work: Optional[Path] = None

    def gunicorn_processes(self) -> list[psutil.Process]:
        """Every receiver's gunicorn master and workers."""
        found = []
        for receiver in self.receivers:
            assert receiver.process is not None
            master = psutil.Process(receiver.process.pid)
            found += [master, *master.children(recursive=True)]
        return found

    def worker_pids(self) -> list[int]:
        return [
            child.pid
            for receiver in self.receivers
            if receiver.process is not None
            for child in psutil.Process(receiver.process.pid).children()
        ]

    def nginx_processes(self) -> list[psutil.Process]:
        if self.nginx is None:
            return []
        master = psutil.Process(self.nginx.pid)
        return [master, *master.children(recursive=True)]

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            try:
                self.nginx.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        for receiver in self.receivers:
            receiver.stop(60)


def start_receiver(
    directory: Path, nodes: int, args: argparse.Namespace, settings: dict[str, Any]
) -> ReceiverProcess:
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
        telemetry_interval_s=args.heartbeat_s,
        proxy_fix=bool(args.nginx),
        **({"synchronous": args.synchronous} if args.backend == "sqlite" else {}),
        **settings,
    )
    receiver.start()
    return receiver


def start_front(
    directory: Path, nodes: int, args: argparse.Namespace, database: StepDatabase
) -> Front:
    """--receivers gunicorns on one database; with nginx, one address in front of them."""
    settings = database.settings(directory)
    receivers: list[ReceiverProcess] = []
    front = Front(receivers, database, "")
    try:
        for number in range(args.receivers):
            receivers.append(
                start_receiver(directory / f"receiver-{number}", nodes, args, settings)
            )
        if not args.nginx:
            front.url = receivers[0].url
            return front
        work = directory / "nginx"
        work.mkdir()
        front.work = work
        pki = make_fleet_pki(work / "pki") if args.tls else None
        port = free_port()
        addresses = [f"127.0.0.1:{receiver.port}" for receiver in receivers]
        conf = render_nginx_conf(
            work,
            port,
            addresses[0],
            pki.server.cert if pki else work / "unused.crt",
            pki.server.key if pki else work / "unused.key",
            tls=args.tls,
            upstreams=addresses,
        )
        nginx = ensure_nginx()
        subprocess.run([nginx, "-t", "-q", "-c", str(conf)], check=True)
        prefix = ["taskset", "-c", ",".join(map(str, args.receiver_cpus))]
        front.nginx = subprocess.Popen(
            [*(prefix if args.receiver_cpus else []), nginx, "-c", str(conf), "-g", "daemon off;"]
        )
        front.url = f"{'https' if pki else 'http'}://127.0.0.1:{port}"
        front.ca_file = pki.ca.cert if pki else None
        verify: Any = str(pki.ca.cert) if pki else True

        def answers() -> bool:
            assert front.nginx is not None
            assert front.nginx.poll() is None, f"nginx exited: see {work}/nginx-error.log"
            try:
                return requests.get(front.url + "/healthz", verify=verify, timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(answers, 30, "nginx to answer /healthz")
        return front
    except BaseException:
        front.stop()
        raise


def cpu_snapshot(processes: list[psutil.Process]) -> dict[int, float]:
    """pid -> CPU seconds (user + system) so far."""
    taken = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        taken[process.pid] = times.user + times.system
    return taken


def cpu_since(before: dict[int, float], processes: list[psutil.Process]) -> float:
    """CPU seconds these processes used since `before` (a process new since then: all of
    its CPU; one gone since then: lost, so keep the processes alive through the window)."""
    now = cpu_snapshot(processes)
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items())


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(cpu_snapshot(processes).values())


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
        ca_file = Path(spec["ca_file"]) if spec["ca_file"] else None
        config = AgentConfig(
            path=state_dir / "agent.toml",
            device_id=device_id(index),
            api_url=url,
            state_dir=state_dir,
            device_token=token,
            ca_file=ca_file,
        )
        queue = ReadingQueue(state_dir)
        client = TimedClient(
            posts.append,
            url,
            config.device_id,
            config.read_token,
            TIMEOUT_S,
            agent_version,
            ca_file=ca_file,
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
    workers: list[int], seconds: float, directory: Path
) -> tuple[list[Path], list[Path]]:
    """py-spy record of every gunicorn worker for `seconds`, collapsed stacks: once of
    every thread not sleeping (wall time, so fsync and lock waits show) and once of only
    the thread holding the GIL (--gil: where the CPU in Python goes)."""
    outputs: list[Path] = []
    procs = []
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
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
        database: StepDatabase = (
            args.postgres.new_database()
            if args.postgres is not None
            else SqliteDatabase(directory / "receiver-0" / "receiver.db")
        )
        try:
            front = start_front(directory, nodes, args, database)
        except BaseException:
            database.close()
            raise
        context = multiprocessing.get_context("spawn")
        go = context.Event()
        ready = context.Queue()
        results = context.Queue()
        processes = []
        share = -(-nodes // args.processes)
        try:
            for first in range(0, nodes, share):
                spec = {
                    "url": front.url,
                    "ca_file": str(front.ca_file) if front.ca_file else None,
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
            gunicorns = front.gunicorn_processes()
            nginxes = front.nginx_processes()
            stored_before = database.count()
            cpu_receiver = cpu_snapshot(gunicorns)
            cpu_nginx = cpu_snapshot(nginxes)
            cpu_postgres = cpu_snapshot(args.postgres.processes() if args.postgres else [])
            cpu_sim = cpu_seconds(simulator)
            go.set()
            started = time.monotonic()
            profiles: tuple[list[Path], list[Path]] = ([], [])
            if profile:
                time.sleep(min(5.0, args.seconds / 4))  # past the start-up ripple
                profiles = profile_receiver(
                    front.worker_pids(),
                    args.seconds - (time.monotonic() - started) - 1,
                    directory,
                )
            time.sleep(max(0.0, started + args.seconds - time.monotonic()))
            elapsed = time.monotonic() - started
            stored_window = database.count() - stored_before
            receiver_cpu = cpu_since(cpu_receiver, gunicorns)
            nginx_cpu = cpu_since(cpu_nginx, nginxes)
            postgres_cpu = cpu_since(
                cpu_postgres, args.postgres.processes() if args.postgres else []
            )
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
            front.stop()
        try:
            per_device = database.per_device()
        finally:
            database.close()
        if args.keep_logs:
            for number, receiver in enumerate(front.receivers):
                if receiver.log is not None:
                    shutil.copy(
                        receiver.log, Path(args.keep_logs) / f"receiver-{nodes}-{number}.log"
                    )

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
    # The simulator must have offered the load: when its scheduler runs behind, fewer
    # readings are enqueued than asked, and "held" would say nothing about the receiver.
    offered_ok = enqueued >= 0.95 * nodes * args.rate * elapsed
    p99 = percentile(push, 0.99)
    posts = max(1, sum(statuses.values()))
    step = {
        "receiver": "baseline" if args.receiver_src else "this tree",
        "setup": setup_label(args),
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
        "receiver_cpu_pct": round(100 * receiver_cpu / elapsed, 1),
        "nginx_cpu_pct": round(100 * nginx_cpu / elapsed, 1),
        "postgres_cpu_pct": round(100 * postgres_cpu / elapsed, 1),
        "simulator_cpu_pct": round(100 * cpu_sim / elapsed, 1),
        # every gunicorn process of every receiver, over every POST of the window
        "receiver_cpu_ms_per_post": round(1000 * receiver_cpu / posts, 2),
        "nginx_cpu_ms_per_post": round(1000 * nginx_cpu / posts, 2),
        "postgres_cpu_ms_per_post": round(1000 * postgres_cpu / posts, 2),
        "receiver_cpu_ms_per_reading": round(1000 * receiver_cpu / max(1, stored_window), 3),
        "devices_wrong": len(wrong),
        "exactly_once": exactly_once,
        "offered_ok": offered_ok,
        "holds": exactly_once and backlog_ok and p99 < 1.0 and offered_ok,
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


def setup_label(args: argparse.Namespace) -> str:
    """e.g. "sqlite x1", "postgres x2 nginx", "postgres x1 nginx+tls"."""
    front = " nginx+tls" if args.tls else " nginx" if args.nginx else ""
    return f"{args.backend} x{args.receivers}{front}"


def print_table(steps: list[dict[str, Any]]) -> None:
    header = (
        f"{'setup':>21} {'receiver':>9} {'nodes':>6} {'push s':>6} {'offered/s':>9}"
        f" {'stored/s':>9} {'POST/s':>7}"
        f" {'p50 ms':>7} {'p99 ms':>7} {'lag p99':>8} {'net':>5} {'5xx':>5} {'429':>4}"
        f" {'queued':>7} {'rcv CPU':>7} {'ms/POST':>7} {'sim CPU':>7} {'once':>5} {'holds':>5}"
    )
    print(header)
    for s in steps:
        print(
            f"{s['setup']:>21} {s['receiver']:>9} {s['nodes']:>6} {s['push_interval_s']:>6g}"
            f" {s['offered_per_s']:>9,.0f}"
            f" {s['stored_per_s']:>9,.0f} {s['posts_per_s']:>7,.0f} {s['push_p50_ms']:>7.1f}"
            f" {s['push_p99_ms']:>7.1f} {s['schedule_lag_p99_ms']:>8.1f}"
            f" {s['errors_network']:>5} {s['errors_5xx']:>5} {s['errors_429']:>4}"
            f" {s['queued_at_end']:>7} {s['receiver_cpu_pct']:>6.0f}%"
            f" {s['receiver_cpu_ms_per_post']:>7.2f}"
            f" {s['simulator_cpu_pct']:>6.0f}% {'yes' if s['exactly_once'] else 'NO':>5}"
            f" {'yes' if s['holds'] else 'no' if s['offered_ok'] else 'sim':>5}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int_list, default=[500, 1000, 2000, 3000, 5000])
    parser.add_argument("--rate", type=float, default=1.0, help="readings/s per node")
    parser.add_argument(
        "--push-interval-ms",
        type=int_list,
        default=[PushConfig().interval_ms],
        help="one or more, comma separated (default: the agent's default)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="window of each step")
    parser.add_argument("--drain-s", type=float, default=120.0, help="final drain, at most")
    parser.add_argument("--heartbeat-s", type=float, default=TelemetryConfig().interval_s)
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
    parser.add_argument(
        "--synchronous", default="FULL", choices=["FULL", "NORMAL"], help="SQLite only"
    )
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument(
        "--postgres-url",
        help="postgres: an existing server (postgresql://USER@HOST:PORT/DB; the role may"
        " CREATE DATABASE: each step gets its own, dropped after) instead of starting"
        " PostgreSQL 15 here",
    )
    parser.add_argument("--postgres-password-file", help="the password for --postgres-url")
    parser.add_argument(
        "--receivers",
        type=int,
        default=1,
        help="gunicorn receivers on one PostgreSQL database, behind one nginx (more than 1:"
        " postgres only, and nginx implied)",
    )
    parser.add_argument("--nginx", action="store_true", help="nginx in front even of one receiver")
    parser.add_argument("--tls", action="store_true", help="nginx serves HTTPS (a test CA)")
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
    if args.receivers > 1 and args.backend != "postgres":
        parser.error("--receivers above 1 share one PostgreSQL database: add --backend postgres")
    if args.postgres_url and not (args.backend == "postgres" and args.postgres_password_file):
        parser.error("--postgres-url goes with --backend postgres and --postgres-password-file")
    args.nginx = args.nginx or args.tls or args.receivers > 1

    print(
        f"beam-fleet fleet simulator: agent {agent_version}, receiver {receiver_version},"
        f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    args.postgres = (
        PostgresPlace(args.postgres_url, args.postgres_password_file)
        if args.backend == "postgres"
        else None
    )
    try:
        return run(args)
    finally:
        if args.postgres is not None:
            args.postgres.close()


def run(args: argparse.Namespace) -> int:
    store = (
        args.postgres.describe()
        if args.postgres is not None
        else f"SQLite synchronous={args.synchronous}"
    )
    front = f", behind nginx{' (TLS)' if args.tls else ''}" if args.nginx else ""
    print(
        f"receiver: {args.receivers} x ({args.workers} workers x {args.threads} threads)"
        f"{front}, {store}; simulator: {args.processes} processes x"
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
            f" {step['heartbeat_p99_ms']} ms, CPU per POST: receiver"
            f" {step['receiver_cpu_ms_per_post']} ms, nginx {step['nginx_cpu_ms_per_post']} ms,"
            f" PostgreSQL {step['postgres_cpu_ms_per_post']} ms; receiver CPU per reading"
            f" {step['receiver_cpu_ms_per_reading']} ms; statuses"
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
