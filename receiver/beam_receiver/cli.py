"""The `beam-receiver` command: serve, check-config, prune, migrate-to-postgres, hash-token,
hash-password.

Exit status: 0 success, 78 (EX_CONFIG) for a bad receiver.toml, tokens file or
expected-node list (one line per problem: `FILE: KEY: what is wrong`), 1 when the
database or session key cannot be set up, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, TextIO

from beam_receiver import __version__
from beam_receiver.config import ConfigError, PostgresUrl, ReceiverConfig, load_config

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
    if isinstance(config.database, PostgresUrl):
        summary.append(f"database {config.database}: PostgreSQL (not contacted by checks)")
        if config.database_password_file is not None:
            from beam_receiver.backend import read_password_file

            try:
                read_password_file(config.database_password_file, config.path or Path())
                summary.append(f"database_password_file {config.database_password_file}: OK")
            except ConfigError as exc:
                problems.extend(exc.lines())
    elif config.database.exists():
        summary.append(f"database {config.database}: exists")
    elif not config.database.parent.is_dir():
        summary.append(f"database {config.database}: will be created (with its directory)")
    else:
        summary.append(f"database {config.database}: will be created")
    return summary, problems


def _checked_config(path: Path) -> Optional[ReceiverConfig]:
    """receiver.toml and its files checked, problems printed; None when there were any."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        _print_problems(exc)
        return None
    problems = check_files(config)[1]
    for line in problems:
        print(line, file=sys.stderr)
    return None if problems else config


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

    config = _checked_config(path)
    if config is None:
        return EX_CONFIG
    if not _migrated(config):
        return EX_FAILURE
    try:
        load_or_create_secret_key(config.secret_key_path)
    except (OSError, SecretKeyError) as exc:
        print(f"beam-receiver: cannot start: {config.secret_key_path}: {exc}", file=sys.stderr)
        return EX_FAILURE
    from beam_receiver.server import remember_files, run

    remember_files(config)
    run(path, config)
    return EX_OK


def _migrated(config: ReceiverConfig) -> bool:
    """Create or upgrade the configured database's schema (then close it); False, after a
    message, when the database cannot be set up."""
    from beam_receiver.backend import open_storage
    from beam_receiver.storage import SchemaTooNewError

    try:
        storage = open_storage(config)
    except ConfigError as exc:
        _print_problems(exc)
        return False
    failures: tuple[type[Exception], ...] = (*storage.errors, OSError, SchemaTooNewError)
    try:
        storage.migrate()
        return True
    except failures as exc:
        print(f"beam-receiver: cannot start: {storage.describe()}: {exc}", file=sys.stderr)
        return False
    finally:
        storage.close()


def prune_command(path: Path) -> int:
    """One retention pass now, with receiver.toml's retention settings (see retention.py)."""
    from beam_receiver.backend import open_storage
    from beam_receiver.retention import Cutoffs, prune
    from beam_receiver.timestamps import now_ms

    config = _checked_config(path)
    if config is None:
        return EX_CONFIG
    if not _migrated(config):
        return EX_FAILURE
    storage = open_storage(config)
    try:
        result = prune(storage, Cutoffs.of(config, now_ms()))
    except storage.errors as exc:
        print(f"beam-receiver: prune: {storage.describe()}: {exc}", file=sys.stderr)
        return EX_FAILURE
    finally:
        storage.close()
    kept = (
        f"older than {config.readings_retention_days:g} days"
        if config.readings_retention_days > 0
        else "none: readings_retention_days is 0, readings are kept"
    )
    print(f"readings deleted: {result.readings} ({kept})")
    print(
        f"heartbeat events deleted: {result.telemetry_events}"
        f" (telemetry_retention_days {config.telemetry_retention_days:g})"
    )
    return EX_OK


def migrate_to_postgres_command(path: Path, sqlite_path: Path) -> int:
    """Copy a SQLite database into the postgresql:// database of receiver.toml."""
    from beam_receiver.backend import open_storage
    from beam_receiver.storage import Database
    from beam_receiver.transfer import copy_database

    config = _checked_config(path)
    if config is None:
        return EX_CONFIG
    if not isinstance(config.database, PostgresUrl):
        print(
            f"{path}: database: must be a postgresql:// URL to copy {sqlite_path} into",
            file=sys.stderr,
        )
        return EX_CONFIG
    if not sqlite_path.is_file():
        print(f"beam-receiver: {sqlite_path}: no such SQLite database", file=sys.stderr)
        return EX_FAILURE
    if not _migrated(config):
        return EX_FAILURE
    source = Database(sqlite_path)
    target = open_storage(config)
    failures: tuple[type[Exception], ...] = (*source.errors, *target.errors)
    try:
        result = copy_database(
            source,
            target,
            progress=lambda read, new: print(f"  readings read {read}, new {new}", flush=True),
        )
    except failures as exc:
        print(f"beam-receiver: migrate-to-postgres: {exc}", file=sys.stderr)
        return EX_FAILURE
    finally:
        source.close()
        target.close()
    print(
        f"copied {sqlite_path} to {target.describe()}: {result.readings_read} readings read,"
        f" {result.readings_new} new (the rest were there already), {result.nodes} nodes,"
        f" {result.telemetry_events_new} new heartbeat events"
    )
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
    prune = commands.add_parser(
        "prune", help="delete readings and heartbeat events past their retention, now"
    )
    prune.add_argument("--config", required=True, type=Path, help="path to receiver.toml")
    copy = commands.add_parser(
        "migrate-to-postgres",
        help="copy a SQLite database into receiver.toml's postgresql:// database",
    )
    copy.add_argument("--config", required=True, type=Path, help="path to receiver.toml")
    copy.add_argument(
        "--sqlite", required=True, type=Path, help="the SQLite database file to copy from"
    )
    commands.add_parser("hash-token", help="read a token on stdin, print sha256:<hex>")
    commands.add_parser("hash-password", help="read a password on stdin, print a hash for [users]")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve_command(args.config)
    if args.command == "check-config":
        return check_config_command(args.config)
    if args.command == "prune":
        return prune_command(args.config)
    if args.command == "migrate-to-postgres":
        return migrate_to_postgres_command(args.config, args.sqlite)
    if args.command == "hash-token":
        return hash_token_command()
    return hash_password_command()
