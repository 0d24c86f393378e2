"""beam-agent side by side with collectd on this machine: prints figures, asserts nothing.

In one run, against one real `beam-receiver serve` on 127.0.0.1 (its own temp directory):
- `beam-agent run` at its default settings with one `system` sensor ("agent default": top
  processes, every network interface, temperatures, all of the driver's defaults);
- `beam-agent run` reading what collectd reads ("agent fair": top_processes = 0, the
  same interfaces as collectd, temperatures only where collectd's thermal plugin loads),
  and the same again with `[push] interval_ms` set to the read interval ("push each
  interval": the pusher wakes once per read, not every second);
- `collectd -f` (Debian's collectd-core, installed with apt when missing and run as root)
  with the cpu, memory, swap, load, df and interface plugins (thermal and cpufreq when the
  kernel has them) at the same interval, posting through write_http (`Format "JSON"`,
  `StoreRates true`) to the receiver's POST /api/collectd with its own device token.

Each process has its own device token; the three agents and collectd post at once. The
agents run as on a node: this tree's wheel installed into a venv of its own (`install_agent`).

1. Steady state, --window-s long: CPU seconds (utime + stime of the process and its waited
   children, from /proc/<pid>/stat) per hour of work and peak RSS (VmHWM) of each, the
   ratio agent/collectd, readings and values posted per second (from the receiver's table).
2. Outage: the receiver (gunicorn master and workers) gets SIGKILL, stays down --outage-s,
   is started again on the same database; the bench waits until both agents' queues are
   empty. Loss is counted per series (a sensor, or for collectd a sensor and type) from
   the stored timestamps: a gap of n intervals is n - 1 readings lost. For the agents the
   exact check too: the stored seqs are 1..last seq of the agent's queue, each once.

Run: .venv/bin/python bench/collectd_compare.py [--window-s 600] [--interval-s 10]
     [--outage-s 60] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the receiver and agents, as the tests start them

from tests.support.agent import AgentProcess, write_agent_config
from tests.support.files import write_private
from tests.support.receiver import ReceiverProcess, configure_receiver
from tests.support.waiting import wait_for

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
APT_PACKAGES = ("collectd-core", "libyajl2", "libcurl3-gnutls")  # write_http needs the libs
COLLECTD = "collectd-node"
AGENTS = {
    "agent-default": "agent default",
    "agent-fair": "agent fair",
    "agent-fair-push": "agent fair, push each interval",
}


# -- processes --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of one process, in seconds (all of its threads)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def default_interface() -> str:
    """The interface of the default route (the one a node's traffic goes through)."""
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) > 1 and parts[1] == "00000000":
            return parts[0]
    return "lo"


