"""beam-fleet deploy timing: prints figures, asserts nothing.

How much does the project's ansible.cfg buy over Ansible's defaults when an operator runs
`ansible-playbook beam.fleet.site` on the lab fleet (a receiver and three agents)?

The lab's own containers are reached with the docker connection; a real fleet is reached
over SSH, where pipelining, forks and fact handling matter. So this bench deploys the lab
inventory (inventories/lab, unchanged) over real SSH: its own four systemd containers from
the node image (beam-lab-bench-*, on a docker network beam-lab-bench; never the lab's or
Molecule's containers), started exactly as molecule/scripts/lab-up.sh starts the lab's, plus
an override inventory that points each host at its container's address over SSH as the
automation user with sudo, as inventories/example does.

Each round, for each configuration (their order alternates from round to round, so that a
change of load on the machine hits both alike):
  1. fresh containers (the previous ones removed), systemd up;
  2. untimed bootstrap: beam.fleet.access over the docker connection, which gives each
     node the automation user, its key and sudo (what an operator does once per new node
     with another login, see docs/ssh.md), with the project's ansible.cfg;
  3. timed: site.yml over SSH on the fresh nodes (access is then already in place; base,
     receiver and agent are installed from nothing: apt, venvs, wheelhouse, units);
  4. timed: site.yml over SSH again, with nothing to change (its recap must say changed=0).
Every timed run gets its own ControlPath directory, so no run inherits another's SSH
connections.

The configurations, selected only with ANSIBLE_CONFIG and ANSIBLE_STRATEGY (command line
and inventory equal):
  tuned     the project's ansible.cfg;
  defaults  a cfg holding only collections_path and roles_path (to find beam.fleet and its
            roles), written to the work directory; the inventory is given with -i to all;
  mitogen   (only with --configs ...,mitogen) the project's ansible.cfg and the opt-in
            ANSIBLE_STRATEGY=beam.fleet.mitogen_linear (Mitogen, in .venv-ansible).

Other inputs are frozen for the whole run: the beam-fleet source (pyproject.toml, agent/,
receiver/) is copied once to the work directory and the wheelhouse is built from that copy
(BEAM_FLEET_SOURCE) during the first bootstrap, so neither a concurrent edit of the tree nor
the one-off PyPI download lands in a timed run.

Needs Docker and the node image (molecule/scripts/docker-setup.sh, run first) and
.venv-ansible (molecule/scripts/ansible-venv.sh, run first). Hold the Molecule lock while
measuring: `flock /tmp/beam-fleet-molecule.lock make deploy-timing`.

Network latency (--rtt-ms N): a real fleet is Raspberry Pis on Wi-Fi or at a remote site
(10-50 ms round trips), where every SSH operation a task needs costs a round trip; the
docker bridge has sub-ms ones. --rtt-ms N puts a delaying TCP proxy on 127.0.0.1 in front
of each node's sshd (bench/latency_proxy.py: every chunk is forwarded N/2 ms after it
arrived, each way), and Ansible connects through it, so every controller <-> node round
trip gets N ms longer. In user space because this machine's kernel has no netem; only the
controller's SSH traffic is delayed (the agents reach the receiver directly). The delay is
checked before anything is timed: the time from connecting to sshd's banner, direct and
through the proxy (one way, so about N/2 more).

Run: .venv/bin/python bench/deploy_timing.py [--rounds 2] [--profile] [--keep]
     [--rtt-ms 0] [--count-ssh] [--work-dir build/deploy-timing]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from latency_proxy import DelayProxies, banner_delay_ms

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("BEAM_NODE_IMAGE", "beam-fleet/node:bookworm")
NETWORK = "beam-lab-bench"
LABEL = "beam-lab-bench=1"
# inventory host -> container
NODES = {
    "lab-receiver": "beam-lab-bench-receiver",
    "lab-agent-1": "beam-lab-bench-agent-1",
    "lab-agent-2": "beam-lab-bench-agent-2",
    "lab-agent-3": "beam-lab-bench-agent-3",
}
AUTOMATION_USER = "beam-ops"  # inventories/lab/group_vars/all/ssh.yml
CONFIGS = ("tuned", "defaults", "mitogen")
DEFAULT_CONFIGS = ("tuned", "defaults")
IPV4 = re.compile(r"[\s\[](\d{1,3}(?:\.\d{1,3}){3})(?=[\s\]:])")
SSH_PORT = re.compile(r"-o Port=(\d+)")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


@dataclass
class Run:
    """One timed ansible-playbook run."""

    config: str
    kind: str  # "fresh" or "no-change"
    seconds: float
    changed: dict[str, int]
    log: Path
    ssh_ops: dict[str, int] = field(default_factory=dict)  # --count-ssh: invocations by tool
    ssh_ops_per_host: dict[str, int] = field(default_factory=dict)  # --count-ssh: by address


@dataclass
class Bench:
    """Paths and settings of one bench invocation."""

    work: Path
    bin_dir: Path
    profile: bool
    rtt_ms: int = 0
    count_ssh: bool = False
    runs: list[Run] = field(default_factory=list)
    counter: int = 0
    # measured controller -> node round trips (ms, median over the nodes), in order
    rtts: list[tuple[str, float]] = field(default_factory=list)
    proxies: Optional[DelayProxies] = None
    # container -> (host, port) Ansible's SSH connects to: the node, or its delaying proxy
    endpoints: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def secrets(self) -> Path:
        return self.work / "secrets"

    @property
    def source(self) -> Path:
        return self.work / "source"


def say(message: str) -> None:
    print(f"[deploy-timing] {message}", file=sys.stderr, flush=True)


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def remove_containers() -> None:
    """Remove this bench's containers and network (never the lab's or Molecule's)."""
    ids = docker("ps", "--all", "--quiet", "--filter", f"label={LABEL}").split()
    if ids:
        docker("rm", "--force", *ids)
    if docker("network", "ls", "--quiet", "--filter", f"name=^{NETWORK}$"):
        docker("network", "rm", NETWORK)


