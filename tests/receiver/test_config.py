"""receiver.toml and the expected-node list: every key checked, every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from beam_receiver.config import ConfigError, PostgresUrl, ReceiverConfig, load_config
from beam_receiver.inventory import ExpectedNode, load_expected_nodes


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.lines()


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "receiver.toml", 'database = "db/r.db"\ntokens_file = "t.toml"\n')
    config = load_config(path)
    assert config == ReceiverConfig(
        database=tmp_path / "db" / "r.db",
        tokens_file=tmp_path / "t.toml",
        path=path.absolute(),
    )
    assert config.listen == "127.0.0.1:8000"
    assert config.telemetry_interval_s == 30
    assert config.max_body_bytes == 4194304
    assert config.workers == 2
    assert config.secret_key_path == tmp_path / "db" / "r.db.secret-key"
    # Exposure: /metrics for operators, login limits on, no proxy trusted.
    assert config.metrics_require_operator is True
    assert config.login_max_failures_per_user == 5
    assert config.login_max_failures_per_address == 20
    assert config.login_failure_window_s == 900
    assert config.proxy_fix is False


def test_every_key_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "receiver.toml",
        """
listen = "0.0.0.0:9000"
database = "/var/lib/beam-receiver/receiver.db"
tokens_file = "/etc/beam/receiver-tokens.toml"
telemetry_interval_s = 12.5
max_body_bytes = 1000
workers = 4
threads = 8
expected_nodes_file = "nodes.toml"
secret_key_file = "/etc/beam/secret"
busy_timeout_ms = 0
synchronous = "normal"
max_future_s = 60
metrics_require_operator = false
session_cookie_secure = true
request_timeout_s = 5
login_max_failures_per_user = 3
login_max_failures_per_address = 50
login_failure_window_s = 60
proxy_fix = true
""",
    )
    config = load_config(path)
    assert config.listen == "0.0.0.0:9000"
    assert config.database == Path("/var/lib/beam-receiver/receiver.db")
    assert config.telemetry_interval_s == 12.5
    assert (config.workers, config.threads, config.max_body_bytes) == (4, 8, 1000)
    assert config.expected_nodes_file == tmp_path / "nodes.toml"
    assert config.secret_key_path == Path("/etc/beam/secret")
    assert config.synchronous == "NORMAL"
    assert not config.metrics_require_operator and config.session_cookie_secure
    assert (config.login_max_failures_per_user, config.login_max_failures_per_address) == (3, 50)
    assert config.login_failure_window_s == 60.0 and config.proxy_fix


@pytest.mark.parametrize(
    ("line", "key", "words"),
    [
        ('listen = "8000"', "listen", "HOST:PORT"),
        ('listen = "host:70000"', "listen", "HOST:PORT"),
        ("listen = 8000", "listen", "string"),
        ("telemetry_interval_s = 0", "telemetry_interval_s", "greater than 0"),
        ('telemetry_interval_s = "30"', "telemetry_interval_s", "number"),
        ("max_body_bytes = -1", "max_body_bytes", "at least 1"),
        ("max_body_bytes = 1.5", "max_body_bytes", "whole number"),
        ("workers = true", "workers", "whole number"),
        ('synchronous = "OFF"', "synchronous", "FULL"),
        ('metrics_require_operator = "yes"', "metrics_require_operator", "true or false"),
        ('database_path = "x"', "database_path", "unknown key"),
        ("login_max_failures_per_user = 0", "login_max_failures_per_user", "at least 1"),
        ("login_max_failures_per_address = 2.5", "login_max_failures_per_address", "whole"),
        ("login_failure_window_s = 0", "login_failure_window_s", "greater than 0"),
        ("proxy_fix = 1", "proxy_fix", "true or false"),
    ],
)
def test_bad_value_names_file_and_key(tmp_path: Path, line: str, key: str, words: str) -> None:
    path = write(tmp_path / "receiver.toml", f'database = "r.db"\ntokens_file = "t.toml"\n{line}\n')
    lines = problems(path)
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: {key}: ")
    assert words in lines[0]


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "receiver.toml", "workers = 0\nfoo = 1\n")
    keys = {line.split(": ")[1] for line in problems(path)}
    assert keys == {"database", "tokens_file", "workers", "foo"}


def test_unreadable_or_invalid_toml(tmp_path: Path) -> None:
    assert "cannot be read" in problems(tmp_path / "missing.toml")[0]
    assert "not valid TOML" in problems(write(tmp_path / "bad.toml", "listen = \n"))[0]
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    assert "not UTF-8" in problems(binary)[0]


def test_unix_socket_listen_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.toml",
        'database = "r.db"\ntokens_file = "t"\nlisten = "unix:/run/beam.sock"\n',
    )
    assert load_config(path).listen == "unix:/run/beam.sock"


def test_expected_nodes_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "nodes.toml",
        '[nodes."beamrider-0001"]\nrole = "agent"\ntags = { site = "roof", rack = 3 }\n'
        '[nodes."gw-1"]\n',
    )
    assert load_expected_nodes(path) == {
        "beamrider-0001": ExpectedNode("beamrider-0001", "agent", {"site": "roof", "rack": "3"}),
        "gw-1": ExpectedNode("gw-1"),
    }
    assert load_expected_nodes(write(tmp_path / "empty.toml", "")) == {}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[nodes."a"]\nrole = 1\n', "nodes.a.role"),
        ('[nodes."a"]\ntags = "x"\n', "nodes.a.tags"),
        ('[nodes."a"]\ntags = { site = [1] }\n', "nodes.a.tags.site"),
        ('[nodes."a"]\ncolour = "red"\n', "nodes.a.colour"),
        ('nodes = ["a"]\n', "nodes"),
        ('[hosts."a"]\n', "hosts"),
        ("[nodes]\na = 1\n", "nodes.a"),
    ],
)
def test_bad_expected_nodes_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "nodes.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_expected_nodes(path)
    assert any(line.startswith(f"{path}: {key}: ") for line in caught.value.lines())


# -- the storage backend: a file path (SQLite) or a postgresql:// URL ------------------------

PG = "postgresql://beam@db.example:5432/beam"


@pytest.mark.parametrize(
    ("lines", "key", "words"),
    [
        ('database = "postgresql://beam:s3cret@db.example/beam"', "database", "password"),
        ('database = "postgresql://beam@db.example/beam?password=s3cret"', "database", "password"),
        ('database = "postgresql://beam@db.example:5432/"', "database", "name the database"),
        ('database = "postgresql://beam@db.example:port/beam"', "database", "valid"),
        ('database = "mysql://beam@db.example/beam"', "database", "SQLite file path"),
        ('database = "db.example:5432/beam"', "database", "HOST:PORT"),
        (f'database = "{PG}"\ntokens_file = "postgresql://x@y/z"', "tokens_file", "file path"),
        (
            f'database = "{PG}"\nexpected_nodes_file = "https://x/nodes.toml"',
            "expected_nodes_file",
            "file path",
        ),
        ('database_password_file = "pg-password"', "database_password_file", "postgresql://"),
        (f'database = "{PG}"\nsynchronous = "FULL"', "synchronous", "SQLite"),
        ("readings_retention_days = -1", "readings_retention_days", "at least 0"),
    ],
    ids=[
        "password in the user part",
        "password as a parameter",
        "no database name",
        "port not a number",
        "another scheme",
        "host:port as a path",
        "URL for tokens_file",
        "URL for expected_nodes_file",
        "password file with SQLite",
        "synchronous with PostgreSQL",
        "negative retention",
    ],
)
def test_a_database_setting_that_cannot_work_is_refused_naming_the_key(
    tmp_path: Path, lines: str, key: str, words: str
) -> None:
    text = f'{lines}\nsecret_key_file = "k"\n'
    if "database =" not in text:
        text = f'database = "r.db"\n{text}'
    if "tokens_file =" not in text:
        text += 'tokens_file = "t.toml"\n'
    path = write(tmp_path / "receiver.toml", text)
    lines_out = problems(path)
    assert [line for line in lines_out if line.startswith(f"{path}: {key}: ")], lines_out
    assert any(words in line for line in lines_out), lines_out
    assert "s3cret" not in "\n".join(lines_out)  # a password is never echoed


def test_postgres_needs_its_own_secret_key_file(tmp_path: Path) -> None:
    path = write(tmp_path / "receiver.toml", f'database = "{PG}"\ntokens_file = "t.toml"\n')
    lines = problems(path)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: secret_key_file: "), lines
    assert "required with a postgresql:// database" in lines[0]


def test_a_postgres_config_is_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path / "receiver.toml",
        f'database = "{PG}"\ntokens_file = "t.toml"\nsecret_key_file = "k"\n'
        'database_password_file = "pg-password"\nreadings_retention_days = 90\n',
    )
    config = load_config(path)
    assert config.database == PostgresUrl(PG)
    assert config.database_password_file == tmp_path / "pg-password"
    assert config.secret_key_path == tmp_path / "k"
    assert config.readings_retention_days == 90.0
    sqlite = load_config(write(tmp_path / "r.toml", 'database = "r.db"\ntokens_file = "t"\n'))
    assert sqlite.database == tmp_path / "r.db"
    assert sqlite.readings_retention_days == 0.0  # readings are kept unless asked
