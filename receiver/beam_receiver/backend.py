"""Which storage backend receiver.toml chose, and the PostgreSQL password file.

The one place that turns `database` into a Storage: a file path is SQLite (storage.Database),
a postgresql:// URL is PostgreSQL (storage.postgres, imported only then). The password is
read here, at start, from `database_password_file`; it is never part of the config.
"""

from __future__ import annotations

import stat
from pathlib import Path

from beam_receiver.config import ConfigError, PostgresUrl, Problem, ReceiverConfig
from beam_receiver.storage import Database, Storage

PASSWORD_KEY = "database_password_file"


def read_password_file(path: Path, config_path: Path) -> str:
    """The password in path, stripped of its line ending; a ConfigError naming
    database_password_file when it is missing, empty, or readable by anyone else."""

    def refuse(message: str) -> ConfigError:
        return ConfigError(config_path, [Problem(PASSWORD_KEY, message)])

    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise refuse(f"{path} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise refuse(f"{path} is not UTF-8 text") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise refuse(
            f"{path} has mode {stat.S_IMODE(mode):04o}: a password file must be readable by"
            " its owner only (chmod 600)"
        )
    password = text.strip("\r\n")
    if not password:
        raise refuse(f"{path} is empty")
    return password


def open_storage(config: ReceiverConfig) -> Storage:
    """The configured backend, not yet migrated; raises ConfigError for an unusable
    password file."""
    if isinstance(config.database, PostgresUrl):
        from beam_receiver.storage.postgres import PostgresStorage

        password = None
        if config.database_password_file is not None:
            password = read_password_file(
                config.database_password_file, config.path or Path("receiver.toml")
            )
        # Every thread of the worker may hold one connection; one more for the retention
        # pass and the health probe.
        return PostgresStorage(
            config.database.url,
            password=password,
            busy_timeout_ms=config.busy_timeout_ms,
            max_connections=config.threads + 1,
        )
    return Database(config.database, config.busy_timeout_ms, config.synchronous)
