"""The project's programs as real processes: `beam-agent` and `beam-receiver` as installed
(the console script beside this interpreter), short-lived or running in the background."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable, Optional


def program(name: str) -> list[str]:
    """The command line of console script `name` (beam-agent, beam-receiver): the script
    installed beside this interpreter, else the interpreter running the package (`-m`)."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", name.replace("-", "_")]


def file_size_limit(limit_bytes: int) -> list[str]:
    """A command prefix: the program runs with RLIMIT_FSIZE's soft limit at limit_bytes, so
    that writing any file past that size fails (EFBIG), as on a full disk. Python ignores
    SIGXFSZ, so the write fails instead of killing the process. The hard limit is kept, so
    resource.prlimit can lift the soft one later without privileges."""
    code = (
        "import os, resource, sys;"
        " hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1];"
        " resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), hard));"
        " os.execvp(sys.argv[2], sys.argv[2:])"
    )
    return [sys.executable, "-c", code, str(limit_bytes)]


def child_pids(pid: int) -> list[int]:
    """The process's children (gunicorn's workers of a master), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def child_environment(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """This process's environment for a child, unbuffered, plus `extra`. Without the
    caller's PROMETHEUS_MULTIPROC_DIR: `beam-receiver serve` makes a fresh one of its own."""
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    return {**env, "PYTHONUNBUFFERED": "1", **(extra or {})}


Command = Callable[..., "subprocess.CompletedProcess[str]"]  # run_program with its name bound


def run_program(
    name: str, *args: str, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """A short-lived subcommand (check-config, status, hash-token ...), output captured."""
    return subprocess.run(
        [*program(name), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_environment(),
    )


class ChildProcess:
    """A long-running program in its own process group (as systemd runs a unit's cgroup), so
    that `kill` takes it and its children at once, like a crash. Its output (stdout and
    stderr) is appended to `log`; with no log it goes where this process's goes."""

    def __init__(self, log: Optional[Path], env: Optional[Mapping[str, str]] = None) -> None:
        self.log = log
        self.env = dict(env or {})
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        assert not self.running, "already running"
        output = self.log.open("ab") if self.log is not None else None
        try:
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                env=child_environment(self.env),
                start_new_session=True,
            )
        finally:
            if output is not None:
                output.close()
        return self.process

    def signal(self, signum: int) -> None:
        assert self.process is not None, "never started"
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL to the whole process group: no graceful shutdown, nothing flushed."""
        assert self.process is not None and self.running, "not running (it had exited)"
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self, timeout: float = 30) -> Optional[int]:
        """SIGTERM and wait; SIGKILL to the group if it does not exit in time. The exit
        status (None if it never started)."""
        if self.process is None:
            return None
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):  # it exited just now
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        return self.process.returncode

    def log_tail(self, size: int = 5000) -> str:
        if self.log is None:
            return "(its output went to the console)"
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"
