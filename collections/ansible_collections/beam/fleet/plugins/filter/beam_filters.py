# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters the roles need and Ansible lacks: TOML values and a reproducible password hash."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import math
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.beam.fleet.plugins.module_utils.ssh_keys import expand_authorized_keys_file

PBKDF2_ITERATIONS = 600000


def toml_value(value):
    """One value in TOML syntax: strings, numbers, booleans, arrays and inline tables.

    Why: config.toml is rendered from inventory data, and a sensor option may be any of
    these; to_json is not TOML for mappings (and for a few floats).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise AnsibleFilterError("toml_value: %r has no place in a beam config" % value)
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ["%s = %s" % (json.dumps(str(key)), toml_value(item)) for key, item in value.items()]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise AnsibleFilterError("toml_value: cannot write %r (%s) as TOML" % (value, type(value).__name__))


def werkzeug_pbkdf2(password, salt, iterations=PBKDF2_ITERATIONS):
    """A werkzeug C(pbkdf2:sha256) password hash with a given salt.

    Why a fixed salt: the dashboard users' hashes are written into the receiver's tokens
    file on every run; a fresh random salt would change the file, and restart the
    receiver, every time. The salt is random per user and kept on the controller.
    """
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("werkzeug_pbkdf2: the password must be a non-empty string")
    if not isinstance(salt, str) or not salt or "$" in salt:
        raise AnsibleFilterError("werkzeug_pbkdf2: the salt must be a non-empty string without '$'")
    digest = hashlib.pbkdf2_hmac(
        "sha256", password.encode("utf-8"), salt.encode("utf-8"), int(iterations)
    ).hex()
    return "pbkdf2:sha256:%d$%s$%s" % (int(iterations), salt, digest)


def token_hash(token):
    """C(sha256:<hex>) of a device or operator token, as C(beam-receiver hash-token) prints it."""
    if not isinstance(token, str) or not token.strip():
        raise AnsibleFilterError("token_hash: the token must be a non-empty string")
    return "sha256:" + hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def authorized_keys_path(pattern, user, home):
    """The file sshd reads a user's keys from, by its AuthorizedKeysFile pattern (sshd_config(5)).

    The expansion is module_utils/ssh_keys.py's (the audit reads keys the same way); here a
    pattern naming no file, or a token it cannot expand (%U, the uid), is refused, because the
    role writes keys there and a wrong guess would lock the account out.
    """
    if not pattern or pattern.lower() == "none":
        raise AnsibleFilterError("sshd reads no AuthorizedKeysFile (%r)" % (pattern,))
    for token in re.findall(r"%(.)", pattern.replace("%%", "")):
        if token not in ("h", "u"):
            raise AnsibleFilterError("AuthorizedKeysFile %r: the token %%%s is not supported" % (pattern, token))
    return expand_authorized_keys_file(pattern, user, home)


class FilterModule(object):
    def filters(self):
        return {
            "authorized_keys_path": authorized_keys_path,
            "toml_value": toml_value,
            "werkzeug_pbkdf2": werkzeug_pbkdf2,
            "token_hash": token_hash,
        }
