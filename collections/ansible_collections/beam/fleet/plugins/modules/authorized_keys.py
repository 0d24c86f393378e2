#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: authorized_keys
short_description: Make an account's authorized_keys hold exactly the given keys
version_added: "0.2.0"
description:
  - Writes C(~/.ssh/authorized_keys) of one account so that it holds exactly O(keys), in that
    order, and nothing else; a key present on the node but not given is removed. With no keys
    the file is removed (unless O(allow_empty=false), which refuses instead).
  - Also removes the account's C(~/.ssh/authorized_keys2) (sshd's second default
    C(AuthorizedKeysFile)) when the keys are kept in the default file, so that no key can hide there.
  - Creates C(~/.ssh) (0700) and the file (0600) owned by the account, and replaces the file
    atomically. A file outside C(~/.ssh) (O(path), for an sshd whose C(AuthorizedKeysFile) is
    elsewhere, such as C(/etc/ssh/keys/%u)) is owned by the account too, but its directory is
    left as it is (created root-owned, 0755, when missing), since other accounts' files share it.
  - Keys are compared by their SHA256 fingerprint, so a changed comment is rewritten but the
    result lists which keys were really added and removed.
  - Used by the beam.fleet.ssh_access role and beam.fleet.ssh_rotate; like
    M(ansible.posix.authorized_key) with C(exclusive=true) for a whole key list at once.
options:
  user:
    description: The account whose keys are managed; it must exist.
    type: str
    required: true
  keys:
    description: The public keys (C(type base64 [comment]), optionally with options in front) the account accepts.
    type: list
    elements: str
    default: []
  allow_empty:
    description:
      - With V(false), an empty O(keys) fails instead of removing every key; use it for the
        account automation connects as, so a mistake cannot lock it out.
    type: bool
    default: true
  path:
    description: The file to manage. Defaults to C(~/.ssh/authorized_keys) of O(user).
    type: path
  header:
    description: A comment line written at the top of the file.
    type: str
    default: "# Managed by beam.fleet (ssh_access): keys not declared in the inventory are removed."
extends_documentation_fragment:
  - beam.fleet.attributes
attributes:
  check_mode:
    support: full
    description: Reports what would change and changes nothing.
  diff_mode:
    support: full
    description: Shows the file before and after.
  platform:
    description: Runs on the node, as root (or as O(user)).
author:
  - beam-fleet contributors (@beam-fleet)
seealso:
  - module: beam.fleet.authorized_keys_info
  - module: ansible.posix.authorized_key
"""

EXAMPLES = r"""
- name: Only alice's two keys may log in as alice
  beam.fleet.authorized_keys:
    user: alice
    keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq0yBvBC0t4b8kq0aF7pX1P0m3OqL3g0f5PbQ9j1Jfo alice@laptop
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB8Z4Qm1p6PzgNf8r0r2c8v4bK3q6m3x1o8wq2nWQ9rT alice@phone

- name: The automation user never ends up with no key
  beam.fleet.authorized_keys:
    user: beam-ops
    keys: "{{ automation_keys }}"
    allow_empty: false

- name: A removed operator loses every key
  beam.fleet.authorized_keys:
    user: mallory
    keys: []
"""

RETURN = r"""
path:
  description: The managed file.
  returned: always
  type: str
  sample: /home/alice/.ssh/authorized_keys
fingerprints:
  description: SHA256 fingerprints of the keys the file holds afterwards, in order.
  returned: always
  type: list
  elements: str
  sample: ["SHA256:3bD0dQk6m5C9Yc7o1QpIuJvYy6Ww5GkV1d8tZ1Qw8sE"]
added:
  description: Fingerprints of keys that were not accepted before.
  returned: always
  type: list
  elements: str
removed:
  description: Fingerprints of keys that were accepted before and are not anymore (from either file).
  returned: always
  type: list
  elements: str
