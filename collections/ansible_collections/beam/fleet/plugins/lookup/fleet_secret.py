# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The fleet's secrets on the controller: one place that knows where they live and their shape.

Why a lookup: device tokens, operator tokens and dashboard passwords are created on the
controller the first time a play needs them and reused ever after; the roles, the status
report and the rollout gates all read them. Written out in each of those places, the
directory's default and each kind's length drifted apart; here they are said once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: fleet_secret
author: beam-fleet contributors (@beam-fleet)
version_added: "0.1.0"
short_description: A secret of the fleet, created on the controller once and reused
description:
  - Returns the secret stored at each term's path under the fleet's secrets directory,
    creating it (mode 0600, directories 0700) the first time it is asked for.
  - The directory is C(beam_fleet_secrets_dir), else C(<inventory dir>/.secrets).
  - The first path element says what the secret is, and so how it is made
    (letters and digits) - C(tokens/<device id>) (48 characters), C(operators/<name>) (48),
    C(users/<name>) (a dashboard password, 20), C(users/<name>.salt) (its hash's salt, 16),
    C(database/<server>) (the receivers' PostgreSQL password, 48) and C(session/<receiver>)
    (the session-signing key a pool of receivers shares, 64).
  - With O(path=true), returns the secret's absolute path instead and creates nothing
    (also for directories such as C(ssh)).
options:
  _terms:
    description: Paths relative to the secrets directory, such as C(tokens/pi-roof-01).
    required: true
    type: list
    elements: str
  path:
    description: Return the absolute path instead of the secret; create nothing.
    type: bool
    default: false
  secrets_dir:
    description:
      - The fleet's secrets directory on the controller.
      - Defaults to C(beam_fleet_secrets_dir), else C(<inventory dir>/.secrets) of the host the
        task runs for.
    type: path
notes:
  - Never print what it returns; tasks that use a secret set C(no_log).
"""

EXAMPLES = r"""
- name: Write the device token
  ansible.builtin.copy:
    content: "{{ lookup('beam.fleet.fleet_secret', 'tokens/' ~ beam_fleet_node.node_id) }}\n"
    dest: /etc/beam/agent.token
    mode: "0600"
  no_log: true

- name: Where the automation keys live
  ansible.builtin.debug:
    msg: "{{ lookup('beam.fleet.fleet_secret', 'ssh', path=true) }}"
"""

RETURN = r"""
_raw:
  description: One secret (or, with O(path=true), one absolute path) per term.
  type: list
  elements: str
"""

import os
import posixpath

from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader
from ansible.plugins.lookup import LookupBase

CHARS = ["ascii_letters", "digits"]
# What each kind of secret is made of: its first path element -> its length.
LENGTHS = {"tokens": 48, "operators": 48, "users": 20, "database": 48, "session": 64}
SALT_LENGTH = 16


def secret_length(relative):
    """The length of a new secret at `relative`, or None when no secret lives there."""
    kind = relative.split("/", 1)[0]
    if kind not in LENGTHS or "/" not in relative:
        return None
    if kind == "users" and relative.endswith(".salt"):
        return SALT_LENGTH
    return LENGTHS[kind]


def check_relative(term):
    """The normalised relative path of a term; refuses one that leaves the secrets directory."""
    if not isinstance(term, str) or not term.strip():
        raise AnsibleLookupError("beam.fleet.fleet_secret: a term must be a non-empty path, got %r" % (term,))
    normalised = posixpath.normpath(term)
    if normalised.startswith("/") or normalised == ".." or normalised.startswith("../"):
        raise AnsibleLookupError(
            "beam.fleet.fleet_secret: %r is outside the secrets directory; give a path relative to it" % (term,)
        )
    return normalised


class LookupModule(LookupBase):
    def _secrets_dir(self, variables):
        configured = self.get_option("secrets_dir")
        if not configured:
            configured = variables.get("beam_fleet_secrets_dir")
            if configured:
                configured = self._templar.template(configured)
        if not configured:
            inventory_dir = variables.get("inventory_dir")
            if not inventory_dir:
                raise AnsibleLookupError(
                    "beam.fleet.fleet_secret: set beam_fleet_secrets_dir: the host has no inventory directory"
                )
            configured = os.path.join(self._templar.template(inventory_dir), ".secrets")
        return os.path.abspath(os.path.expanduser(str(configured)))

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        root = self._secrets_dir(variables)
        want_path = self.get_option("path")
        results = []
        for term in terms:
            relative = check_relative(term)
            absolute = os.path.join(root, relative)
            if want_path:
                results.append(absolute)
                continue
            length = secret_length(relative)
            if length is None:
                raise AnsibleLookupError(
                    "beam.fleet.fleet_secret: %r is not a secret: use tokens/<device>, operators/<name>, "
                    "users/<name>, users/<name>.salt, database/<server> or session/<receiver> "
                    "(or path=true for a path)" % (term,)
                )
            # ansible.builtin.password creates the file 0600 on first use and reads it after.
            password = lookup_loader.get("ansible.builtin.password", loader=self._loader, templar=self._templar)
            results.extend(password.run([absolute], variables, length=length, chars=CHARS))
        return results
