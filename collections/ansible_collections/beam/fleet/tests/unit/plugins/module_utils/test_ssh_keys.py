"""OpenSSH key parsing and fingerprints, checked against what ssh-keygen printed."""

from __future__ import annotations

import base64

import pytest
from ansible_collections.beam.fleet.plugins.module_utils.ssh_keys import (
    KeyFormatError,
    expand_authorized_keys_file,
    fingerprint,
    key_line,
    parse_key,
    parse_sshd_authorized_keys_file,
    read_authorized_keys,
)
from ssh_fixtures import KEY_A, KEY_RSA, PRINT_A, PRINT_RSA


def test_fingerprints_equal_ssh_keygen():
    assert fingerprint(KEY_A) == PRINT_A
    assert fingerprint(KEY_RSA) == PRINT_RSA


def test_options_and_comment_are_kept():
    line = 'from="10.0.0.0/8,192.168.1.1",command="echo \\"hi there\\"" ' + KEY_A
    key = parse_key(line)
    assert key["options"] == 'from="10.0.0.0/8,192.168.1.1",command="echo \\"hi there\\""'
    assert key["comment"] == "a@test"
    assert key["fingerprint"] == PRINT_A
    assert key_line(key) == line


def test_options_are_refused_where_only_keys_belong():
    with pytest.raises(KeyFormatError, match="unknown key type"):
        parse_key("no-pty " + KEY_A, allow_options=False)


@pytest.mark.parametrize("line, message", [
    ("ssh-ed25519", "no key data"),
    ("ssh-ed25519 AAAA!!notbase64", "not valid base64"),
    ("ssh-rsa " + KEY_A.split()[1], "does not hold a ssh-rsa key"),
    ("ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed").decode(), "does not hold"),
    ("ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x1f" + b"k" * 31).decode(), "incomplete"),
    ("ssh-foo AAAAC3NzaC1lZDI1NTE5", "unknown key type"),
    ("", "is empty"),
    (KEY_A + "\n" + KEY_RSA, "one line"),
    (42, "must be a string"),
])
def test_malformed_keys_are_refused(line, message):
    with pytest.raises(KeyFormatError, match=message):
        parse_key(line)


def test_authorized_keys_file_is_read_with_line_numbers_and_problems():
    keys, problems = read_authorized_keys("# header\n\n%s\nssh-rsa garbage\n%s\n" % (KEY_A, KEY_RSA))
    assert [(k["line"], k["fingerprint"]) for k in keys] == [(3, PRINT_A), (5, PRINT_RSA)]
    assert problems == ["line 4: key data of type ssh-rsa is not valid base64"]


def test_authorized_keys_file_patterns():
    assert expand_authorized_keys_file(".ssh/authorized_keys", "bob", "/home/bob") == "/home/bob/.ssh/authorized_keys"
    assert expand_authorized_keys_file("/etc/ssh/keys/%u", "bob", "/home/bob") == "/etc/ssh/keys/bob"
    assert expand_authorized_keys_file("%h/k%%", "bob", "/home/bob/") == "/home/bob//k%"
    out = "port 22\nauthorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2\n"
    assert parse_sshd_authorized_keys_file(out) == [".ssh/authorized_keys", ".ssh/authorized_keys2"]
    assert parse_sshd_authorized_keys_file("authorizedkeysfile none\n") == []
    assert parse_sshd_authorized_keys_file("port 22\n") is None
