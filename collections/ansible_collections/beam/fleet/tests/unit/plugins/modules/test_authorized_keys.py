"""authorized_keys: exactly the given keys, nothing else, never an empty automation account."""

from __future__ import annotations

import os
import pwd

import pytest
from ansible_collections.beam.fleet.plugins.modules import authorized_keys
from conftest import run_module
from ssh_fixtures import KEY_A, KEY_B, KEY_RSA, PRINT_A, PRINT_B, PRINT_RSA


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    account = pwd.struct_passwd(("alice", "x", os.getuid(), os.getgid(), "Alice (beam-fleet operator)", str(home), "/bin/bash"))

    def getpwnam(name):
        if name != "alice":
            raise KeyError(name)
        return account

    monkeypatch.setattr(authorized_keys.pwd, "getpwnam", getpwnam)
    return home


def test_writes_exactly_the_keys_and_removes_the_rest(home, capsys):
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(KEY_A + "\n" + KEY_RSA + "\n")
    (ssh / "authorized_keys2").write_text(KEY_RSA + "\n")
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A, KEY_B], "_ansible_diff": True}, capsys)
    assert not failed and result["changed"]
    assert result["added"] == [PRINT_B]
    assert result["removed"] == [PRINT_RSA]
    assert result["fingerprints"] == [PRINT_A, PRINT_B]
    text = (ssh / "authorized_keys").read_text()
    assert text.splitlines()[1:] == [KEY_A, KEY_B]
    assert text.startswith("# Managed by beam.fleet")
    assert not (ssh / "authorized_keys2").exists()
    assert oct((ssh / "authorized_keys").stat().st_mode & 0o777) == "0o600"
    assert KEY_RSA in result["diff"]["before"] and KEY_RSA not in result["diff"]["after"]

    again, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A, KEY_B]}, capsys)
    assert not failed and not again["changed"]


def test_creates_the_ssh_directory(home, capsys):
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A]}, capsys)
    assert not failed and result["changed"] and result["added"] == [PRINT_A]
    assert oct((home / ".ssh").stat().st_mode & 0o777) == "0o700"


def test_check_mode_changes_nothing(home, capsys):
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A], "_ansible_check_mode": True}, capsys)
    assert not failed and result["changed"]
    assert not (home / ".ssh").exists()
    result, failed = run_module(authorized_keys.main, {"user": "nobody-yet", "keys": [KEY_A], "_ansible_check_mode": True}, capsys)
    assert not failed and result["changed"]


def test_no_keys_removes_the_file(home, capsys):
    (home / ".ssh").mkdir()
    (home / ".ssh" / "authorized_keys").write_text(KEY_A + "\n")
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": []}, capsys)
    assert not failed and result["changed"] and result["removed"] == [PRINT_A]
    assert not (home / ".ssh" / "authorized_keys").exists()
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": []}, capsys)
    assert not result["changed"]


def test_refuses_to_lock_the_automation_account_out(home, capsys):
    (home / ".ssh").mkdir()
    (home / ".ssh" / "authorized_keys").write_text(KEY_A + "\n")
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [], "allow_empty": False}, capsys)
    assert failed
    assert "refusing to leave alice with no authorized key" in result["msg"]
    assert (home / ".ssh" / "authorized_keys").read_text() == KEY_A + "\n"


def test_refuses_malformed_keys_and_unknown_accounts(home, capsys):
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": ["ssh-ed25519 AAAA"]}, capsys)
    assert failed and result["msg"].startswith("keys[0]: malformed public key")
    result, failed = run_module(authorized_keys.main, {"user": "mallory", "keys": [KEY_A]}, capsys)
    assert failed and result["msg"] == "account mallory does not exist"


def test_fixes_loose_permissions(home, capsys):
    (home / ".ssh").mkdir()
    run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A]}, capsys)
    (home / ".ssh" / "authorized_keys").chmod(0o644)
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A]}, capsys)
    assert not failed and result["changed"]
    assert oct((home / ".ssh" / "authorized_keys").stat().st_mode & 0o777) == "0o600"


def test_a_shared_key_directory_is_left_as_it_is(home, tmp_path, capsys):
    # AuthorizedKeysFile /etc/ssh/keys/%u: one root-owned directory holds every account's file
    shared = tmp_path / "keys"
    shared.mkdir(mode=0o755)
    path = shared / "alice"
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A], "path": str(path)}, capsys)
    assert not failed and result["changed"]
    assert path.read_text().splitlines()[1:] == [KEY_A]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(shared.stat().st_mode & 0o777) == "0o755"
    path.chmod(0o644)
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A], "path": str(path)}, capsys)
    assert not failed and result["changed"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(shared.stat().st_mode & 0o777) == "0o755"
    again, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A], "path": str(path)}, capsys)
    assert not failed and not again["changed"]


def test_the_default_file_given_as_path_also_retires_authorized_keys2(home, capsys):
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys2").write_text(KEY_RSA + "\n")
    path = str(ssh / "authorized_keys")
    result, failed = run_module(authorized_keys.main, {"user": "alice", "keys": [KEY_A], "path": path}, capsys)
    assert not failed and result["changed"] and result["removed"] == [PRINT_RSA]
    assert not (ssh / "authorized_keys2").exists()
