#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: release
short_description: Switch, record, roll back and prune the versioned releases of a beam component on a node
version_added: "0.1.0"
description:
  - A component keeps each deployed version in its own directory, C(ROOT/releases/<version>/), and
    a link C(ROOT/current) to the active one. The roles install into C(releases/<version>/); this
    module makes a release current, records who did it and when in C(ROOT/release.json), rolls back
    to the previous release, and removes old releases.
  - The link is the truth about what is active; the record keeps the previous release and a
    history of the last 50 changes. A record that cannot be read is treated as missing, with a
    warning, so it never blocks a rollback. An install without a record (only C(current)) counts
    as having the link's release active and no previous one.
  - C(current) is replaced atomically (a new relative link, C(releases/<version>), renamed over it)
    and the record is written atomically, both under an exclusive lock on C(ROOT/.release.lock), so
    two plays on one node never interleave.
options:
  root:
    description: Directory holding C(releases/), C(current) and C(release.json), for example C(/opt/beam/agent).
    type: path
    required: true
  state:
    description:
      - C(active) makes O(version) the current release, then removes old releases (O(keep)).
      - C(rollback) makes the recorded previous release current again. Old releases are not removed,
        so the release rolled back from stays on disk for inspection.
      - C(query) only reports.
    type: str
    choices: [active, rollback, query]
    default: active
  version:
    description:
      - The release to make current, the name of a directory directly under C(ROOT/releases).
      - Required with O(state=active); not accepted with other states.
    type: str
  from_version:
    description:
      - With O(state=rollback), roll back only while this release is the active one; otherwise
        report no change. Makes a rollback in a rollout idempotent.
    type: str
  keep:
    description:
      - How many releases to keep on disk. The active and the previous release are always kept,
        whatever O(keep) says. C(0) never removes anything.
      - The least recently active releases go first (from the history); releases never activated
        count from their directory's modification time.
      - Only directories directly under C(ROOT/releases) are ever removed; links there are left alone.
    type: int
    default: 3
  complete_marker:
    description:
      - Path inside a release directory that must exist for the release to count as complete.
        Switching to an incomplete or missing release fails, naming the path, and changes nothing.
    type: str
    default: venv/bin/python
  actor:
    description:
      - Who made the change, as recorded. Roles pass the controller's C(user@host).
      - Defaults to the E(SUDO_USER) or E(USER) environment variable of the module, else C(unknown).
    type: str
  rollout:
    description:
      - The id of the rollout making the change (C(beam.fleet.rollout) passes C(<UTC time>-<component>-<version>),
        the name of its record on the controller), kept in the record as C(rollout); null for a change made outside a rollout.
      - The agent reports the record in its heartbeat, so the receiver's fleet page can show the last rollout.
    type: str
extends_documentation_fragment:
  - beam.fleet.attributes
attributes:
  check_mode:
    support: full
    description: Reports what would change, including the releases that would be removed, and touches nothing.
  diff_mode:
    support: full
    description: Shows the active release, the previous one and the releases on disk, before and after.
  platform:
    description: Runs on the node; needs write access to O(root).
author:
  - beam-fleet contributors (@beam-fleet)
notes:
  - O(state=rollback) without O(from_version) rolls back again on every run; pass O(from_version) in plays that may run twice.
  - After a rollback, the new previous release is the most recently active other release that is still
    complete and was not itself rolled back from, so rolling back twice never returns to the broken release.
seealso:
  - module: beam.fleet.agent_health
"""

EXAMPLES = r"""
- name: Make the installed release current
  beam.fleet.release:
    root: /opt/beam/agent
    version: "{{ beam_wheelhouse_version }}"
    actor: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
  register: agent_release
  notify: Restart beam-agent

- name: Roll the agent back if this rollout's release is still active
  beam.fleet.release:
    root: /opt/beam/agent
    state: rollback
    from_version: "{{ beam_wheelhouse_version }}"

- name: Show what is deployed
  beam.fleet.release:
    root: /opt/beam/receiver
    state: query
  register: receiver_release

- name: Keep every release
  beam.fleet.release:
    root: /opt/beam/agent
    version: 1.2.0
    keep: 0
"""

RETURN = r"""
active:
  description: The release C(current) points at afterwards, null when there is none.
  returned: always
  type: str
  sample: 1.2.0
previous:
  description: The release a rollback would return to, null when there is none.
  returned: always
  type: str
  sample: 1.1.0
changed_at:
  description: When the record last changed (ISO 8601, UTC), null without a record.
  returned: always
  type: str
  sample: "2026-02-15T19:06:00.123456Z"
changed_by:
  description: Who made the last recorded change (O(actor)).
  returned: always
  type: str
  sample: pi@laptop
rolled_back_from:
  description: The release the last rollback left, null unless the last change was a rollback.
  returned: always
  type: str
  sample: null
rollout:
  description: The rollout (O(rollout)) that made the last recorded change, null when it was made outside one.
  returned: always
  type: str
  sample: 20260215T190600Z-agent-1.2.0
history:
  description:
    - The last 50 changes, oldest first. C(from) is the release C(current) pointed at before.
  returned: always
  type: list
  elements: dict
  sample:
    - {version: 1.1.0, action: activate, at: "2026-02-01T10:00:00.000000Z", by: pi@laptop, from: 1.0.0}
    - {version: 1.2.0, action: activate, at: "2026-02-15T19:06:00.123456Z", by: pi@laptop, from: 1.1.0}