def ensure_collectd() -> str:
    """collectd's path, after installing Debian's collectd-core if it is missing."""
    found = shutil.which("collectd") or (
        "/usr/sbin/collectd" if Path("/usr/sbin/collectd").exists() else None
    )
    if found and Path("/usr/lib/collectd/write_http.so").exists():
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(
            f"collectd is missing: apt-get install {' '.join(APT_PACKAGES)} (as root), then rerun"
        )
    print(f"installing {' '.join(APT_PACKAGES)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return shutil.which("collectd") or "/usr/sbin/collectd"


def collectd_version() -> str:
    """The Debian package's version (collectd -h says only 5.12.0.git)."""
    if shutil.which("dpkg-query") is None:
        return "collectd (version unknown)"
    query = ["dpkg-query", "-W", "-f", "${Package} ${Version}", "collectd-core"]
    return subprocess.run(query, capture_output=True, text=True).stdout.strip()


# -- the receiver -------------------------------------------------------------------------


def start_receiver(directory: Path, tokens: dict[str, str], workers: int) -> ReceiverProcess:
    receiver = configure_receiver(
        directory,
        devices=tokens,
        operators={},
        users={},
        telemetry_interval_s=None,
        workers=workers,
        threads=4,
    )
    receiver.start()
    return receiver


# -- the agents and collectd ---------------------------------------------------------------


def install_agent(tree: Path, venv: Path) -> Path:
    """beam-agent as a node runs it: the tree's wheel with its dependencies in a venv of its
    own (as the collection installs it). Not this interpreter's editable install, whose
    import hook (a .pth file, importlib.util and more) adds about 2 MiB that no node has."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{tree}[agent]",
        ],
        check=True,
    )
    return venv / "bin" / "beam-agent"


def agent_config(
    directory: Path, name: str, url: str, token: str, interval_s: float, interfaces: list[str]
) -> Path:
    """One `system` sensor at the interval; fair = only what collectd is configured to read."""
    sensor: dict[str, object] = {"name": "system", "type": "system"}
    sensor["interval_ms"] = int(interval_s * 1000)
    if name != "agent-default":
        sensor = fair_sensor(interval_s, interfaces)
    push = {}
    if name == "agent-fair-push":  # wake the pusher once per read, not every second
        push = {"push": {"interval_ms": int(interval_s * 1000)}}
    return write_agent_config(
        directory, url, [sensor], name=f"{name}.toml", device_id=name, token=token, **push
    )


def has_thermal_zones() -> bool:
    """Whether collectd's thermal plugin has anything to read here (collectd_config loads it
    only then)."""
    return any(Path("/sys/class/thermal").glob("thermal_zone*"))


def fair_sensor(interval_s: float, interfaces: list[str]) -> dict[str, object]:
    """The agent's `system` sensor reading what collectd_config has collectd read: no top
    processes, collectd's interfaces, and temperatures only where collectd reads them too."""
    sensor: dict[str, object] = {
        "name": "system",
        "type": "system",
        "interval_ms": int(interval_s * 1000),
        "top_processes": 0,
        "interfaces": interfaces,
    }
    if not has_thermal_zones():
        sensor["temperatures"] = False
    return sensor


def collectd_config(
    directory: Path, url: str, token: str, interval_s: float, interfaces: list[str]
) -> Path:
    """The plugins that read what the agent's system driver reads, posting to /api/collectd."""
    plugins = ["cpu", "memory", "swap", "load", "df", "interface"]
    thermal = has_thermal_zones()
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq").exists()
    plugins += ["thermal"] * thermal + ["cpufreq"] * cpufreq
    lines = [
        f'Hostname "{COLLECTD}"',
        "FQDNLookup false",
        f'BaseDir "{directory / "collectd"}"',
        f'PIDFile "{directory / "collectd" / "collectd.pid"}"',
        'PluginDir "/usr/lib/collectd"',
        'TypesDB "/usr/share/collectd/types.db"',
        f"Interval {interval_s}",
        "AutoLoadPlugin false",
        "LoadPlugin logfile",
        "<Plugin logfile>",
        "  LogLevel info",
        "  File STDERR",
        "  Timestamp true",
        "</Plugin>",
        *(f"LoadPlugin {plugin}" for plugin in plugins),
        "LoadPlugin write_http",
        "<Plugin cpu>",  # per core busy percent, like cpu_percent_per_core
        "  ReportByCpu true",
        "  ReportByState false",
        "  ValuesPercentage true",
        "</Plugin>",
        "<Plugin memory>",
        "  ValuesAbsolute true",
        "  ValuesPercentage true",
        "</Plugin>",
        "<Plugin swap>",
        "  ReportIO false",
        "  ValuesAbsolute true",
        "  ValuesPercentage true",
        "</Plugin>",
        "<Plugin df>",
        '  MountPoint "/"',
        "  ValuesAbsolute true",
        "  ValuesPercentage true",
        "</Plugin>",
        "<Plugin interface>",
        *(f'  Interface "{name}"' for name in interfaces),
        "</Plugin>",
        "<Plugin write_http>",
        '  <Node "beam">',
        f'    URL "{url}/api/collectd"',
        '    Format "JSON"',
        f'    Header "Authorization: Bearer {token}"',
        "    StoreRates true",
        "    LogHttpError true",
        "  </Node>",
        "</Plugin>",
        "",
    ]
    (directory / "collectd").mkdir(exist_ok=True)
    return write_private(directory / "collectd.conf", "\n".join(lines))


# -- what the receiver stored -------------------------------------------------------------


