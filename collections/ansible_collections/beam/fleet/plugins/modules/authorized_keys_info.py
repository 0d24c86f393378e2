#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: authorized_keys_info
short_description: List which SSH keys can log in as which account on a node
version_added: "0.2.0"
description:
  - Reads the authorized_keys files of every account of the node (from the password database,
    so also accounts from NSS sources) and returns each key with its OpenSSH SHA256 fingerprint
    (computed in Python, the same as C(ssh-keygen -lf)), type, comment and options.
  - The files are those of sshd's C(AuthorizedKeysFile) (read from C(sshd -T) when O(authorized_keys_file)
    is not given, else sshd's default C(.ssh/authorized_keys .ssh/authorized_keys2)).
  - With O(known_keys), names each key's owner and flags every key the inventory does not declare
    for that account (RV(unknown)).
  - Reads only; never changes the node.
options:
  authorized_keys_file:
    description:
      - C(AuthorizedKeysFile) patterns (C(%h), C(%u), C(%%) expanded; relative to the home directory).
      - When empty, the node's C(sshd -T) is asked, and sshd's default is used when that fails.
    type: list
    elements: str
    default: []
  known_keys:
    description:
      - The keys the inventory declares, each with C(owner) (who the key belongs to), the key as C(key)
        (one public key), C(keys) (a list of them) or C(fingerprint), and optionally C(account) (the
        account it may log in as; any account when absent). An entry with no key declares nothing.
    type: list
    elements: dict
    default: []
  accounts:
    description: Only these accounts. Every account of the password database when empty.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - beam.fleet.attributes
  - beam.fleet.attributes.read_only
attributes:
  platform:
    description: Runs on the node; needs root to read every account's files.
author:
  - beam-fleet contributors (@beam-fleet)
seealso:
  - module: beam.fleet.authorized_keys
"""

EXAMPLES = r"""
- name: Which keys can log in where
  beam.fleet.authorized_keys_info:
    known_keys:
      - owner: alice
        key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq0yBvBC0t4b8kq0aF7pX1P0m3OqL3g0f5PbQ9j1Jfo alice@laptop
        account: alice
  register: keys_on_node

- name: Fail when a key nobody declared can log in
  ansible.builtin.assert:
    that: keys_on_node.unknown | length == 0
"""

RETURN = r"""
authorized_keys_file:
  description: The C(AuthorizedKeysFile) patterns used, and where they came from.
  returned: always
  type: dict
  sample: {patterns: [.ssh/authorized_keys, .ssh/authorized_keys2], source: sshd -T}
accounts:
  description: Per account with at least one key file, its keys in file order.
  returned: always
  type: dict
  sample:
    alice:
      home: /home/alice
      files: [/home/alice/.ssh/authorized_keys]
      keys:
        - fingerprint: "SHA256:3bD0dQk6m5C9Yc7o1QpIuJvYy6Ww5GkV1d8tZ1Qw8sE"
          type: ssh-ed25519
          comment: alice@laptop
          options: ""
          file: /home/alice/.ssh/authorized_keys
          line: 2
          owner: alice
          known: true
      problems: []
unknown:
  description: Keys that can log in but are not declared for that account in O(known_keys).
  returned: always
  type: list
  elements: dict
  sample: [{account: root, fingerprint: "SHA256:...", comment: planted@somewhere, file: /root/.ssh/authorized_keys}]
keys:
  description: How many keys were found in all.
  returned: always
  type: int
"""

import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.beam.fleet.plugins.module_utils.ssh_keys import (
    DEFAULT_AUTHORIZED_KEYS_FILES,
    FINGERPRINT_PATTERN,
    KeyFormatError,
    expand_authorized_keys_file,
    parse_key,
    parse_sshd_authorized_keys_file,
    read_authorized_keys,
    read_text_file,
)


def known_index(known_keys):
    """{fingerprint: [(owner, account or None)]} from the known_keys option; (index, problems)."""
    index = {}
    problems = []
    for number, entry in enumerate(known_keys or []):
        printed = []
        if entry.get("fingerprint"):
            printed.append(entry["fingerprint"])
        lines = list(entry.get("keys") or [])
        if entry.get("key"):
            lines.append(entry["key"])
        for line in lines:
            try:
                printed.append(parse_key(line)["fingerprint"])
            except KeyFormatError as error:
                problems.append("known_keys[%d]: %s" % (number, error))
        for value in printed:
            if not FINGERPRINT_PATTERN.match(value):
                problems.append("known_keys[%d]: %r is not a SHA256: fingerprint" % (number, value))
                continue
            index.setdefault(value, []).append((entry.get("owner") or "", entry.get("account")))
    return index, problems


def audit(accounts, patterns, known_keys, read=read_text_file):
    """The report for (name, home) accounts; read(path) returns a file's text or None."""
    index, problems = known_index(known_keys)
    report = {}
    unknown = []
    total = 0
    for name, home in accounts:
        files = []
        keys = []
        file_problems = []
        for pattern in patterns:
            path = expand_authorized_keys_file(pattern, name, home)
            if path in files:
                continue
            text = read(path)
            if text is None:
                continue
            files.append(path)
            found, bad = read_authorized_keys(text)
            file_problems.extend("%s: %s" % (path, p) for p in bad)
            for key in found:
                owners = index.get(key["fingerprint"], [])
                owner = owners[0][0] if owners else ""
                known = any(account in (None, "", name) for dummy, account in owners)
                entry = {
                    "fingerprint": key["fingerprint"],
                    "type": key["type"],
                    "comment": key["comment"],
                    "options": key["options"],
                    "file": path,
                    "line": key["line"],
                    "owner": owner,
                    "known": known,
                }
                keys.append(entry)
                total += 1
                if not known:
                    unknown.append({
                        "account": name,
                        "fingerprint": key["fingerprint"],
                        "comment": key["comment"],
                        "owner": owner,
                        "file": path,
                    })
        if files:
            report[name] = {"home": home, "files": files, "keys": keys, "problems": file_problems}
    return report, unknown, total, problems


def sshd_patterns(module):
    """AuthorizedKeysFile from the node's sshd, or sshd's default."""
    sshd = module.get_bin_path("sshd", opt_dirs=["/usr/sbin", "/sbin"])
    if sshd:
        rc, out, dummy = module.run_command([sshd, "-T"])
        if rc == 0:
            patterns = parse_sshd_authorized_keys_file(out)
            if patterns is not None:
                return patterns, "sshd -T"
    return list(DEFAULT_AUTHORIZED_KEYS_FILES), "default"


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            authorized_keys_file=dict(type="list", elements="str", default=[]),
            known_keys=dict(type="list", elements="dict", default=[], no_log=False),
            accounts=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    patterns = module.params["authorized_keys_file"]
    source = "option"
    if not patterns:
        patterns, source = sshd_patterns(module)
    wanted = set(module.params["accounts"])
    accounts = []
    seen = set()
    for entry in pwd.getpwall():
        if entry.pw_name in seen or (wanted and entry.pw_name not in wanted):
            continue
        seen.add(entry.pw_name)
        accounts.append((entry.pw_name, entry.pw_dir or "/"))
    report, unknown, total, problems = audit(accounts, patterns, module.params["known_keys"])
    if problems:
        module.fail_json(msg="invalid known_keys: %s" % "; ".join(problems))
    module.exit_json(
        changed=False,
        authorized_keys_file={"patterns": patterns, "source": source},
        accounts=report,
        unknown=unknown,
        keys=total,
    )


def main():
    run_module()


if __name__ == "__main__":
    main()
