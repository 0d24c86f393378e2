"""The `beam-agent` command: argument parsing, one function per subcommand, exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, TextIO

from beam_agent import __version__
from beam_agent.config import ConfigError, load_config
from beam_agent.drivers import DriverLoadError, available_drivers, load_driver
from beam_agent.reading import Reading, parse_timestamp

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_CONFIG = 78  # sysexits.h EX_CONFIG, as the contract requires


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EX_CONFIG
    except BrokenPipeError:  # `beam-agent export | head` is fine
        return EX_OK


def terminal_columns() -> int:
    """shutil.get_terminal_size's answer (COLUMNS, else the terminal's width, else 80) without
    shutil: argparse imports it for every parser it builds, and with it bz2 and lzma, about
    0.4 MiB that `beam-agent run` would carry for as long as it runs."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
        return 80


class HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=terminal_columns() - 2)  # argparse's own margin


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beam-agent", description="beam fleet sensor agent", formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"beam-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Any, help_text: str, config: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        if config:
            sub.add_argument("--config", required=True, type=Path, help="path to config.toml")
        sub.set_defaults(handler=handler)
        return sub

    run = command("run", cmd_run, "run until SIGTERM or SIGINT")
    run.add_argument("--log-level", default="INFO")
    command(
        "check-config",
        cmd_check_config,
        "validate the config and drivers' options; touches no hardware",
    )
    read_once = command(
        "read-once",
        cmd_read_once,
        "read each sensor once and print one reading per line; queues nothing",
    )
    read_once.add_argument("--sensor", help="read only this sensor")
    status = command("status", cmd_status, "show the queue, push and sensor state")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    dead = command(
        "dead-letters",
        cmd_dead_letters,
        "list the parked readings: seq ranges, count, status, reason and when",
    )
    dead.add_argument("--json", action="store_true", help="machine-readable output")
    resend = command(
        "resend",
        cmd_resend,
        "queue the dead letters again with their original seqs (works while the agent runs)",
    )
    resend.add_argument(
        "--status", type=int, help="only those parked after this HTTP status (e.g. 404)"
    )
    export = command("export", cmd_export, "write stored readings to stdout")
    export.add_argument("--format", choices=("csv", "jsonl"), required=True)
    export.add_argument("--since", type=parse_since, help="RFC 3339 timestamp")
    export.add_argument("--sensor", help="only this sensor")
    command(
        "drivers", cmd_drivers, "list the available driver types and their options", config=False
    )
    return parser


def parse_since(text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 timestamp: {text!r}") from exc


def cmd_run(args: argparse.Namespace) -> int:
    stop_event = threading.Event()
    # Catch a stop at once: a SIGTERM while requests and psutil still import counts too.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop_event.set())

    from beam_agent.logs import configure_logging
    from beam_agent.runner import run_agent

    config = load_config(args.config)
    configure_logging(args.log_level)
    for warning in config.warnings:  # taken, but not as written: say what to write
        logging.getLogger("beam_agent.config").warning("%s", warning.line(config.path))
    return run_agent(config, stop_event)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_files=True)
    for warning in config.warnings:
        print(warning.line(config.path), file=sys.stderr)
    verified = f"; receiver verified against {config.ca_file}" if config.ca_file else ""
    print(
        f"{config.path}: ok ({len(config.sensors)} sensors: "
        f"{', '.join(s.name for s in config.sensors) or 'none'}{verified})"
    )
    return EX_OK


def cmd_read_once(args: argparse.Namespace) -> int:
    from beam_agent.scheduler import read_once

    config = load_config(args.config)
    sensors = config.sensors
    if args.sensor is not None:
        try:
            sensors = (config.sensor(args.sensor),)
        except KeyError:
            names = ", ".join(s.name for s in config.sensors) or "none"
            print(
                f"no sensor named {args.sensor!r} in {config.path} (have: {names})", file=sys.stderr
            )
            return EX_USAGE
    failed = 0
    for sensor in sensors:
        try:
            readings = read_once(sensor, config.device_id)
        except Exception as exc:
            failed += 1
            print(f"sensor {sensor.name!r} ({sensor.sensor_type}): {exc}", file=sys.stderr)
            continue
        for reading in readings:
            print(reading.to_json())
        sys.stdout.flush()
    return EX_FAILURE if failed else EX_OK


def cmd_status(args: argparse.Namespace) -> int:
    from beam_agent.queue import QueueError, ReadingQueue

    config = load_config(args.config)
    try:
        status = ReadingQueue.read_status(config.state_dir)
    except (FileNotFoundError, QueueError) as exc:
        print(f"no agent state in {config.state_dir}: {exc}", file=sys.stderr)
        return EX_FAILURE
    status["device_id"] = config.device_id
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True, default=str))
    else:
        print_status(status, sys.stdout)
    return EX_OK


