"""Command sensor: run a program and turn the JSON it prints into samples.

The escape hatch for anything without a driver: a vendor tool, a shell-free script.
The command is a list of arguments run without a shell, so nothing in the config is
ever interpreted by one. Its stdout is one JSON object (one sample) or JSON lines (one
object per line, one sample each). Any other outcome is a DriverError that says what
happened, with the end of stderr, because that is where such programs explain themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from beam_agent.drivers.base import Driver, DriverError, Option, OptionError
from beam_agent.reading import Sample, finite

EXCERPT_CHARS = 200
"""How much of stderr or of a bad line goes into an error message."""

KILL_GRACE_S = 5.0
"""After killing a timed-out command, how long to wait for its pipes to close."""


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The last `limit` characters on one line: the end of stderr is where the error is."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else "..." + flat[-limit:]


def _finite_float(text: str) -> Optional[float]:
    return finite(float(text))  # 1e999 parses to infinity, which JSON cannot carry


def _no_constant(name: str) -> None:
    return None  # NaN, Infinity, -Infinity: not JSON; a payload reports them as null


def parse_json(text: str) -> Any:
    """json.loads, but non-finite numbers become None, as every payload requires."""
    return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)


def parse_output(stdout: str) -> list[dict[str, Any]]:
    """One JSON object, or JSON lines of objects, into payloads; ValueError says what is wrong."""
    text = stdout.strip()
    if not text:
        raise ValueError("printed nothing on stdout")
    try:
        whole = parse_json(text)
    except ValueError:
        if "\n" not in text:  # not JSON lines either: a single line of bad JSON
            raise ValueError(f"printed invalid JSON: {excerpt(text)!r}") from None
        return [
            _parse_line(number, line)
            for number, line in enumerate(stdout.splitlines(), 1)
            if line.strip()
        ]
    if not isinstance(whole, dict):
        raise ValueError(f"printed JSON {_json_kind(whole)}, not an object: {excerpt(text)!r}")
    return [whole]


def _parse_line(number: int, line: str) -> dict[str, Any]:
    try:
        value = parse_json(line)
    except ValueError:
        raise ValueError(f"printed invalid JSON on line {number}: {excerpt(line)!r}") from None
    if not isinstance(value, dict):
        raise ValueError(
            f"printed JSON {_json_kind(value)} on line {number}, not an object: {excerpt(line)!r}"
        )
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _stderr_note(stderr: str) -> str:
    return f"; stderr: {excerpt(stderr)}" if stderr.strip() else ""


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


class CommandDriver(Driver):
    type_name = "command"
    description = "Runs a command (no shell) and reads a JSON object or JSON lines from stdout."
    options = (
        Option(
            "command",
            list,
            help='program and arguments, e.g. ["/usr/local/bin/probe", "--json"]; '
            "run without a shell",
        ),
        Option(
            "timeout_s",
            float,
            10.0,
            minimum=0.001,
            maximum=3600.0,
            help="kill the command (and its process group) after this many seconds",
        ),
    )

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(self.validate_options(options))
        self.command: list[str] = list(self.config["command"])
        self.timeout_s: float = self.config["timeout_s"]

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        validated = super().validate_options(raw)
        command: Sequence[Any] = validated["command"]
        if not command:
            raise OptionError("command", "must name a program to run, got an empty list")
        for index, part in enumerate(command):
            if not isinstance(part, str):
                raise OptionError("command", f"item {index} must be a string, got {part!r}")
        if not command[0]:
            raise OptionError("command", "the program name (item 0) is empty")
        return validated

    def read(self) -> list[Sample]:
        stdout, stderr = self._run()
        try:
            payloads = parse_output(stdout)
        except ValueError as exc:
            raise DriverError(f"command {self.command[0]!r} {exc}{_stderr_note(stderr)}") from None
        return [self.sample(payload) for payload in payloads]

    def _run(self) -> tuple[str, str]:
        """Run the command; return stdout and stderr, or raise DriverError saying why not."""
        program = self.command[0]
        try:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so a timeout kills it all
            )
        except FileNotFoundError:
            raise DriverError(f"command {program!r} not found") from None
        except OSError as exc:
            raise DriverError(f"command {program!r} could not be started: {exc}") from None
        try:
            out, err = process.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            said = self._kill(process)
            raise DriverError(
                f"command {program!r} timed out after {self.timeout_s:g} s and was killed"
                f"{_stderr_note(said)}"
            ) from None
        stderr = err.decode("utf-8", "replace")
        if process.returncode != 0:
            raise DriverError(
                f"command {program!r} {describe_exit(process.returncode)}{_stderr_note(stderr)}"
            )
        try:
            return out.decode("utf-8"), stderr
        except UnicodeDecodeError as exc:
            raise DriverError(
                f"command {program!r} printed output that is not UTF-8: {exc}"
            ) from None

    def _kill(self, process: subprocess.Popen[bytes]) -> str:
        """Kill the command's process group and collect what it wrote to stderr."""
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(process.pid, signal.SIGKILL)
        try:
            _, err = process.communicate(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:  # a descendant left the group and holds the pipe
            process.kill()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
            process.wait()
            return ""
        return err.decode("utf-8", "replace")