def create_containers() -> dict[str, str]:
    """Fresh systemd containers as lab-up.sh starts them; returns container -> address."""
    remove_containers()
    docker("network", "create", "--label", LABEL, NETWORK)
    for container in NODES.values():
        # systemd as PID 1 without --privileged (docs/collection.md, "Containers")
        docker(
            "run", "--detach", "--name", container, "--hostname", container,
            "--label", LABEL, "--network", NETWORK,
            "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
            "--security-opt", "seccomp=unconfined", "--cgroupns=host",
            "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
            IMAGE,
        )  # fmt: skip
    for container in NODES.values():
        deadline = time.monotonic() + 90
        while True:
            state = docker("exec", container, "systemctl", "is-system-running", check=False)
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{container}: systemd did not come up ({state!r})")
            time.sleep(1)
    return {
        container: docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container
        )
        for container in NODES.values()
    }


def measure_rtt(addresses: dict[str, str], tries: int = 7) -> float:
    """Median TCP connect time to the nodes' sshd in ms: one round trip (SYN, SYN-ACK)."""
    samples = []
    for address in addresses.values():
        for _ in range(tries):
            started = time.perf_counter()
            with socket.create_connection((address, 22), timeout=10):
                samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def add_latency(bench: Bench, addresses: dict[str, str], label: str) -> None:
    """Where Ansible's SSH connects: each node directly, or with --rtt-ms through a proxy
    on 127.0.0.1 that delays each way by half the RTT; the delay is measured, not assumed."""
    before = measure_rtt(addresses)
    bench.rtts.append((f"{label}: TCP connect, direct", before))
    bench.endpoints = {container: (address, 22) for container, address in addresses.items()}
    if bench.rtt_ms == 0:
        say(f"RTT to the nodes {before:.2f} ms (no delay added)")
        return
    if bench.proxies is None:
        bench.proxies = DelayProxies(bench.rtt_ms / 2)
    direct, proxied = [], []
    for container, address in addresses.items():
        port = bench.proxies.add(address, 22)
        bench.endpoints[container] = ("127.0.0.1", port)
        direct.append(banner_delay_ms(22, address))
        proxied.append(banner_delay_ms(port))
    direct_ms = [ms for ms in direct if ms is not None]
    proxied_ms = [ms for ms in proxied if ms is not None]
    if len(direct_ms) < len(direct) or len(proxied_ms) < len(proxied):
        raise SystemExit("--rtt-ms: an sshd did not send its banner, directly or via the proxy")
    added = statistics.median(proxied_ms) - statistics.median(direct_ms)
    bench.rtts.append((f"{label}: added by the proxy (2 x the banner's one-way delay)", 2 * added))
    say(f"RTT to the nodes {before:.2f} ms direct; the proxies add {2 * added:.1f} ms")
    if 2 * added < 0.8 * bench.rtt_ms:
        raise SystemExit(f"--rtt-ms {bench.rtt_ms}: the proxies add only {2 * added:.1f} ms")


