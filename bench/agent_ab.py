"""Two versions of beam-agent side by side, with collectd, in one run: prints figures.

Why one run: on a shared machine the load changes from minute to minute, and the agent's CPU
is about a millisecond a second, so figures from two runs do not compare. Here the agent from
`--before` and from `--after` (two source trees, e.g. `git worktree add /tmp/before main`) run
at once against one real receiver, each in collectd_compare.py's fair configuration (one
`system` sensor reading what collectd reads: `fair_sensor`) and again with `[push]
interval_ms` at the read interval, beside collectd reading the same. Each tree's agent runs
from its own wheel in a venv of its own, as on a node.

Run: .venv/bin/python bench/agent_ab.py --before /tmp/before --after . [--window-s 600]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import collectd_compare as cc

from tests.support.agent import AgentProcess, write_agent_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree of 'before'")
    parser.add_argument("--after", type=Path, default=ROOT, help="source tree of 'after'")
    parser.add_argument("--window-s", type=float, default=600.0)
    parser.add_argument("--interval-s", type=float, default=10.0)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="agent-ab-"))
    collectd = cc.ensure_collectd()
    interfaces = sorted({"lo", cc.default_interface()})
    agents = [f"{tree}-{kind}" for kind in ("fair", "push") for tree in ("before", "after")]
    names = [*agents, cc.COLLECTD]
    tokens = {name: f"{name}-token-{os.urandom(8).hex()}" for name in names}
    receiver = cc.start_receiver(directory, tokens, 1)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        executables = {
            tree: cc.install_agent(path.resolve(), directory / f"{tree}-venv")
            for tree, path in (("before", args.before), ("after", args.after))
        }
        for name in agents:
            sensor = cc.fair_sensor(args.interval_s, interfaces)
            push = {"interval_ms": int(args.interval_s * 1000)} if name.endswith("push") else {}
            config = write_agent_config(
                directory,
                receiver.url,
                [sensor],
                name=f"{name}.toml",
                device_id=name,
                token=tokens[name],
                **({"push": push} if push else {}),
            )
            agent = AgentProcess(
                config, log=directory / f"{name}.log", executable=executables[name.split("-")[0]]
            )
            processes[name] = agent.start()
        conf = cc.collectd_config(
            directory, receiver.url, tokens[cc.COLLECTD], args.interval_s, interfaces
        )
        processes[cc.COLLECTD] = subprocess.Popen(
            [collectd, "-f", "-C", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=(directory / "collectd.log").open("wb"),
        )
        time.sleep(args.interval_s * 4)  # past start-up: imports, first reads, first pushes
        print(f"window {args.window_s:.0f} s, load before {os.getloadavg()} ...", flush=True)
        start_ms = int(time.time() * 1000)
        before = {name: cc.cpu_seconds(p.pid) for name, p in processes.items()}
        started = time.monotonic()
        time.sleep(args.window_s)
        window = time.monotonic() - started
        after = {name: cc.cpu_seconds(p.pid) for name, p in processes.items()}
        end_ms = int(time.time() * 1000)
        collectd_cpu = cc.per_hour(after[cc.COLLECTD] - before[cc.COLLECTD], window)
        print(f"load after {os.getloadavg()}")
        print("| | CPU s per hour | ratio to collectd | peak RSS MiB | readings stored |")
        print("|---|---:|---:|---:|---:|")
        for name in names:
            cpu = cc.per_hour(after[name] - before[name], window)
            rss = cc.peak_rss_bytes(processes[name].pid) / 2**20
            stored = cc.posted(receiver.database, name, start_ms, end_ms)[0]
            ratio = f"{cpu / collectd_cpu:.1f}x" if collectd_cpu else "n/a"  # a short window
            print(f"| {name} | {cpu:.2f} | {ratio} | {rss:.1f} | {stored} |")
    finally:
        for process in processes.values():
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
