"""beam-receiver behind nginx with TLS against gunicorn direct: prints figures, asserts nothing.

One real `beam-receiver serve` (gunicorn) on 127.0.0.1, and in front of it the distribution's
nginx with the very nginx.conf the receiver role ships (roles/receiver/templates/nginx.conf.j2,
rendered here with the role's defaults; only its pid, log and user lines point into the work
directory) and a certificate from a fleet CA made for this run. In one run, alternating:

  direct   agents' batches POSTed over plain HTTP to gunicorn, as before this change;
  nginx    the same batches over HTTPS through nginx, the certificate verified against the CA.

Each client keeps its connection (as the agent's requests.Session does). For each path:
POSTs per second, p50/p99 latency, and CPU per POST (gunicorn's processes, plus nginx's for
the nginx path), then the ratios nginx/direct.

Run: .venv/bin/python bench/tls_front.py [--seconds 20] [--clients 4] [--batch 100] [--rounds 2]
Needs nginx (Debian: apt-get install nginx; installed here when missing, as root).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
import psutil
import requests

from tests.support.constants import DEVICE, DEVICE_TOKEN
from tests.support.receiver import configure_receiver
from tests.support.tls import make_fleet_pki
from tests.support.waiting import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = (
    REPO / "collections/ansible_collections/beam/fleet/roles/receiver/templates/nginx.conf.j2"
)
ROLE_DEFAULTS = {
    "beam_receiver_nginx_client_timeout_s": 10,
    "beam_receiver_max_body_bytes": 4194304,
    "beam_receiver_login_rate_per_minute": 10,
}


def ensure_nginx() -> str:
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path:
        return path
    print("installing nginx with apt (root)")
    subprocess.run(["apt-get", "install", "-y", "-q", "nginx"], check=True, capture_output=True)
    return "/usr/sbin/nginx"


def render_nginx_conf(
    work: Path,
    port: int,
    backend: str,
    cert: Path,
    key: Path,
    *,
    tls: bool = True,
    upstreams: Sequence[str] = (),
) -> Path:
    """The role's nginx.conf with the role's defaults, pointed at this run's files.

    `upstreams` (host:port, several): the one upstream spreads requests over all of them
    (round robin, a failed one stepped around, as the collection's pool front does) instead
    of `backend` alone. `tls` False: plain HTTP (cert and key unused)."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["bool"] = bool
    text = environment.from_string(TEMPLATE.read_text()).render(
        ansible_managed="rendered by bench/tls_front.py",
        inventory_hostname="bench",
        beam_receiver_serves_tls=tls,
        beam_receiver_pooled=False,
        beam_receiver_public_port=port,
        beam_receiver_listen=backend,
        beam_receiver_tls_dir=str(cert.parent),
        **ROLE_DEFAULTS,
    )
    text = text.replace(f"{cert.parent}/receiver.crt", str(cert)).replace(
        f"{cert.parent}/receiver.key", str(key)
    )
    text = text.replace("pid /run/nginx.pid;", f"pid {work}/nginx.pid;")
    text = text.replace(
        "error_log /var/log/nginx/error.log warn;", f"error_log {work}/nginx-error.log warn;"
    )
    text = text.replace("user www-data;", "worker_rlimit_nofile 16384;")
    # temporary files of buffered bodies go into the work directory too
    text = text.replace(
        "http {",
        f"http {{\n    client_body_temp_path {work}/body;\n    proxy_temp_path {work}/proxy;",
        1,
    )
    if upstreams:
        one = f"        server {backend};\n"
        assert one in text, "the role's nginx.conf has no single upstream server line"
        text = text.replace(
            one,
            "".join(
                f"        server {address} max_fails=1 fail_timeout=10s;\n" for address in upstreams
            ),
            1,
        )
        text = text.replace(
            "        proxy_read_timeout 60s;\n",
            "        proxy_read_timeout 60s;\n"
            "        proxy_next_upstream error timeout http_502 http_503 non_idempotent;\n"
            f"        proxy_next_upstream_tries {len(upstreams)};\n",
        )
    for name in ("body", "proxy"):
        (work / name).mkdir(exist_ok=True)
    path = work / "nginx.conf"
    path.write_text(text)
    return path


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children, now."""
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


@dataclass
class Figures:
    posts: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.posts / self.seconds

    @property
    def cpu_ms_per_post(self) -> float:
        return 1000 * self.cpu_s / self.posts


def batch(seq_start: int, size: int) -> dict[str, object]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {
        "readings": [
            {
                "device_id": DEVICE,
                "sensor": "bench",
                "sensor_type": "virtual",
                "timestamp": now,
                "seq": seq_start + i,
                "payload": {"value": i},
            }
            for i in range(size)
        ]
    }


def drive(
    url: str,
    verify: object,
    clients: int,
    seconds: float,
    size: int,
    seq: list[int],
    lock: threading.Lock,
    cpu_pids: list[int],
) -> Figures:
    """`clients` threads POSTing batches for `seconds`; latency per POST, CPU of cpu_pids."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {DEVICE_TOKEN}"
        while time.monotonic() < stop:
            with lock:
                start = seq[0]
                seq[0] += size
            body = batch(start, size)
            began = time.monotonic()
            answer = session.post(f"{url}/api/readings", json=body, verify=verify, timeout=30)
            took = time.monotonic() - began
            if answer.status_code != 200:
                raise SystemExit(f"{url}: HTTP {answer.status_code}: {answer.text[:300]}")
            with lock:
                latencies.append(took)

    cpu_before = sum(tree_cpu_s(pid) for pid in cpu_pids)
    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    cpu = sum(tree_cpu_s(pid) for pid in cpu_pids) - cpu_before
    ordered = sorted(latencies)
    return Figures(
        posts=len(ordered),
        seconds=elapsed,
        p50_ms=1000 * statistics.median(ordered),
        p99_ms=1000 * ordered[int(0.99 * (len(ordered) - 1))],
        cpu_s=cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="per path and round")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100, help="readings per POST")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    nginx = ensure_nginx()
    work = Path(tempfile.mkdtemp(prefix="beam-tls-front."))
    pki = make_fleet_pki(work / "pki")
    receiver = configure_receiver(work / "receiver", workers=2, proxy_fix=True)
    nginx_port = free_port()
    conf = render_nginx_conf(
        work, nginx_port, f"127.0.0.1:{receiver.port}", pki.server.cert, pki.server.key
    )
    subprocess.run([nginx, "-t", "-q", "-c", str(conf)], check=True)
    seq = [1]
    lock = threading.Lock()
    with receiver:
        front = subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"])
        try:

            def nginx_answers() -> bool:
                try:
                    url = f"https://127.0.0.1:{nginx_port}/healthz"
                    return requests.get(url, verify=str(pki.ca.cert), timeout=2).ok
                except requests.RequestException:
                    assert front.poll() is None, f"nginx exited: see {work}/nginx-error.log"
                    return False

            wait_for(nginx_answers, 30, "nginx to answer /healthz")
            assert receiver.process is not None
            results: dict[str, list[Figures]] = {"direct": [], "nginx": []}
            for round_ in range(args.rounds):
                order = ["direct", "nginx"] if round_ % 2 == 0 else ["nginx", "direct"]
                for path in order:
                    if path == "direct":
                        figures = drive(
                            receiver.url,
                            True,
                            args.clients,
                            args.seconds,
                            args.batch,
                            seq,
                            lock,
                            [receiver.process.pid],
                        )
                    else:
                        figures = drive(
                            f"https://127.0.0.1:{nginx_port}",
                            str(pki.ca.cert),
                            args.clients,
                            args.seconds,
                            args.batch,
                            seq,
                            lock,
                            [receiver.process.pid, front.pid],
                        )
                    results[path].append(figures)
                    print(
                        f"round {round_ + 1} {path:6s}: {figures.rate:7.1f} POST/s"
                        f" ({figures.rate * args.batch:8.0f} readings/s),"
                        f" p50 {figures.p50_ms:6.1f} ms, p99 {figures.p99_ms:6.1f} ms,"
                        f" CPU {figures.cpu_ms_per_post:5.2f} ms/POST"
                    )
        finally:
            front.terminate()
            front.wait(timeout=10)
    print(
        f"\n{args.clients} clients, {args.batch} readings per POST,"
        f" {args.rounds} rounds of {args.seconds:g} s per path;"
        f" load {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}"
    )
    mean = {
        path: {
            "rate": statistics.mean(f.rate for f in figures),
            "p99": statistics.mean(f.p99_ms for f in figures),
            "cpu": statistics.mean(f.cpu_ms_per_post for f in figures),
        }
        for path, figures in results.items()
    }
    for path, values in mean.items():
        print(
            f"{path:6s}: {values['rate']:7.1f} POST/s, p99 {values['p99']:6.1f} ms,"
            f" CPU {values['cpu']:5.2f} ms/POST"
        )
    print(
        f"nginx+TLS / direct: throughput {mean['nginx']['rate'] / mean['direct']['rate']:.2f}x,"
        f" p99 {mean['nginx']['p99'] / mean['direct']['p99']:.2f}x,"
        f" CPU per POST {mean['nginx']['cpu'] / mean['direct']['cpu']:.2f}x"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