def write_inventories(bench: Bench, addresses: dict[str, str]) -> tuple[Path, Path]:
    """Override inventories (JSON is YAML) for the docker bootstrap and for SSH."""
    common = {
        "beam_fleet_secrets_dir": str(bench.secrets),
    }
    receiver_url = {"beam_receiver_url": f"https://{NODES['lab-receiver']}"}
    known_hosts = bench.work / "known_hosts"
    lines = []
    for container, address in addresses.items():
        for key in docker(
            "exec", container, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"
        ).splitlines():
            host, port = bench.endpoints.get(container, (address, 22))
            name = host if port == 22 else f"[{host}]:{port}"
            lines.append(f"{name} {' '.join(key.split()[:2])}")
    known_hosts.write_text("\n".join(lines) + "\n")
    via_docker, via_ssh = {}, {}
    for host, container in NODES.items():
        extra = receiver_url if host == "lab-receiver" else {}
        via_docker[host] = {
            **common, **extra,
            "ansible_connection": "community.docker.docker",
            "ansible_host": container,
        }  # fmt: skip
        via_ssh[host] = {
            **common, **extra,
            # the short name, as a fleet inventory without ansible_connection has it: Mitogen
            # redirects "ssh" to its own transport, not "ansible.builtin.ssh"
            "ansible_connection": "ssh",
            "ansible_host": bench.endpoints[container][0],
            "ansible_port": bench.endpoints[container][1],
            "ansible_user": AUTOMATION_USER,
            "ansible_become": True,
            "ansible_ssh_private_key_file": str(bench.secrets / "ssh/hosts" / host / "id_ed25519"),
            "ansible_ssh_common_args": (
                f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
            ),
        }  # fmt: skip
    docker_file = bench.work / "inventory-docker.yml"
    ssh_file = bench.work / "inventory-ssh.yml"
    docker_file.write_text(json.dumps({"all": {"hosts": via_docker}}, indent=1))
    ssh_file.write_text(json.dumps({"all": {"hosts": via_ssh}}, indent=1))
    return docker_file, ssh_file


def config_file(bench: Bench, config: str) -> Path:
    if config in ("tuned", "mitogen"):
        return REPO / "ansible.cfg"
    path = bench.work / "defaults.cfg"
    path.write_text(
        "# Ansible's defaults: only what finds the beam.fleet collection and its roles.\n"
        "[defaults]\n"
        f"collections_path = {REPO / 'collections'}\n"
        f"roles_path = {REPO / 'collections/ansible_collections/beam/fleet/roles'}\n"
    )
    return path