def print_status(status: dict[str, Any], out: TextIO) -> None:
    counters = status.get("counters", {})
    last_push = status.get("last_push") or {}
    lines = [
        f"device:            {status.get('device_id')}",
        f"queue depth:       {status.get('depth')}",
        f"oldest queued age: {format_age(status.get('oldest_queued_age_s'))}",
        f"pushed:            {counters.get('pushed', 0)}",
        f"dropped:           {counters.get('dropped', 0)}",
        f"duplicates acked:  {counters.get('duplicates_acknowledged', 0)}",
        f"dead-lettered:     {counters.get('dead_lettered', 0)}",
        f"dead letters:      {status.get('dead_letters', 0)} parked now"
        + (" (beam-agent dead-letters lists them)" if status.get("dead_letters") else ""),
        f"last push:         {last_push.get('detail', 'never')} at {last_push.get('at', '-')}",
        *([f"push failing:      {last_push['failure']}"] if last_push.get("failure") else []),
        *(
            [f"config error:      {problem['message']} (at {problem['at']})"]
            if (problem := status.get("config_error"))
            else []
        ),
        "sensors:",
    ]
    for name, stats in sorted((status.get("sensors") or {}).items()):
        lines.append(
            f"  {name}: last read {stats.get('last_read') or 'never'}, "
            f"{stats.get('readings', 0)} readings, {stats.get('errors', 0)} errors"
            + (f" (last: {stats['last_error']})" if stats.get("last_error") else "")
        )
    out.write("\n".join(lines) + "\n")


def format_age(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from beam_agent.queue import QueueError, ReadingQueue

    config = load_config(args.config)
    try:
        groups = ReadingQueue.read_dead_letters(config.state_dir)
    except (FileNotFoundError, QueueError) as exc:
        print(f"no agent state in {config.state_dir}: {exc}", file=sys.stderr)
        return EX_FAILURE
    if args.json:
        print(json.dumps(groups, indent=2))
        return EX_OK
    total = sum(group["count"] for group in groups)
    print(f"{total} dead letters" + (f" in {len(groups)} ranges:" if groups else ""))
    for group in groups:
        seqs = f"{group['first_seq']}-{group['last_seq']}"
        when = group["first_at"]
        if group["last_at"] != when:
            when += f" to {group['last_at']}"
        status = group["status"] if group["status"] is not None else "-"
        print(f"  seq {seqs} ({group['count']}): status {status}, parked {when}: {group['reason']}")
    if groups:
        print("beam-agent resend [--status CODE] queues them again (the receiver stores each once)")
    return EX_OK


def cmd_resend(args: argparse.Namespace) -> int:
    from beam_agent.queue import QueueError, ReadingQueue, database_path

    config = load_config(args.config)
    if not database_path(config.state_dir).is_file():  # never make a queue here
        print(
            f"no agent state in {config.state_dir}: no {database_path(config.state_dir)}",
            file=sys.stderr,
        )
        return EX_FAILURE
    try:
        with ReadingQueue(
            config.state_dir, config.queue.max_readings, config.queue.overflow
        ) as queue:
            seqs, left = queue.resend(args.status)
    except QueueError as exc:
        print(f"no agent state in {config.state_dir}: {exc}", file=sys.stderr)
        return EX_FAILURE
    ranges = ", ".join(seq_ranges(seqs)) or "none"
    print(f"requeued {len(seqs)} dead letters (seq {ranges}); the agent sends them next")
    if left:
        print(
            f"{left} stay parked: the queue has no room beside its undelivered readings "
            "([queue] max_readings); run resend again once it has drained"
        )
    return EX_OK


def seq_ranges(seqs: Sequence[int]) -> list[str]:
    """Sorted seqs as runs: [1, 2, 3, 7] -> ["1-3", "7"]."""
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return [f"{a}-{b}" if a != b else str(a) for a, b in runs]


def cmd_export(args: argparse.Namespace) -> int:
    from beam_agent.queue import QueueError, ReadingQueue

    config = load_config(args.config)

    def readings() -> Iterable[Reading]:
        return ReadingQueue.read_export(config.state_dir, since=args.since, sensor=args.sensor)

    try:
        readings()  # opens and checks the file before anything is written to stdout
    except (FileNotFoundError, QueueError) as exc:
        print(f"no agent state in {config.state_dir}: {exc}", file=sys.stderr)
        return EX_FAILURE
    if args.format == "jsonl":
        for reading in readings():
            sys.stdout.write(reading.to_json() + "\n")
    else:
        write_csv(readings, sys.stdout)
    return EX_OK


def write_csv(readings: Any, out: TextIO) -> None:
    """One column per payload field, so the file loads straight into a data frame.

    The payload fields are only known after a first pass over the readings; the store is
    read twice rather than held in memory. csv is imported here, not by `beam-agent run`.
    """
    import csv

    fields: dict[str, None] = {}
    for reading in readings():
        for key in reading.payload:
            fields.setdefault(key, None)
    base = ["seq", "timestamp", "device_id", "sensor", "sensor_type"]
    writer = csv.writer(out)
    writer.writerow(base + list(fields))
    for reading in readings():
        row = reading.to_dict()
        payload = reading.payload
        writer.writerow(
            [row[column] for column in base] + [csv_value(payload.get(key)) for key in fields]
        )


def csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


def cmd_drivers(args: argparse.Namespace) -> int:
    failed = 0
    for name, reference in sorted(available_drivers().items()):
        try:
            driver_class = load_driver(reference)
        except DriverLoadError as exc:
            failed += 1
            print(f"{name}: cannot load ({exc})")
            continue
        kind = "streaming" if driver_class.streaming else "polled"
        print(f"{name} ({kind}, {reference}): {driver_class.description}")
        for option in driver_class.options:
            print(f"    {option.describe()}")
    return EX_FAILURE if failed else EX_OK


if __name__ == "__main__":
    sys.exit(main())
