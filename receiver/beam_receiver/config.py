"""receiver.toml: load it, check every key, and say exactly which key in which file is wrong."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # the receiver ships in the same wheel as the Python 3.9 agent
    import tomli as tomllib

SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
LISTEN_PATTERN = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):(?P<port>[0-9]{1,5})$")
POSTGRES_SCHEMES = ("postgresql", "postgres")
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# "db.example:5432/beam": a PostgreSQL server written as if it were a file name.
HOST_PORT_PATTERN = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}(/|$)")


@dataclass(frozen=True)
class Problem:
    key: str
    message: str


class ConfigError(Exception):
    """Every problem found in one file, each naming the file, the key and the fault."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.path}: {p.key}: {p.message}" for p in self.problems]


@dataclass(frozen=True)
class PostgresUrl:
    """A postgresql:// URL that carries no password (that is in database_password_file)."""

    url: str

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class ReceiverConfig:
    """A checked receiver.toml; relative paths in the file are relative to the file itself.

    `database` is a Path for SQLite (the default backend) or a PostgresUrl for PostgreSQL.
    """

    database: Union[Path, PostgresUrl]
    tokens_file: Path
    listen: str = "127.0.0.1:8000"
    telemetry_interval_s: float = 30.0
    max_body_bytes: int = 4 * 1024 * 1024
    workers: int = 2
    threads: int = 4
    expected_nodes_file: Optional[Path] = None
    secret_key_file: Optional[Path] = None
    busy_timeout_ms: int = 5000
    synchronous: str = "FULL"
    max_future_s: float = 86400.0
    metrics_require_operator: bool = True
    session_cookie_secure: bool = False
    request_timeout_s: float = 30.0
    telemetry_retention_days: float = 30.0
    login_max_failures_per_user: int = 5
    login_max_failures_per_address: int = 20
    login_failure_window_s: float = 900.0
    proxy_fix: bool = False
    database_password_file: Optional[Path] = None
    readings_retention_days: float = 0.0
    path: Optional[Path] = None

    @property
    def secret_key_path(self) -> Path:
        """Where the session-signing key lives: by default next to the SQLite file (a
        postgresql:// database needs secret_key_file, which the checks enforce)."""
        if self.secret_key_file is not None:
            return self.secret_key_file
        if not isinstance(self.database, Path):
            raise ValueError("secret_key_file is required with a postgresql:// database")
        return self.database.with_name(self.database.name + ".secret-key")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# A check returns None for a good value, else what is wrong with it.
Check = Callable[[Any], Optional[str]]


def _string(value: Any) -> Optional[str]:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    return None


def _positive_int(value: Any) -> Optional[str]:
    if not _is_int(value) or value < 1:
        return "must be a whole number of at least 1"
    return None


def _non_negative_int(value: Any) -> Optional[str]:
    if not _is_int(value) or value < 0:
        return "must be a whole number of at least 0"
    return None


def _positive_number(value: Any) -> Optional[str]:
    if not _is_number(value) or value <= 0:
        return "must be a number greater than 0"
    return None


def _non_negative_number(value: Any) -> Optional[str]:
    if not _is_number(value) or value < 0:
        return "must be a number of at least 0"
    return None


def _boolean(value: Any) -> Optional[str]:
    if not isinstance(value, bool):
        return "must be true or false"
    return None


def _listen(value: Any) -> Optional[str]:
    if not isinstance(value, str):
        return 'must be a string like "127.0.0.1:8000" or "unix:/run/beam-receiver.sock"'
    if value.startswith("unix:") and len(value) > len("unix:"):
        return None
    match = LISTEN_PATTERN.fullmatch(value)
    if match is None or not 1 <= int(match.group("port")) <= 65535:
        return f'{value!r} is not "HOST:PORT" (port 1-65535) or "unix:PATH"'
    return None


def _synchronous(value: Any) -> Optional[str]:
    if not isinstance(value, str) or value.upper() not in SYNCHRONOUS_MODES:
        return f"must be one of {', '.join(SYNCHRONOUS_MODES)}"
    return None


# Every key receiver.toml may hold; anything else is a typo worth reporting.
KEYS: dict[str, Check] = {
    "listen": _listen,
    "database": _string,
    "tokens_file": _string,
    "telemetry_interval_s": _positive_number,
    "max_body_bytes": _positive_int,
    "workers": _positive_int,
    "threads": _positive_int,
    "expected_nodes_file": _string,
    "secret_key_file": _string,
    "busy_timeout_ms": _non_negative_int,
    "synchronous": _synchronous,
    "max_future_s": _non_negative_number,
    "metrics_require_operator": _boolean,
    "session_cookie_secure": _boolean,
    "request_timeout_s": _positive_number,
    "telemetry_retention_days": _non_negative_number,
    "login_max_failures_per_user": _positive_int,
    "login_max_failures_per_address": _positive_int,
    "login_failure_window_s": _positive_number,
    "proxy_fix": _boolean,
    "database_password_file": _string,
    "readings_retention_days": _non_negative_number,
}
PATH_KEYS = (
    "database",
    "tokens_file",
    "expected_nodes_file",
    "secret_key_file",
    "database_password_file",
)
REQUIRED_KEYS = ("database", "tokens_file")