def playbook(bench: Bench, config: str, inventory: Path, play: Path, label: str) -> Run:
    """Run one playbook against the lab inventory plus an override; returns its timing."""
    bench.counter += 1
    log = bench.work / "logs" / f"{bench.counter:02d}-{label}-{config}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    control = bench.work / "cp" / f"{bench.counter:02d}"
    control.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANSIBLE_", "MOLECULE_"))
    }
    env.update(
        PATH=f"{bench.bin_dir}:{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(config_file(bench, config)),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(control),
        # where a configuration with a fact cache keeps it: the bench's own, not the lab's
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(bench.work / "facts"),
        BEAM_FLEET_SOURCE=str(bench.source),
        ANSIBLE_NOCOLOR="1",
    )
    if config == "mitogen":
        # the project's ansible.cfg with the opt-in Mitogen strategy: one persistent Python
        # per node over the SSH connection instead of a new interpreter (and an SSH command)
        # per task (collections/.../plugins/strategy/mitogen_linear.py)
        env["ANSIBLE_STRATEGY"] = "beam.fleet.mitogen_linear"
    count = bench.work / "ssh-count" / f"{bench.counter:02d}"
    if bench.count_ssh:
        count.parent.mkdir(parents=True, exist_ok=True)
        count.write_text("")
        env["PATH"] = f"{ssh_wrappers(bench)}:{env['PATH']}"
        env["BEAM_SSH_COUNT"] = str(count)
    if bench.profile:
        env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "25"
    args = [
        str(bench.bin_dir / "ansible-playbook"),
        "-i", str(REPO / "inventories/lab"), "-i", str(inventory),
        str(play),
    ]  # fmt: skip
    if label in ("fresh", "facts"):
        # new nodes: nothing known about them yet; and with gathering = smart, a cache the
        # run before left (other containers under the same names) would make the facts play
        # gather nothing (an empty recap) and leave stale addresses in the cache
        args.append("--flush-cache")
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    text = log.read_text()
    changed = {m[1]: int(m[3]) for m in map(RECAP.match, text.splitlines()) if m}
    if result.returncode != 0 or set(changed) != set(NODES):
        tail = "\n".join(text.splitlines()[-40:])
        raise SystemExit(
            f"{label} with {config} failed (rc {result.returncode}), log {log}:\n{tail}"
        )
    ops: dict[str, int] = {}
    per_host: dict[str, int] = {}
    if bench.count_ssh:
        for record in count.read_text().split("\n@@")[1:]:  # one per call: tool, then argv
            tool = record.split(" ", 1)[0]
            ops[tool] = ops.get(tool, 0) + 1
            address = IPV4.search(record)
            if address:
                # through the --rtt-ms proxies every node is 127.0.0.1: its port tells them apart
                port = SSH_PORT.search(record)
                node = f"{address[1]}:{port[1]}" if port else address[1]
                per_host[node] = per_host.get(node, 0) + 1
    say(
        f"{label:9} {config:8} {seconds:6.1f} s  changed={sum(changed.values())}  ({log.name})"
        + (f"  ssh operations {ops}" if bench.count_ssh else "")
    )
    return Run(config, label, seconds, changed, log, ops, per_host)


def ssh_wrappers(bench: Bench) -> Path:
    """ssh, sftp and scp first in PATH: each call appends its name to $BEAM_SSH_COUNT.

    Ansible runs one such process per SSH operation (ControlMaster multiplexes them onto one
    connection), so the count is the number of operations, each at least one round trip.
    """
    wrappers = bench.work / "ssh-wrappers"
    wrappers.mkdir(parents=True, exist_ok=True)
    for tool in ("ssh", "sftp", "scp"):
        real = shutil.which(tool)
        if real is None:
            raise SystemExit(f"--count-ssh: no {tool} in PATH")
        wrapper = wrappers / tool
        wrapper.write_text(
            f'#!/bin/sh\nprintf \'\\n@@%s %s\' {tool} "$*" >>"$BEAM_SSH_COUNT"\nexec {real} "$@"\n'
        )
        wrapper.chmod(0o755)
    return wrappers


def snapshot_source(bench: Bench) -> None:
    """Freeze the beam-fleet source the wheelhouse is built from, for the whole run."""
    for name in ("agent", "receiver"):  # dist/ stays: its wheelhouses are keyed by content
        shutil.rmtree(bench.source / name, ignore_errors=True)
    bench.source.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("agent", "receiver"):
        shutil.copytree(REPO / name, bench.source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, bench.source / name)


