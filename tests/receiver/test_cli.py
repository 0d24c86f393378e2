"""The `beam-receiver` command's short-lived subcommands, run as real processes."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from werkzeug.security import check_password_hash

from beam_receiver.auth import hash_token

from tests.support.processes import Command, run_program
from tests.support.receiver import write_receiver_toml, write_tokens_file


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
