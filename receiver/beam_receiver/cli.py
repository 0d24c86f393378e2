"""The `beam-receiver` command: serve, check-config, hash-token, hash-password.

Exit status: 0 success, 78 (EX_CONFIG) for a bad receiver.toml, tokens file or
expected-node list (one line per problem: `FILE: KEY: what is wrong`), 1 when the
database or session key cannot be set up, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Optional, TextIO

from beam_receiver import __version__
from beam_receiver.config import ConfigError, ReceiverConfig, load_config

EX_OK = 0
EX_FAILURE = 1
EX_CONFIG = 78


def _read_stdin_secret(what: str, stream: TextIO) -> Optional[str]:
    """The secret from stdin without its line ending; None (after a message) when empty."""
    text = stream.read().strip("\r\n")
    if not text.strip():
        print(f"beam-receiver: no {what} on stdin", file=sys.stderr)
        return None
    return text


def hash_token_command() -> int:
    from beam_receiver.auth import hash_token

    token = _read_stdin_secret("token", sys.stdin)
    if token is None:
        return EX_FAILURE
    print(hash_token(token.strip()))  # token files are read stripped, so hash it stripped
    return EX_OK


def hash_password_command() -> int:
    from beam_receiver.auth import hash_password

    password = _read_stdin_secret("password", sys.stdin)
    if password is None:
        return EX_FAILURE
    print(hash_password(password))
    return EX_OK


def _print_problems(exc: ConfigError) -> None:
    for line in exc.lines():
        print(line, file=sys.stderr)


def check_files(config: ReceiverConfig) -> tuple[list[str], list[str]]:
    """Check the files receiver.toml points at: (summary lines, problem lines)."""
    from beam_receiver.auth import load_credentials
    from beam_receiver.inventory import load_expected_nodes

    problems = []
    summary = []
    try:
        credentials = load_credentials(config.tokens_file)
        summary.append(
            f"tokens_file {config.tokens_file}: {len(credentials.devices)} devices,"
            f" {len(credentials.operators)} operators, {len(credentials.users)} users"
        )
    except ConfigError as exc:
        problems.extend(exc.lines())
    if config.expected_nodes_file is not None:
        try:
            nodes = load_expected_nodes(config.expected_nodes_file)
            summary.append(f"expected_nodes_file {config.expected_nodes_file}: {len(nodes)} nodes")
        except ConfigError as exc:
            problems.extend(exc.lines())
    if config.database.exists():
        summary.append(f"database {config.database}: exists")
    elif not config.database.parent.is_dir():
        summary.append(f"database {config.database}: will be created (with its directory)")
    else:
        summary.append(f"database {config.database}: will be created")
    return summary, problems


def check_config_command(path: Path) -> int:
    """Validate receiver.toml and the files it names; touch nothing."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        _print_problems(exc)
        return EX_CONFIG
    summary, problems = check_files(config)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return EX_CONFIG
    print(f"{path}: OK (listen {config.listen}, {config.workers} workers)")
    for line in summary:
        print(f"  {line}")
    return EX_OK


def serve_command(path: Path) -> int:
    """Check everything, migrate the database, then run gunicorn until SIGTERM."""
    from beam_receiver.secret_key import SecretKeyError, load_or_create_secret_key
    from beam_receiver.storage import Database, SchemaTooNewError

    try:
        config = load_config(path)
    except ConfigError as exc:
        _print_problems(exc)
        return EX_CONFIG
    problems = check_files(config)[1]
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return EX_CONFIG
    try:
        Database(config.database, config.busy_timeout_ms, config.synchronous).migrate()
        load_or_create_secret_key(config.secret_key_path)
    except (sqlite3.Error, OSError, SchemaTooNewError, SecretKeyError) as exc:
        print(f"beam-receiver: cannot start: {config.database}: {exc}", file=sys.stderr)
        return EX_FAILURE
    from beam_receiver.server import remember_files, run

    remember_files(config)
    run(path, config)
    return EX_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beam-receiver",
        description="The beam-fleet receiver: ingest API, fleet status, analytics, dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"beam-receiver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the receiver under gunicorn")
    serve.add_argument("--config", required=True, type=Path, help="path to receiver.toml")
    check = commands.add_parser("check-config", help="validate receiver.toml and its files")
    check.add_argument("--config", required=True, type=Path, help="path to receiver.toml")
    commands.add_parser("hash-token", help="read a token on stdin, print sha256:<hex>")
    commands.add_parser("hash-password", help="read a password on stdin, print a hash for [users]")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve_command(args.config)
    if args.command == "check-config":
        return check_config_command(args.config)
    if args.command == "hash-token":
        return hash_token_command()
    return hash_password_command()