def read_only(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def count_values(value: Any) -> int:
    """Numbers in a payload (booleans, strings and nulls are not values)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return 0
    if isinstance(value, (int, float)):
        return 1
    if isinstance(value, list):
        return sum(count_values(item) for item in value)
    if isinstance(value, dict):
        return sum(count_values(item) for item in value.values())
    return 0


def posted(database: Path, device: str, start_ms: int, end_ms: int) -> tuple[int, int, int]:
    """(readings, values, payload bytes) the receiver got from a device in [start, end)."""
    with read_only(database) as db:
        rows = db.execute(
            "SELECT payload FROM readings WHERE device_id = ? AND received_at_ms >= ?"
            " AND received_at_ms < ?",
            (device, start_ms, end_ms),
        ).fetchall()
    return (
        len(rows),
        sum(count_values(json.loads(row[0])) for row in rows),
        sum(len(row[0]) for row in rows),
    )


def series_times(database: Path, device: str) -> dict[str, list[int]]:
    """Stored timestamps per series: a sensor, or for collectd a sensor and its type key."""
    series: dict[str, list[int]] = defaultdict(list)
    with read_only(database) as db:
        for sensor, payload, ts_ms in db.execute(
            "SELECT sensor, payload, ts_ms FROM readings WHERE device_id = ?", (device,)
        ):
            key = sensor
            if device == COLLECTD:
                key += "/" + next(iter(json.loads(payload)))
            series[key].append(ts_ms)
    return {key: sorted(times) for key, times in series.items()}


@dataclass
class Loss:
    due_in_outage: int = 0  # reads due while the receiver was down (stored or not)
    stored_in_outage: int = 0
    lost_in_outage: int = 0  # gaps that overlap the outage (includes unsent buffers)
    lost_elsewhere: int = 0  # gaps anywhere else: the method's control, 0 expected
    series: int = 0
    where: list[str] = field(default_factory=list)


def losses(
    times: dict[str, list[int]], interval_ms: int, down_ms: int, up_ms: int, until_ms: int
) -> Loss:
    """Gaps in each series' timestamps, as readings lost; a gap of n intervals loses n - 1.

    A missing read is placed evenly inside its gap to say whether it was due during the
    outage. Only reads up to until_ms count (after that, collectd's buffer may still hold
    values that are not lost, only not sent yet).
    """
    loss = Loss(series=len(times))
    for key, stamps in times.items():
        stamps = [t for t in stamps if t <= until_ms]
        due = list(stamps)
        for before, after in zip(stamps, stamps[1:]):
            missing = max(0, round((after - before) / interval_ms) - 1)
            if not missing:
                continue
            step = (after - before) / (missing + 1)
            due += [round(before + step * k) for k in range(1, missing + 1)]
            if before < up_ms and after > down_ms:
                loss.lost_in_outage += missing
            else:
                loss.lost_elsewhere += missing
                loss.where.append(f"{key}: {missing} between {before} and {after}")
        loss.due_in_outage += sum(1 for t in due if down_ms <= t < up_ms)
        loss.stored_in_outage += sum(1 for t in stamps if down_ms <= t < up_ms)
    return loss


def seq_check(database: Path, device: str, last_seq: int) -> tuple[bool, str]:
    with read_only(database) as db:
        rows, distinct, low, high = db.execute(
            "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM readings"
            " WHERE device_id = ?",
            (device,),
        ).fetchone()
    ok = rows == distinct == last_seq and low == 1 and high == last_seq
    return ok, f"{rows} rows, seqs {low}..{high}, queue's last seq {last_seq}"


# -- the run ------------------------------------------------------------------------------


def per_hour(seconds: float, window_s: float) -> float:
    return seconds / window_s * 3600


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    collectd_bin = ensure_collectd()
    interval_ms = int(args.interval_s * 1000)
    interfaces = sorted({"lo", default_interface()})
    tokens = {name: f"{name}-token-{os.urandom(8).hex()}" for name in [*AGENTS, COLLECTD]}
    receiver = start_receiver(directory, tokens, args.receiver_workers)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    agents: dict[str, AgentProcess] = {}
    try:
        executable = install_agent(ROOT, directory / "agent-venv")
        for name in AGENTS:
            config = agent_config(
                directory, name, receiver.url, tokens[name], args.interval_s, interfaces
            )
            agents[name] = AgentProcess(
                config, log=directory / f"{name}.log", executable=executable
            )
            processes[name] = agents[name].start()
        conf = collectd_config(
            directory, receiver.url, tokens[COLLECTD], args.interval_s, interfaces
        )
        check = subprocess.run(
            [collectd_bin, "-t", "-C", str(conf)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise SystemExit(f"collectd refuses its config:\n{check.stdout}{check.stderr}")
        collectd_log = directory / "collectd.log"
        processes[COLLECTD] = subprocess.Popen(
            [collectd_bin, "-f", "-C", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=collectd_log.open("wb"),
        )
        names = [*AGENTS, COLLECTD]

        def everyone_posted() -> bool:
            now = int(time.time() * 1000)
            return all(posted(receiver.database, name, 0, now)[0] > 0 for name in names)

        wait_for(everyone_posted, args.interval_s * 6 + 60, "a first post from each", interval=0.5)
        time.sleep(args.interval_s * 2)  # past start-up: imports, first reads, first flushes

        # 1. steady state
        print(f"steady state: {args.window_s:.0f} s ...", flush=True)
        start_ms = int(time.time() * 1000)
        cpu_before = {name: cpu_seconds(processes[name].pid) for name in names}
        receiver_pids = [receiver.process.pid] if receiver.process else []
        receiver_before = sum(
            cpu_seconds(p.pid)
            for pid in receiver_pids
            for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        )
        time.sleep(args.window_s)
        cpu_after = {name: cpu_seconds(processes[name].pid) for name in names}
        receiver_after = sum(
            cpu_seconds(p.pid)
            for pid in receiver_pids
            for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        )
        end_ms = int(time.time() * 1000)
        window_s = (end_ms - start_ms) / 1000
        steady: dict[str, dict[str, Any]] = {}
        for name in names:
            readings, values, size = posted(receiver.database, name, start_ms, end_ms)
            steady[name] = {
                "cpu_s": cpu_after[name] - cpu_before[name],
                "cpu_s_per_hour": per_hour(cpu_after[name] - cpu_before[name], window_s),
                "peak_rss_mib": peak_rss_bytes(processes[name].pid) / 2**20,
                "readings_per_s": readings / window_s,
                "values_per_s": values / window_s,
                "payload_bytes_per_s": size / window_s,
            }

        # 2. outage
        print(f"outage: SIGKILL to the receiver, down for {args.outage_s:.0f} s ...", flush=True)
        cpu_outage_before = {name: cpu_seconds(processes[name].pid) for name in names}
        down_ms = int(time.time() * 1000)
        receiver.kill()
        time.sleep(args.outage_s)
        receiver.start()
        up_ms = int(time.time() * 1000)

        def drained() -> bool:
            return all(agents[name].status()["depth"] == 0 for name in AGENTS)

        wait_for(drained, args.drain_timeout_s, "the agents to drain their queues", interval=0.5)
        drained_ms = int(time.time() * 1000)
        # Let collectd post what it read after the restart, then stop reading new values.
        time.sleep(args.interval_s * 3)
        until_ms = int(time.time() * 1000) - 2 * interval_ms
        wait_for(drained, args.drain_timeout_s, "the agents to drain their queues", interval=0.5)
        cpu_outage_after = {name: cpu_seconds(processes[name].pid) for name in names}

        outage: dict[str, dict[str, Any]] = {}
        for name in names:
            loss = losses(
                series_times(receiver.database, name), interval_ms, down_ms, up_ms, until_ms
            )
            entry: dict[str, Any] = {
                "series": loss.series,
                "due_in_outage": loss.due_in_outage,
                "stored_in_outage": loss.stored_in_outage,
                "lost_in_outage": loss.lost_in_outage,
                "lost_elsewhere": loss.lost_elsewhere,
                "gaps_elsewhere": loss.where[:10],
                "cpu_s_outage_and_drain": cpu_outage_after[name] - cpu_outage_before[name],
                "peak_rss_mib_after_outage": peak_rss_bytes(processes[name].pid) / 2**20,
            }
            if name in AGENTS:
                status = agents[name].status()
                ok, detail = seq_check(receiver.database, name, int(status["counters"]["last_seq"]))
                entry.update(
                    seq_check=ok,
                    seq_detail=detail,
                    agent_dropped=status["counters"]["dropped"],
                    agent_evicted=status["counters"]["evicted"],
                )
            outage[name] = entry
        failed_posts = sum(
            "curl_easy_perform failed" in line
            for line in collectd_log.read_text(errors="replace").splitlines()
        )
        outage[COLLECTD]["failed_posts_logged"] = failed_posts
        return {
            "interval_s": args.interval_s,
            "window_s": window_s,
            "outage_s": (up_ms - down_ms) / 1000,
            "drain_s": (drained_ms - up_ms) / 1000,
            "interfaces": interfaces,
            "receiver_cpu_s_per_hour": per_hour(receiver_after - receiver_before, window_s),
            "load_before": args.load_before,
            "load_after": os.getloadavg(),
            "steady": steady,
            "outage": outage,
            "collectd_version": collectd_version(),
        }
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        receiver.stop()


def print_table(result: dict[str, Any]) -> None:
    steady, outage = result["steady"], result["outage"]
    names = [*AGENTS, COLLECTD]
    base = steady[COLLECTD]

    def row(label: str, cells: list[str]) -> None:
        print(f"| {label} | " + " | ".join(cells) + " |")

    print()
    print(
        f"interval {result['interval_s']:g} s, steady window {result['window_s']:.0f} s,"
        f" outage {result['outage_s']:.0f} s (agents drained {result['drain_s']:.0f} s after"
        f" the restart); interfaces {', '.join(result['interfaces'])};"
        f" load average before {result['load_before']}, after"
        f" {tuple(round(x, 2) for x in result['load_after'])}"
    )
    print()
    row("", [*AGENTS.values(), "collectd"])
    row("---", ["---:"] * len(names))
    row("CPU s per hour of work", [f"{steady[n]['cpu_s_per_hour']:.1f}" for n in names])
    row(
        "CPU ratio to collectd",
        [f"{steady[n]['cpu_s_per_hour'] / max(base['cpu_s_per_hour'], 1e-9):.1f}x" for n in names],
    )
    row("peak RSS (VmHWM), MiB", [f"{steady[n]['peak_rss_mib']:.1f}" for n in names])
    row(
        "RSS ratio to collectd",
        [f"{steady[n]['peak_rss_mib'] / base['peak_rss_mib']:.1f}x" for n in names],
    )
    row("readings posted per s", [f"{steady[n]['readings_per_s']:.2f}" for n in names])
    row("values posted per s", [f"{steady[n]['values_per_s']:.1f}" for n in names])
    row("payload bytes stored per s", [f"{steady[n]['payload_bytes_per_s']:.0f}" for n in names])
    row("series (sensors; collectd: sensor/type)", [str(outage[n]["series"]) for n in names])
    row("readings due during the outage", [str(outage[n]["due_in_outage"]) for n in names])
    row("of those stored", [str(outage[n]["stored_in_outage"]) for n in names])
    row("lost around the outage (gaps)", [str(outage[n]["lost_in_outage"]) for n in names])
    row("lost at other times (control)", [str(outage[n]["lost_elsewhere"]) for n in names])
    row(
        "seq check: 1..last seq stored once",
        [
            ("yes" if outage[n]["seq_check"] else "NO") + f" ({outage[n]['seq_detail']})"
            for n in AGENTS
        ]
        + ["n/a (no seq)"],
    )
    row(
        "CPU s during outage + drain",
        [f"{outage[n]['cpu_s_outage_and_drain']:.1f}" for n in names],
    )
    print()
    print(
        f"collectd logged {outage[COLLECTD]['failed_posts_logged']} failed posts;"
        f" receiver CPU in the steady window: {result['receiver_cpu_s_per_hour']:.0f} s per hour"
        f" (all four clients); {result['collectd_version']}"
    )
    for name in names:
        for gap in outage[name]["gaps_elsewhere"]:
            print(f"  {name} gap outside the outage: {gap}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window-s", type=float, default=600.0, help="steady-state window")
    parser.add_argument("--interval-s", type=float, default=10.0, help="read interval of all")
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--drain-timeout-s", type=float, default=300.0)
    parser.add_argument("--receiver-workers", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep configs, logs and databases here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    args.load_before = tuple(round(x, 2) for x in os.getloadavg())
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args, args.keep.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="collectd-compare-") as temp:
            result = run(args, Path(temp))
    print_table(result)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
