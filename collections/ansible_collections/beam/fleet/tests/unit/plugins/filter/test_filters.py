"""The roles' filters: TOML values the agent parses, hashes the receiver accepts."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.beam.fleet.plugins.filter.beam_filters import (
    authorized_keys_path,
    token_hash,
    toml_value,
    werkzeug_pbkdf2,
)
from werkzeug.security import check_password_hash


@pytest.mark.parametrize(
    "value",
    ["plain", 'quote " and \\ back\nslash', "ünï", 0, -7, 2.5, 1e-7, True, False,
     [1, "two", 3.0], {"room": "roof", "n": 1}, {}, [], {"nested": {"a": [1, 2]}}],
)
def test_toml_value_round_trips(value):
    assert tomllib.loads("key = " + toml_value(value))["key"] == value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None, object()])
def test_toml_value_refuses_what_toml_cannot_hold(value):
    with pytest.raises(AnsibleFilterError):
        toml_value(value)


def test_password_hash_is_werkzeug_compatible_and_reproducible():
    hashed = werkzeug_pbkdf2("correct horse", "s4ltS4lt", iterations=1000)
    assert hashed == werkzeug_pbkdf2("correct horse", "s4ltS4lt", iterations=1000)
    assert check_password_hash(hashed, "correct horse")
    assert not check_password_hash(hashed, "wrong horse")


def test_password_hash_refuses_bad_input():
    with pytest.raises(AnsibleFilterError):
        werkzeug_pbkdf2("", "salt")
    with pytest.raises(AnsibleFilterError):
        werkzeug_pbkdf2("pw", "sa$lt")


def test_token_hash_matches_the_receivers():
    from beam_receiver.auth import hash_token

    assert token_hash("  abc123\n") == hash_token("abc123")
    with pytest.raises(AnsibleFilterError):
        token_hash("   ")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (".ssh/authorized_keys", "/home/beam-ops/.ssh/authorized_keys"),
        ("%h/.ssh/authorized_keys", "/home/beam-ops/.ssh/authorized_keys"),
        ("/etc/ssh/keys/%u", "/etc/ssh/keys/beam-ops"),
        ("/etc/ssh/100%%/%u.keys", "/etc/ssh/100%/beam-ops.keys"),
    ],
)
def test_authorized_keys_path_resolves_sshds_tokens(pattern, expected):
    assert authorized_keys_path(pattern, "beam-ops", "/home/beam-ops") == expected


@pytest.mark.parametrize("pattern", ["none", "", "/etc/keys/%U"])
def test_authorized_keys_path_refuses_what_names_no_file(pattern):
    with pytest.raises(AnsibleFilterError):
        authorized_keys_path(pattern, "beam-ops", "/home/beam-ops")
