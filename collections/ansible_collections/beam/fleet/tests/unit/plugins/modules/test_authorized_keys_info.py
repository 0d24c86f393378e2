"""authorized_keys_info: every account's keys with fingerprints, owners and unknown keys flagged."""

from __future__ import annotations

import pwd

from ansible_collections.beam.fleet.plugins.modules import authorized_keys_info
from conftest import run_module
from ssh_fixtures import KEY_A, KEY_B, KEY_RSA, PRINT_A, PRINT_B, PRINT_RSA


def test_audit_names_owners_and_flags_undeclared_keys():
    files = {
        "/home/alice/.ssh/authorized_keys": "# managed\n%s\n%s\n" % (KEY_A, KEY_B),
        "/root/.ssh/authorized_keys2": 'command="true" ' + KEY_RSA + "\nssh-rsa broken\n",
    }
    report, unknown, total, problems = authorized_keys_info.audit(
        [("alice", "/home/alice"), ("root", "/root"), ("bob", "/home/bob")],
        [".ssh/authorized_keys", ".ssh/authorized_keys2"],
        [{"owner": "alice", "account": "alice", "keys": [KEY_A]},
         {"owner": "bob", "account": "bob", "key": KEY_B},
         {"owner": "ci", "fingerprint": PRINT_RSA, "account": "beam-ops"}],
        read=files.get,
    )
    assert problems == []
    assert total == 3
    assert sorted(report) == ["alice", "root"]
    alice = report["alice"]["keys"]
    assert [(k["fingerprint"], k["owner"], k["known"], k["line"]) for k in alice] == [
        (PRINT_A, "alice", True, 2), (PRINT_B, "bob", False, 3)]
    assert report["root"]["keys"][0]["options"] == 'command="true"'
    assert report["root"]["problems"] == ["/root/.ssh/authorized_keys2: line 2: key data of type ssh-rsa is not valid base64"]
    assert unknown == [
        {"account": "alice", "fingerprint": PRINT_B, "comment": "b@test", "owner": "bob", "file": "/home/alice/.ssh/authorized_keys"},
        {"account": "root", "fingerprint": PRINT_RSA, "comment": "r@test", "owner": "ci", "file": "/root/.ssh/authorized_keys2"},
    ]


def test_module_reads_every_account(tmp_path, monkeypatch, capsys):
    home = tmp_path / "alice"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "authorized_keys").write_text(KEY_A + "\n")
    accounts = [
        pwd.struct_passwd(("alice", "x", 1000, 1000, "", str(home), "/bin/bash")),
        pwd.struct_passwd(("nohome", "x", 1001, 1001, "", str(tmp_path / "missing"), "/bin/sh")),
    ]
    monkeypatch.setattr(authorized_keys_info.pwd, "getpwall", lambda: accounts)
    result, failed = run_module(
        authorized_keys_info.main,
        {"authorized_keys_file": ["%h/.ssh/authorized_keys"], "_ansible_check_mode": True},
        capsys,
    )
    assert not failed and not result["changed"]
    assert result["keys"] == 1
    assert result["authorized_keys_file"] == {"patterns": ["%h/.ssh/authorized_keys"], "source": "option"}
    assert result["unknown"][0]["fingerprint"] == PRINT_A
    assert list(result["accounts"]) == ["alice"]


def test_module_refuses_invalid_known_keys(capsys):
    result, failed = run_module(
        authorized_keys_info.main,
        {"authorized_keys_file": [".ssh/authorized_keys"], "known_keys": [{"owner": "x", "fingerprint": "MD5:aa"}]},
        capsys,
    )
    assert failed and "is not a SHA256: fingerprint" in result["msg"]