def is_postgres_url(value: str) -> bool:
    return value.split("://", 1)[0].lower() in POSTGRES_SCHEMES and "://" in value


def database_url_problem(value: str) -> Optional[str]:
    """What is wrong with a postgresql:// `database`, or None. The URL is never echoed: it
    may hold the very password that must not be there."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"is not a valid postgresql:// URL ({exc})"
    if parts.password is not None or "password" in parse_qs(parts.query):
        return (
            "carries a password: remove it from the URL and put it in"
            " database_password_file (mode 0600)"
        )
    if not parts.path.strip("/"):
        return "must name the database: postgresql://USER@HOST:PORT/DATABASE"
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return (
            "a postgresql:// database needs psycopg and psycopg-pool:"
            " pip install 'beam-fleet[receiver,postgres]'"
        )
    try:
        conninfo_to_dict(value)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's own parser refused it
        return f"is not a valid postgresql:// URL ({str(exc).splitlines()[0]})"
    return None


def database_problems(data: Mapping[str, Any]) -> list[Problem]:
    """The keys that only make sense together: `database` decides SQLite (a file path) or
    PostgreSQL (a postgresql:// URL), and the others must fit that choice."""
    problems: list[Problem] = []
    for key in PATH_KEYS:
        value = data.get(key)
        if not isinstance(value, str) or not URL_PATTERN.match(value):
            continue
        if key != "database":
            problems.append(Problem(key, "is a URL; this key takes a file path"))
        elif not is_postgres_url(value):
            problems.append(
                Problem(
                    key,
                    f"is a {value.split('://', 1)[0]}:// URL: give a SQLite file path,"
                    " or a postgresql:// URL for PostgreSQL",
                )
            )
    database = data.get("database")
    if not isinstance(database, str):
        return problems
    if is_postgres_url(database):
        message = database_url_problem(database)
        if message is not None:
            problems.append(Problem("database", message))
        if "secret_key_file" not in data:
            problems.append(
                Problem(
                    "secret_key_file",
                    "is required with a postgresql:// database (by default the key lives"
                    " beside a SQLite file); every receiver of the database needs the same key",
                )
            )
        if "synchronous" in data:
            problems.append(
                Problem(
                    "synchronous",
                    "applies to a SQLite database only; PostgreSQL's durability is the"
                    " server's synchronous_commit",
                )
            )
    elif not URL_PATTERN.match(database):
        if HOST_PORT_PATTERN.match(database):
            problems.append(
                Problem(
                    "database",
                    f"{database!r} looks like HOST:PORT; a PostgreSQL database is given as"
                    " postgresql://USER@HOST:PORT/DATABASE, a SQLite database as a file path",
                )
            )
        if "database_password_file" in data:
            problems.append(
                Problem(
                    "database_password_file",
                    "is only for a postgresql:// database; database is a SQLite file path",
                )
            )
    return problems


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables, or a ConfigError saying why it cannot be read."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(path, [Problem("(file)", f"cannot be read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [Problem("(file)", "is not UTF-8 text")]) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [Problem("(file)", f"is not valid TOML: {exc}")]) from exc


def config_from_mapping(data: Mapping[str, Any], path: Path) -> ReceiverConfig:
    """Check every key of a parsed receiver.toml; report all problems at once."""
    problems: list[Problem] = []
    for key in sorted(set(data) - set(KEYS)):
        problems.append(Problem(key, f"unknown key (known keys: {', '.join(sorted(KEYS))})"))
    for key in REQUIRED_KEYS:
        if key not in data:
            problems.append(Problem(key, "is required"))
    problems.extend(database_problems(data))
    values: dict[str, Any] = {}
    for key, check in KEYS.items():
        if key not in data:
            continue
        message = check(data[key])
        if message is not None:
            problems.append(Problem(key, message))
            continue
        value = data[key]
        if key == "database" and is_postgres_url(value):
            value = PostgresUrl(value)
        elif key in PATH_KEYS:
            value = (path.parent / Path(value).expanduser()).absolute()
        elif key == "synchronous":
            value = value.upper()
        elif key in (
            "telemetry_interval_s",
            "max_future_s",
            "request_timeout_s",
            "telemetry_retention_days",
            "login_failure_window_s",
            "readings_retention_days",
        ):
            value = float(value)
        values[key] = value
    if problems:
        raise ConfigError(path, problems)
    return ReceiverConfig(path=path.absolute(), **values)


def load_config(path: Union[str, Path]) -> ReceiverConfig:
    """Read and check receiver.toml; raises ConfigError naming each bad key and the file."""
    source = Path(path)
    return config_from_mapping(read_toml(source), source)
