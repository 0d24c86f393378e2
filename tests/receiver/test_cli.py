"""The `beam-receiver` command's short-lived subcommands, run as real processes."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import pytest
from werkzeug.security import check_password_hash

from beam_receiver.auth import hash_token
from beam_receiver.backend import open_storage
from beam_receiver.config import load_config
from beam_receiver.storage import Database, NewReading
from beam_receiver.timestamps import now_ms

from tests.support.files import write_private
from tests.support.processes import Command, run_program
from tests.support.receiver import write_receiver_toml, write_tokens_file
from tests.support.waiting import free_port


@pytest.fixture
def beam_receiver() -> Command:
    return functools.partial(run_program, "beam-receiver")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    write_tokens_file(tmp_path / "receiver-tokens.toml", {"beamrider-0001": "t"}, {"ops": "o"})
    (tmp_path / "expected-nodes.toml").write_text('[nodes."beamrider-0001"]\nrole = "agent"\n')
    write_receiver_toml(tmp_path)
    return tmp_path


def test_hash_token_prints_the_tokens_file_form(beam_receiver: Command) -> None:
    result = beam_receiver("hash-token", stdin="s3cret-token\n")
    assert result.returncode == 0
    assert result.stdout == hash_token("s3cret-token") + "\n"


def test_hash_token_needs_a_token(beam_receiver: Command) -> None:
    result = beam_receiver("hash-token", stdin="\n")
    assert result.returncode == 1
    assert "no token" in result.stderr


def test_hash_password_prints_a_werkzeug_hash(beam_receiver: Command) -> None:
    result = beam_receiver("hash-password", stdin="pass word\n")
    assert result.returncode == 0
    hashed = result.stdout.strip()
    assert check_password_hash(hashed, "pass word")
    assert not check_password_hash(hashed, "pass word\n")


def test_check_config_ok(beam_receiver: Command, config_dir: Path) -> None:
    result = beam_receiver("check-config", "--config", str(config_dir / "receiver.toml"))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert "1 devices, 1 operators, 0 users" in result.stdout
    assert "1 nodes" in result.stdout
    assert not (config_dir / "receiver.db").exists()  # checking touches nothing


def test_check_config_names_bad_keys(beam_receiver: Command, tmp_path: Path) -> None:
    path = tmp_path / "receiver.toml"
    path.write_text('database = "r.db"\ntokens_file = "t.toml"\nworkers = 0\nlisten = "x"\n')
    result = beam_receiver("check-config", "--config", str(path))
    assert result.returncode == 78
    assert f"{path}: workers: " in result.stderr
    assert f"{path}: listen: " in result.stderr


def test_check_config_checks_the_files_it_names(beam_receiver: Command, config_dir: Path) -> None:
    (config_dir / "receiver-tokens.toml").write_text('[devices]\n"a" = "not a hash"\n')
    (config_dir / "expected-nodes.toml").write_text('[nodes."a"]\nrole = 3\n')
    result = beam_receiver("check-config", "--config", str(config_dir / "receiver.toml"))
    assert result.returncode == 78
    assert f"{config_dir / 'receiver-tokens.toml'}: devices.a: " in result.stderr
    assert f"{config_dir / 'expected-nodes.toml'}: nodes.a.role: " in result.stderr


def test_serve_refuses_a_bad_config(beam_receiver: Command, tmp_path: Path) -> None:
    path = tmp_path / "receiver.toml"
    path.write_text("workers = 2\n")
    result = beam_receiver("serve", "--config", str(path))
    assert result.returncode == 78
    assert f"{path}: database: is required" in result.stderr


def test_serve_reports_an_unusable_database(beam_receiver: Command, config_dir: Path) -> None:
    (config_dir / "not-a-dir").write_text("a file where a directory should be")
    write_receiver_toml(config_dir, database=str(config_dir / "not-a-dir" / "receiver.db"))
    result = beam_receiver("serve", "--config", str(config_dir / "receiver.toml"))
    assert result.returncode == 1
    assert "cannot start" in result.stderr


def test_usage_errors_exit_2(beam_receiver: Command) -> None:
    assert beam_receiver().returncode == 2
    assert beam_receiver("serve").returncode == 2
    assert beam_receiver("frobnicate").returncode == 2


# -- the PostgreSQL backend, retention and the copy from SQLite ------------------------------


def postgres_toml(config_dir: Path, url: str, password_file: Path, **settings: object) -> Path:
    return write_receiver_toml(
        config_dir,
        database=url,
        database_password_file=str(password_file),
        secret_key_file=str(config_dir / "secret-key"),
        **settings,
    )


@pytest.mark.parametrize(
    ("make_file", "words"),
    [
        (lambda path: None, "cannot be read"),
        (lambda path: (path.write_text("pw\n"), path.chmod(0o644)), "mode 0644"),
        (lambda path: write_private(path, "\n"), "is empty"),
    ],
    ids=["missing", "readable by others", "empty"],
)
def test_check_config_refuses_an_unusable_password_file(
    beam_receiver: Command, config_dir: Path, make_file: Callable[[Path], object], words: str
) -> None:
    password_file = config_dir / "pg-password"
    make_file(password_file)
    path = postgres_toml(config_dir, "postgresql://beam@127.0.0.1:1/beam", password_file)
    for command in ("check-config", "serve"):
        result = beam_receiver(command, "--config", str(path))
        assert result.returncode == 78, result.stderr
        assert f"{path}: database_password_file: {password_file}" in result.stderr
        assert words in result.stderr


def test_check_config_accepts_postgres_without_contacting_it(
    beam_receiver: Command, config_dir: Path
) -> None:
    password_file = write_private(config_dir / "pg-password", "pw\n")
    path = postgres_toml(config_dir, "postgresql://beam@127.0.0.1:1/beam", password_file)
    result = beam_receiver("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "PostgreSQL" in result.stdout and "database_password_file" in result.stdout


def test_serve_reports_an_unreachable_postgres(beam_receiver: Command, config_dir: Path) -> None:
    password_file = write_private(config_dir / "pg-password", "pw\n")
    url = f"postgresql://beam@127.0.0.1:{free_port()}/beam"
    path = postgres_toml(config_dir, url, password_file)
    result = beam_receiver("serve", "--config", str(path))
    assert result.returncode == 1
    assert f"cannot start: {url}" in result.stderr
    assert "pw" not in result.stderr.replace("password", "")


def test_prune_deletes_past_retention_on_either_backend(
    beam_receiver: Command,
    config_dir: Path,
    database_settings: Callable[[Path], dict[str, Any]],
) -> None:
    settings = {"readings_retention_days": 30, **database_settings(config_dir)}
    path = write_receiver_toml(config_dir, **settings)
    storage = open_storage(load_config(path))
    storage.migrate()
    now = now_ms()
    try:
        storage.insert_readings(
            [old_reading(seq, now - (40 if seq <= 3 else 1) * 86_400_000) for seq in range(1, 6)]
        )
        result = beam_receiver("prune", "--config", str(path))
        assert result.returncode == 0, result.stderr
        assert "readings deleted: 3 (older than 30 days)" in result.stdout
        assert storage.count_readings() == 2
    finally:
        storage.close()


def old_reading(seq: int, ts_ms: int) -> NewReading:
    return NewReading("beamrider-0001", seq, "s", "virtual", "2026-01-01T00:00:00Z", ts_ms, "{}")


@pytest.mark.parametrize("backend", ["postgres"])
def test_migrate_to_postgres_copies_and_can_run_again(
    beam_receiver: Command,
    config_dir: Path,
    database_settings: Callable[[Path], dict[str, Any]],
) -> None:
    sqlite = Database(config_dir / "old.db")
    sqlite.migrate()
    sqlite.insert_readings([old_reading(seq, 1_000 + seq) for seq in range(1, 8)])
    sqlite.close()
    path = write_receiver_toml(config_dir, **database_settings(config_dir))
    command = ("migrate-to-postgres", "--config", str(path), "--sqlite", str(config_dir / "old.db"))
    first = beam_receiver(*command)
    assert first.returncode == 0, first.stderr
    assert "7 readings read, 7 new" in first.stdout
    second = beam_receiver(*command)
    assert second.returncode == 0, second.stderr
    assert "7 readings read, 0 new" in second.stdout
    storage = open_storage(load_config(path))
    try:
        assert [r["seq"] for r in storage.query_readings()[0]] == list(range(1, 8))
    finally:
        storage.close()


def test_migrate_to_postgres_needs_a_postgres_config(
    beam_receiver: Command, config_dir: Path
) -> None:
    result = beam_receiver(
        "migrate-to-postgres", "--config", str(config_dir / "receiver.toml"), "--sqlite", "x.db"
    )
    assert result.returncode == 78
    assert "database: must be a postgresql:// URL" in result.stderr
