# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""SSH access rules: who may log in on which node, from the fleet's declarations.

Why apart from fleet.py: node and sensor rules describe what a node runs; these describe
who reaches it (beam.fleet.ssh_access applies them, ssh_audit.yml and ssh_rotate.yml read
them). validate_fleet() calls check_ssh_access() for every node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.beam.fleet.plugins.module_utils.ssh_keys import (
    FINGERPRINT_PATTERN,
    KeyFormatError,
    parse_key,
)

# SSH access (beam.fleet.ssh_access): who may log in where, declared once for the fleet.
SSH_VARIABLES = (
    "beam_ssh_automation_user",
    "beam_ssh_automation_keys",
    "beam_ssh_operators",
    "beam_ssh_revoked_keys",
)
# A login name useradd accepts everywhere (Debian's NAME_REGEX, at most 32 characters).
USER_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
RESERVED_USERS = ("root", "beam-agent", "beam-receiver", "daemon", "nobody", "sshd")
LOGIN_NAME_RULE = "must be a login name (lowercase letters, digits, '_' or '-', not %s), got %r"
OPERATOR_KEYS = ("name", "keys", "groups", "expires", "comment")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(value):
    """A datetime.date from a YAML date or an ISO 'YYYY-MM-DD' string; None when it is neither."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str) and DATE_PATTERN.match(value.strip()):
        try:
            return datetime.datetime.strptime(value.strip(), "%Y-%m-%d").date()
        except ValueError:
            return None
    return None


def _is_expired(expires, today):
    """A key or operator is valid through its expiry date (UTC) and refused from the next day."""
    return expires is not None and today > expires


def check_ssh_access(node, known_groups, member_of, today):
    """The SSH access a node's variables grant on that node: (access, problems).

    problems are (key, message). access is None when the node declares no SSH access
    (no automation user and no operators), else a mapping the role applies as it is:
    automation_user, automation_keys, operators (name, comment, keys that may log in on
    this node), absent_operators (declared but not allowed here, or expired: no key here),
    expired (fingerprints dropped because of an expiry date) and revoked fingerprints.
    """
    problems = []
    automation = node.get("beam_ssh_automation_user")
    operators = node.get("beam_ssh_operators")
    if automation is None and operators is None:
        return None, problems
    if operators is None:
        operators = []
    if automation is not None and (
        not isinstance(automation, str) or not USER_PATTERN.match(automation) or automation in RESERVED_USERS
    ):
        problems.append(("beam_ssh_automation_user", LOGIN_NAME_RULE % (", ".join(RESERVED_USERS), automation)))
        automation = None

    revoked = set()
    revoked_list = node.get("beam_ssh_revoked_keys") or []
    if not isinstance(revoked_list, (list, tuple)):
        problems.append(("beam_ssh_revoked_keys", "must be a list of public keys or SHA256: fingerprints"))
        revoked_list = []
    for index, entry in enumerate(revoked_list):
        if isinstance(entry, str) and FINGERPRINT_PATTERN.match(entry.strip()):
            revoked.add(entry.strip())
            continue
        try:
            revoked.add(parse_key(entry)["fingerprint"])
        except KeyFormatError as error:
            problems.append(("beam_ssh_revoked_keys[%d]" % index, "neither a SHA256: fingerprint nor a public key: %s" % error))

    automation_keys = []
    extra = node.get("beam_ssh_automation_keys") or []
    if not isinstance(extra, (list, tuple)):
        problems.append(("beam_ssh_automation_keys", "must be a list of public keys"))
        extra = []
    for index, line in enumerate(extra):
        try:
            key = parse_key(line, allow_options=False)
        except KeyFormatError as error:
            problems.append(("beam_ssh_automation_keys[%d]" % index, "malformed public key: %s" % error))
            continue
        if key["fingerprint"] not in revoked:
            automation_keys.append(line.strip())

    if not isinstance(operators, (list, tuple)):
        problems.append(("beam_ssh_operators", "must be a list of operators (name, keys, groups, optional expires)"))
        operators = []
    here = []
    absent = []
    expired = []
    names = {}
    key_owners = {}
    for index, operator in enumerate(operators):
        label = "beam_ssh_operators[%d]" % index
        if not isinstance(operator, dict):
            problems.append((label, "must be a mapping with name, keys, groups and optional expires, got %r" % (operator,)))
            continue
        name = operator.get("name")
        if isinstance(name, str):
            label = "%s (%s)" % (label, name)
        for key in sorted(set(operator) - set(OPERATOR_KEYS)):
            problems.append((label + "." + str(key), "unknown field (fields: %s)" % ", ".join(OPERATOR_KEYS)))
        if not isinstance(name, str) or not USER_PATTERN.match(name) or name in RESERVED_USERS:
            problems.append((label + ".name", LOGIN_NAME_RULE % (", ".join(RESERVED_USERS), name)))
            continue
        if name == automation:
            problems.append((label + ".name", "%r is the automation user (beam_ssh_automation_user)" % name))
        if name in names:
            problems.append((label + ".name", "duplicate operator name %r (also beam_ssh_operators[%d])" % (name, names[name])))
            continue
        names[name] = index
        comment = operator.get("comment", "")
        if not isinstance(comment, str) or ":" in comment or "\n" in comment:
            problems.append((label + ".comment", "must be a string without ':' (it goes into the GECOS field), got %r" % (comment,)))
            comment = ""
        expires = None
        if operator.get("expires") is not None:
            expires = parse_date(operator["expires"])
            if expires is None:
                problems.append((label + ".expires", "must be a date YYYY-MM-DD, got %r" % (operator["expires"],)))
        groups = operator.get("groups")
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, (list, tuple)) or not groups:
            problems.append((label + ".groups", "is required: the inventory groups whose nodes this operator may reach ('all' for every node)"))
            groups = []
        for group in groups:
            if group != "all" and group not in known_groups:
                problems.append((label + ".groups", "unknown group %r (not a group of this inventory)" % (group,)))
        keys = operator.get("keys")
        if isinstance(keys, (str, dict)):
            keys = [keys]
        if not isinstance(keys, (list, tuple)) or not keys:
            problems.append((label + ".keys", "is required: a list of public keys ('ssh-ed25519 AAAA... comment')"))
            keys = []
        active = []
        for key_index, entry in enumerate(keys):
            key_label = "%s.keys[%d]" % (label, key_index)
            line = entry
            key_expires = expires
            if isinstance(entry, dict):
                for field in sorted(set(entry) - {"key", "expires"}):
                    problems.append((key_label + "." + str(field), "unknown field (fields: key, expires)"))
                line = entry.get("key")
                if entry.get("expires") is not None:
                    key_expires = parse_date(entry["expires"])
                    if key_expires is None:
                        problems.append((key_label + ".expires", "must be a date YYYY-MM-DD, got %r" % (entry["expires"],)))
            try:
                parsed = parse_key(line, allow_options=False)
            except KeyFormatError as error:
                problems.append((key_label, "malformed public key: %s" % error))
                continue
            owner = key_owners.get(parsed["fingerprint"])
            if owner is not None and owner != name:
                problems.append((key_label, "key %s is also declared for operator %r" % (parsed["fingerprint"], owner)))
                continue
            key_owners[parsed["fingerprint"]] = name
            if parsed["fingerprint"] in revoked:
                continue
            if _is_expired(key_expires, today):
                expired.append(parsed["fingerprint"])
                continue
            active.append(line.strip())
        allowed = any(group == "all" or group in member_of for group in groups)
        if allowed and active:
            here.append({"name": name, "comment": comment, "keys": active, "expires": expires.isoformat() if expires else None})
        else:
            absent.append(name)
    if automation is not None and automation in names:
        automation = None
    access = {
        "automation_user": automation,
        "automation_keys": automation_keys,
        "operators": here,
        "absent_operators": sorted(absent),
        "expired": sorted(set(expired)),
        "revoked": sorted(revoked),
    }
    return access, problems