WHEELHOUSE_PLAY = """---
- name: Build the wheelhouse once, before anything is timed
  hosts: beam_fleet
  gather_facts: true
  tasks:
    - name: The wheelhouse role (controller side)
      ansible.builtin.include_role:
        name: beam.fleet.wheelhouse
"""


def round_for(bench: Bench, config: str, first: bool) -> None:
    say(f"fresh containers for {config}")
    addresses = create_containers()
    add_latency(bench, addresses, f"containers for {config}")
    via_docker, via_ssh = write_inventories(bench, addresses)
    playbook(bench, "tuned", via_docker, "beam.fleet.access", "bootstrap")
    if first:
        play = bench.work / "wheelhouse.yml"
        play.write_text(WHEELHOUSE_PLAY)
        playbook(bench, "tuned", via_docker, play, "wheelhouse")
    site = "beam.fleet.site"
    bench.runs.append(playbook(bench, config, via_ssh, site, "fresh"))
    run = playbook(bench, config, via_ssh, site, "no-change")
    warn_if_changed(run)
    bench.runs.append(run)


def warn_if_changed(run: Run) -> None:
    if any(run.changed.values()):
        say(f"WARNING: the no-change run with {run.config} changed {run.changed} ({run.log})")


def existing_addresses() -> dict[str, str]:
    """Addresses of containers a previous run left (--keep), for --no-change-only."""
    addresses = {}
    for container in NODES.values():
        address = docker(
            "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container,
            check=False,
        )  # fmt: skip
        if not address:
            raise SystemExit(f"--no-change-only needs the deployed {container} (run with --keep)")
        addresses[container] = address
    return addresses


def load(average: tuple[float, float, float]) -> str:
    return f"load average {average[0]:.2f} / {average[1]:.2f} / {average[2]:.2f} (1/5/15 min)"