releases:
  description: The releases on disk afterwards, most recently active first.
  returned: always
  type: list
  elements: str
  sample: [1.2.0, 1.1.0, 1.0.0]
pruned:
  description: The releases removed, or that would be removed in check mode, least recently active first.
  returned: always
  type: list
  elements: str
  sample: [0.9.0]
switched:
  description: Whether C(current) moved (or would move in check mode).
  returned: always
  type: bool
  sample: true
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.beam.fleet.plugins.module_utils import release


def write_record(module, root, record):
    """Write ROOT/release.json (0644) through a temporary file and module.atomic_move."""
    path = os.path.join(root, release.RECORD_NAME)
    fd, temporary = tempfile.mkstemp(prefix=".%s." % release.RECORD_NAME, dir=root)
    module.add_cleanup_file(temporary)
    with os.fdopen(fd, "w") as handle:
        handle.write(release.dump_record(record))
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o644)
    module.atomic_move(temporary, path)
    os.chmod(path, 0o644)
    release.fsync_directory(root)


def default_actor():
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or "unknown"


def check_params(module):
    params = module.params
    state = params["state"]
    if state == "active" and params["version"] is None:
        module.fail_json(msg="state is active but all of the following are missing: version")
    if state != "active" and params["version"] is not None:
        module.fail_json(msg="version is only for state=active; a rollback goes to the recorded previous release")
    if state != "rollback" and params["from_version"] is not None:
        module.fail_json(msg="from_version is only for state=rollback")
    if params["version"] is not None:
        problem = release.version_error(params["version"])
        if problem:
            module.fail_json(msg="version %r %s" % (params["version"], problem))
    if params["keep"] < 0:
        module.fail_json(msg="keep must be 0 (never prune) or more, not %d" % params["keep"])
    problem = release.marker_error(params["complete_marker"])
    if problem:
        module.fail_json(msg="complete_marker %r %s" % (params["complete_marker"], problem))


def change(module, snapshot, at):
    """Plan (and unless in check mode, carry out) state=active or rollback; returns the result."""
    params = module.params
    root = params["root"]
    actor = params["actor"] or default_actor()
    before = release.describe(snapshot)
    if params["state"] == "active":
        record, switched = release.plan_activate(snapshot, params["version"], params["complete_marker"], actor, at, params["rollout"])
    else:
        record, switched = release.plan_rollback(
            snapshot, params["from_version"], params["complete_marker"], actor, at, params["rollout"]
        )
    if record is None:
        after = dict(before)
        history = before["history"]
        protected = set([before["active"], before["previous"]]) | snapshot["linked"]
    else:
        after = dict((key, record[key]) for key in ("active", "previous", "changed_at", "changed_by", "rolled_back_from", "rollout", "history"))
        history = record["history"]
        protected = set([record["active"], record["previous"]]) | snapshot["linked"]
    pruned = []
    if params["state"] == "active":
        pruned = release.plan_prune(history, snapshot["releases"], params["keep"], protected)
    remaining = dict((name, mtime) for name, mtime in snapshot["releases"].items() if name not in pruned)
    after["releases"] = release.order_releases(history, remaining)

    if not module.check_mode:
        if switched:
            release.switch_current(root, after["active"])
        if record is not None:
            write_record(module, root, record)
        removed = []
        for name in pruned:
            try:
                if release.remove_release(root, name):
                    removed.append(name)
            except (IOError, OSError) as exc:
                module.warn("could not remove release %s: %s" % (name, to_native(exc)))
        if removed != pruned:
            pruned = removed
            after["releases"] = release.order_releases(
                history, dict((name, mtime) for name, mtime in snapshot["releases"].items() if name not in removed)
            )

    result = dict(after, changed=bool(switched or record is not None or pruned), switched=switched, pruned=pruned)
    if module._diff:
        result["diff"] = {
            "before_header": os.path.join(root, release.RECORD_NAME),
            "after_header": os.path.join(root, release.RECORD_NAME),
            "before": release.diff_text(before["active"], before["previous"], before["releases"]),
            "after": release.diff_text(after["active"], after["previous"], after["releases"]),
        }
    return result


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            state=dict(type="str", choices=["active", "rollback", "query"], default="active"),
            version=dict(type="str"),
            from_version=dict(type="str"),
            keep=dict(type="int", default=3),
            complete_marker=dict(type="str", default="venv/bin/python"),
            actor=dict(type="str"),
            rollout=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    check_params(module)
    root = module.params["root"]

    if module.params["state"] == "query":
        snapshot = release.inspect(root)
        if snapshot["warning"]:
            module.warn(snapshot["warning"])
        module.exit_json(changed=False, switched=False, pruned=[], **release.describe(snapshot))

    at = release.utc_timestamp()
    try:
        if module.check_mode or not os.path.isdir(root):
            snapshot = release.inspect(root)
            if snapshot["warning"]:
                module.warn(snapshot["warning"])
            result = change(module, snapshot, at)
        else:
            with release.locked(root):
                snapshot = release.inspect(root)
                if snapshot["warning"]:
                    module.warn(snapshot["warning"])
                result = change(module, snapshot, at)
    except release.ReleaseError as exc:
        module.fail_json(msg=to_native(exc))
    except (IOError, OSError) as exc:
        module.fail_json(msg="%s: %s" % (root, to_native(exc)))
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