"""

import os
import pwd
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.beam.fleet.plugins.module_utils.ssh_keys import (
    KeyFormatError,
    key_line,
    parse_key,
    read_authorized_keys,
    read_text_file,
)


def plan(params, account):
    """What the file must hold and what changes: a dict; raises ValueError on bad input."""
    home = account.pw_dir
    path = params["path"] or os.path.join(home, ".ssh", "authorized_keys")
    wanted = []
    seen = set()
    for index, line in enumerate(params["keys"] or []):
        try:
            key = parse_key(line)
        except KeyFormatError as error:
            raise ValueError("keys[%d]: malformed public key: %s" % (index, error))
        if key["fingerprint"] not in seen:
            seen.add(key["fingerprint"])
            wanted.append(key)
    if not wanted and not params["allow_empty"]:
        raise ValueError(
            "refusing to leave %s with no authorized key (allow_empty=false): it would lock the "
            "account out" % params["user"]
        )
    before = read_text_file(path)
    # sshd's second default file goes too, when the keys live in their default place
    default_path = os.path.join(home, ".ssh", "authorized_keys")
    extra_path = os.path.join(home, ".ssh", "authorized_keys2") if path == default_path else None
    extra_before = read_text_file(extra_path) if extra_path else None
    before_keys = read_authorized_keys(before or "")[0] + read_authorized_keys(extra_before or "")[0]
    before_prints = [k["fingerprint"] for k in before_keys]
    after = None
    if wanted:
        lines = [params["header"]] if params["header"] else []
        lines.extend(key_line(k) for k in wanted)
        after = "\n".join(lines) + "\n"
    return {
        "path": path,
        # the account's own ~/.ssh is its to own (0700); a shared directory (AuthorizedKeysFile
        # /etc/ssh/keys/%u) stays as it is, or sshd would refuse the other accounts' keys
        "own_directory": os.path.dirname(path) == os.path.join(home, ".ssh"),
        "before": before,
        "after": after,
        "extra_path": extra_path if extra_before is not None else None,
        "extra_before": extra_before,
        "fingerprints": [k["fingerprint"] for k in wanted],
        "added": [k["fingerprint"] for k in wanted if k["fingerprint"] not in before_prints],
        "removed": sorted(set(p for p in before_prints if p not in seen)),
    }


def _write(path, content, uid, gid, own_directory):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        if own_directory:
            os.makedirs(directory, 0o700)
            os.chown(directory, uid, gid)
        else:
            os.makedirs(directory, 0o755)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".authorized_keys.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(content)
        os.chmod(temporary, 0o600)
        os.chown(temporary, uid, gid)
        os.rename(temporary, path)
    except Exception:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _attributes_ok(path, uid, own_directory):
    info = os.stat(path)
    if info.st_uid != uid or info.st_mode & 0o777 != 0o600:
        return False
    if not own_directory:
        return True
    directory = os.stat(os.path.dirname(path))
    return directory.st_uid == uid and directory.st_mode & 0o022 == 0


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            user=dict(type="str", required=True),
            keys=dict(type="list", elements="str", default=[], no_log=False),
            allow_empty=dict(type="bool", default=True),
            path=dict(type="path"),
            header=dict(type="str", default="# Managed by beam.fleet (ssh_access): keys not declared in the inventory are removed."),
        ),
        supports_check_mode=True,
    )
    try:
        account = pwd.getpwnam(module.params["user"])
    except KeyError:
        if module.check_mode:
            # the account is created by an earlier task, which check mode only announced
            module.exit_json(changed=True, path=module.params["path"] or "", fingerprints=[], added=[], removed=[],
                             msg="account %s does not exist yet" % module.params["user"])
        module.fail_json(msg="account %s does not exist" % module.params["user"])
    try:
        wanted = plan(module.params, account)
    except ValueError as error:
        module.fail_json(msg=to_native(error))
    path = wanted["path"]
    content_changed = wanted["before"] != wanted["after"]
    attributes_changed = (
        wanted["after"] is not None and wanted["before"] is not None and not _attributes_ok(path, account.pw_uid, wanted["own_directory"])
    )
    changed = content_changed or attributes_changed or wanted["extra_path"] is not None
    result = dict(
        changed=changed,
        path=path,
        fingerprints=wanted["fingerprints"],
        added=wanted["added"],
        removed=wanted["removed"],
    )
    if module._diff:
        before = wanted["before"] or ""
        if wanted["extra_before"] is not None:
            before += "# %s\n%s" % (wanted["extra_path"], wanted["extra_before"])
        result["diff"] = dict(before=before, after=wanted["after"] or "", before_header=path, after_header=path)
    if changed and not module.check_mode:
        try:
            if wanted["after"] is None:
                if wanted["before"] is not None:
                    os.unlink(path)
            elif content_changed:
                _write(path, wanted["after"], account.pw_uid, account.pw_gid, wanted["own_directory"])
            else:
                os.chown(path, account.pw_uid, account.pw_gid)
                os.chmod(path, 0o600)
                if wanted["own_directory"]:
                    directory = os.path.dirname(path)
                    os.chown(directory, account.pw_uid, account.pw_gid)
                    os.chmod(directory, 0o700)
            if wanted["extra_path"] is not None:
                os.unlink(wanted["extra_path"])
        except (IOError, OSError) as error:
            module.fail_json(msg="could not write %s: %s" % (path, to_native(error)), **result)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
