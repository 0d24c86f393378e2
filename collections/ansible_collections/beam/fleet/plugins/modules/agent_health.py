#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: agent_health
short_description: Read a beam agent's health on its node, for use as a deploy gate
version_added: "0.1.0"
description:
  - Runs C(beam-agent status --json) on the node and judges the result the same way for every
    caller. Is the agent pushing to its receiver, how deep is its queue, are its sensors reading?
  - Returns the numbers (queue depth, last push, per-sensor errors) and C(healthy) with the
    reasons when it is not, so a play can wait with C(until) and report why.
  - Reads only; never changes the node.
options:
  config:
    description: Path of the agent's C(config.toml) on the node.
    type: path
    default: /etc/beam/agent.toml
  executable:
    description: Path of the C(beam-agent) program on the node.
    type: path
    default: /opt/beam/agent/current/venv/bin/beam-agent
  require_push:
    description: Unhealthy unless the agent has pushed to its receiver successfully within O(max_push_age).
    type: bool
    default: true
  max_push_age:
    description: Seconds since the last successful push beyond which the agent is unhealthy.
    type: int
    default: 120
  pushed_since:
    description:
      - Unhealthy unless the last successful push happened at or after this moment (ISO 8601
        with a time zone, as the node's clock reads it, e.g. from C(date -u +%Y-%m-%dT%H:%M:%SZ)).
      - A rollout's gate sets it to the moment before the restart, so only a push by the new
        process counts.
    type: str
  max_queue_depth:
    description: Unhealthy when more readings than this wait to be pushed. Not checked when omitted.
    type: int
  max_dead_letters:
    description: Unhealthy when more readings than this were parked as rejected. Not checked when omitted.
    type: int
  max_consecutive_errors:
    description: Unhealthy when a sensor failed this many reads in a row.
    type: int
    default: 3
  require_readings:
    description: Unhealthy while a sensor has produced no reading at all.
    type: bool
    default: true
  expect_sensors:
    description: Sensor names that must appear in the agent's status (normally the inventory's sensors).
    type: list
    elements: str
    default: []
  fail_on_unhealthy:
    description:
      - Fail the task when the agent is unhealthy. Leave false to use RV(healthy) with C(until).
    type: bool
    default: false
extends_documentation_fragment:
  - beam.fleet.attributes
  - beam.fleet.attributes.read_only
attributes:
  platform:
    description: Runs on the agent's node.
author:
  - beam-fleet contributors (@beam-fleet)
seealso:
  - module: beam.fleet.fleet_validate
"""

EXAMPLES = r"""
- name: Wait until the agent pushes and every sensor reads
  beam.fleet.agent_health:
    expect_sensors: "{{ beam_sensors | map(attribute='name') | list }}"
  register: health
  until: health.healthy
  retries: 30
  delay: 4

- name: Gate a batch on a short queue
  beam.fleet.agent_health:
    max_queue_depth: 1000
    fail_on_unhealthy: true
"""

RETURN = r"""
healthy:
  description: Whether every rule held.
  returned: always
  type: bool
  sample: true
reasons:
  description: One line per rule that did not hold.
  returned: always
  type: list
  elements: str
  sample: ["sensor geiger: 5 errors in a row (last: /dev/ttyUSB0: no such device)"]
queue_depth:
  description: Readings waiting to be pushed.
  returned: when the agent has a state directory
  type: int
  sample: 12
oldest_queued_age_s:
  description: Age in seconds of the oldest waiting reading, null when none waits.
  returned: when the agent has a state directory
  type: float
  sample: 1.5
pushed:
  description: Readings the receiver acknowledged since the state directory was created.
  returned: when the agent has a state directory
  type: int
  sample: 5120
dropped:
  description: Readings lost to the queue bound.
  returned: when the agent has a state directory
  type: int
  sample: 0
dead_letters:
  description: Readings parked because the receiver rejected them.
  returned: when the agent has a state directory
  type: int
  sample: 0
last_push:
  description: The last push attempt (C(ok), C(detail), C(at)).
  returned: when the agent has a state directory
  type: dict
  sample: {ok: true, detail: "200: 500 accepted", at: "2026-02-15T19:06:00.123Z"}
last_success_at:
  description: When the receiver last acknowledged a batch (RFC 3339), null if never.
  returned: when the agent has a state directory
  type: str
  sample: "2026-02-15T19:06:00.123Z"
last_push_age_s:
  description: Seconds since RV(last_success_at).
  returned: when the agent has a state directory
  type: float
  sample: 0.8
sensors:
  description: Per sensor, readings, errors, consecutive errors, last read and last error.
  returned: when the agent has a state directory
  type: dict
  sample: {geiger: {readings: 120, errors: 0, consecutive_errors: 0, last_read: "2026-02-15T19:06:00.123Z", last_error: null}}
status:
  description: The agent's own C(status --json) document, unchanged.
  returned: when the agent has a state directory
  type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.beam.fleet.plugins.module_utils.agent_status import evaluate, parse_timestamp


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type="path", default="/etc/beam/agent.toml"),
            executable=dict(type="path", default="/opt/beam/agent/current/venv/bin/beam-agent"),
            require_push=dict(type="bool", default=True),
            max_push_age=dict(type="int", default=120),
            pushed_since=dict(type="str"),
            max_queue_depth=dict(type="int"),
            max_dead_letters=dict(type="int"),
            max_consecutive_errors=dict(type="int", default=3),
            require_readings=dict(type="bool", default=True),
            expect_sensors=dict(type="list", elements="str", default=[]),
            fail_on_unhealthy=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    pushed_since = None
    if params["pushed_since"]:
        pushed_since = parse_timestamp(params["pushed_since"])
        if pushed_since is None:
            module.fail_json(msg="pushed_since: %r is not an ISO 8601 time with a time zone" % params["pushed_since"])
    command = [params["executable"], "status", "--json", "--config", params["config"]]
    if not os.access(params["executable"], os.X_OK):
        rc, stdout, stderr = None, "", ""
        reason = "beam-agent is not installed at %s" % params["executable"]
    else:
        rc, stdout, stderr = module.run_command(command)
        reason = "beam-agent status failed (exit %d): %s" % (rc, (stderr or stdout).strip())
    if rc != 0:
        result = dict(changed=False, healthy=False, reasons=[reason])
        if params["fail_on_unhealthy"]:
            module.fail_json(msg=reason, **result)
        module.exit_json(**result)
    try:
        status = json.loads(stdout)
    except ValueError as exc:
        module.fail_json(msg="beam-agent status --json printed no JSON: %s" % exc, stdout=stdout)
    healthy, reasons, summary = evaluate(
        status,
        require_push=params["require_push"],
        max_push_age_s=params["max_push_age"],
        max_queue_depth=params["max_queue_depth"],
        max_dead_letters=params["max_dead_letters"],
        max_consecutive_errors=params["max_consecutive_errors"],
        require_readings=params["require_readings"],
        expect_sensors=params["expect_sensors"],
        pushed_since=pushed_since,
    )
    result = dict(changed=False, healthy=healthy, reasons=reasons, status=status, **summary)
    if not healthy and params["fail_on_unhealthy"]:
        module.fail_json(msg="agent is unhealthy: " + "; ".join(reasons), **result)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