def report(bench: Bench, load_before: tuple[float, float, float]) -> None:
    """Per configuration: mean seconds, defaults/tuned, RTT, load, and the changed=0 check."""

    def mean(config: str, kind: str) -> float | None:
        values = [r.seconds for r in bench.runs if (r.config, r.kind) == (config, kind)]
        return statistics.mean(values) if values else None

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    configs = [c for c in CONFIGS if any(r.config == c for r in bench.runs)]
    others = [c for c in configs if c != "defaults"] if "defaults" in configs else []
    rounds = sum(r.kind == "no-change" for r in bench.runs) // max(len(configs), 1)
    print(
        f"\nsite.yml on the lab fleet (1 receiver + 3 agents) over SSH, {rounds} round(s), "
        f"added RTT {bench.rtt_ms} ms"
    )
    for label, rtt in bench.rtts:
        print(f"  measured RTT ({label}): {rtt:.2f} ms")
    print(f"  start: {load(load_before)}")
    print(f"  end:   {load(os.getloadavg())}")
    print(f"\n{'run':<12}" + "".join(f"{c + ' s':>12}" for c in configs), end="")
    print("".join(f"{'defaults/' + c:>18}" for c in others))
    for kind in ("fresh", "no-change"):
        if not any(r.kind == kind for r in bench.runs):
            continue
        means = [mean(c, kind) for c in configs]
        line = f"{kind:<12}" + "".join(f"{cell(m):>12}" for m in means)
        base = mean("defaults", kind)
        for other in others:
            value = mean(other, kind)
            line += f"{base / value:>17.2f}x" if base and value else f"{'-':>18}"
        print(line)
    for config in configs:
        runs = [r for r in bench.runs if (r.config, r.kind) == (config, "no-change")]
        clean = all(not any(r.changed.values()) for r in runs)
        print(
            f"no-change recap with {config}: "
            + ("changed=0 on every node in every run" if clean else "SOME CHANGES (see WARNING)")
        )
    print("\nevery run:")
    for r in bench.runs:
        busiest = max(r.ssh_ops_per_host.values(), default=0)
        ops = (
            f"  ssh operations {sum(r.ssh_ops.values())} {r.ssh_ops}, busiest node {busiest}"
            if bench.count_ssh
            else ""
        )
        print(
            f"  {r.kind:<10}{r.config:<10}{r.seconds:7.1f} s  changed={sum(r.changed.values())}"
            + ops
        )
    if bench.count_ssh:
        print("  (--count-ssh: every ssh/sftp/scp call went through a counting shell wrapper)")
        if any(r.config == "mitogen" for r in bench.runs):
            print("  (mitogen: its tasks go as messages over one ssh process per node, so its"
                  " counts are not SSH operations)")  # fmt: skip
    print(f"\nlogs: {bench.work / 'logs'}; defaults cfg: {bench.work / 'defaults.cfg'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds (each times both configs)")
    parser.add_argument("--profile", action="store_true", help="profile_tasks in every log")
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help="which to time, of tuned, defaults and mitogen (default: tuned,defaults)",
    )
    parser.add_argument(
        "--no-change-only",
        action="store_true",
        help="time only no-change runs, on the containers a --keep run left deployed",
    )
    parser.add_argument("--keep", action="store_true", help="leave the last containers running")
    parser.add_argument(
        "--count-ssh",
        action="store_true",
        help="count the SSH operations (ssh/sftp/scp processes) of every run",
    )
    parser.add_argument(
        "--rtt-ms",
        type=int,
        default=0,
        help="add this round-trip latency to every node (a delaying proxy before its sshd)",
    )
    parser.add_argument("--work-dir", type=Path, default=REPO / "build" / "deploy-timing")
    options = parser.parse_args()
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 0 <= options.rtt_ms <= 1000:
        parser.error("--rtt-ms must be between 0 and 1000")
    configs = tuple(name.strip() for name in options.configs.split(","))
    if not configs or any(name not in CONFIGS for name in configs):
        parser.error(f"--configs: a comma-separated choice of {', '.join(CONFIGS)}")
    bin_dir = REPO / ".venv-ansible" / "bin"
    if not (bin_dir / "ansible-playbook").exists():
        raise SystemExit(f"no {bin_dir}/ansible-playbook: run molecule/scripts/ansible-venv.sh")
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        raise SystemExit("Docker does not answer: run molecule/scripts/docker-setup.sh")
    work = options.work_dir.resolve()
    # --no-change-only goes on with the deployed containers' secrets and source copy
    stale = ("logs", "cp") if options.no_change_only else ("secrets", "logs", "cp", "facts")
    for name in stale:
        shutil.rmtree(work / name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(
        work=work,
        bin_dir=bin_dir,
        profile=options.profile,
        rtt_ms=options.rtt_ms,
        count_ssh=options.count_ssh,
    )
    if not options.no_change_only:
        snapshot_source(bench)
    load_before = os.getloadavg()
    say(f"load before: {load(load_before)}, {os.cpu_count()} CPUs")
    if options.no_change_only:
        addresses = existing_addresses()
        add_latency(bench, addresses, "kept containers")
        _, via_ssh = write_inventories(bench, addresses)
        # what a deploy leaves for the next run: the tuned cfg's fact cache, filled
        play = bench.work / "facts.yml"
        play.write_text("- name: Facts\n  hosts: beam_fleet\n  gather_facts: true\n")
        playbook(bench, "tuned", via_ssh, play, "facts")
        for number in range(options.rounds):
            for config in configs if number % 2 == 0 else configs[::-1]:
                site = "beam.fleet.site"
                run = playbook(bench, config, via_ssh, site, "no-change")
                warn_if_changed(run)
                bench.runs.append(run)
        report(bench, load_before)
        return
    try:
        for number in range(options.rounds):
            order = configs if number % 2 == 0 else configs[::-1]
            for config in order:
                round_for(bench, config, first=not bench.runs)
    finally:
        if not options.keep:
            remove_containers()
    report(bench, load_before)


if __name__ == "__main__":
    main()
