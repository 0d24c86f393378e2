#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: fleet_validate
short_description: Refuse an inventory that does not describe a valid beam fleet
version_added: "0.1.0"
description:
  - Checks every fleet node of the inventory (every host with C(beam_roles)) and fails
    with one line per problem, naming the host and the variable, before any node is touched.
  - Refuses duplicate node ids, unknown roles, unknown architectures, sensors of an unknown
    type or with invalid options (checked against the agent's built-in driver options), and
    agents that point at no receiver.
  - Refuses an invalid SSH access declaration (C(beam_ssh_operators), C(beam_ssh_automation_user),
    C(beam_ssh_automation_keys), C(beam_ssh_revoked_keys)) - an unknown group, a malformed
    public key, a bad expiry date, a duplicate operator name or a key declared for two
    operators - and resolves which operator keys may log in on each node (C(ssh) in RV(nodes)).
  - Resolves, for each agent, the receiver URL it pushes to and returns it as the fact
    C(beam_fleet_node) for the host the task runs for, so roles need not repeat the rules.
  - Runs on the controller (an action plugin reads the inventory); it does not connect to the node.
options:
  hosts:
    description:
      - The inventory hosts to check. Hosts without C(beam_roles) are not fleet nodes and are skipped.
      - Defaults to every host of the inventory (C(groups['all'])).
    type: list
    elements: str
  nodes:
    description:
      - Node descriptions to check instead of the inventory, each a mapping with C(host)
        and the node variables C(beam_node_id), C(beam_roles), C(beam_site), C(beam_arch),
        C(beam_tags), C(beam_sensors), C(beam_receiver), C(beam_receiver_url), C(beam_receiver_port).
      - May also hold C(group_names) and the SSH variables C(beam_ssh_automation_user),
        C(beam_ssh_automation_keys), C(beam_ssh_operators) and C(beam_ssh_revoked_keys).
      - Mainly for tests and for fleets described outside an Ansible inventory.
    type: list
    elements: dict
  groups:
    description:
      - The inventory's groups, each a list of its hosts, to check the operators' C(groups) against.
      - Defaults to the inventory's C(groups) in the action plugin, and to the nodes' C(group_names) otherwise.
    type: dict
  today:
    description:
      - The date (C(YYYY-MM-DD)) that decides which keys have expired. Defaults to today (UTC).
      - A key or operator with C(expires) may log in through that date and not after it.
    type: str
extends_documentation_fragment: []
attributes:
  check_mode:
    support: full
    description: Reads the inventory only; the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller.
author:
  - beam-fleet contributors (@beam-fleet)
notes:
  - Inventory variables are described in the collection's README and in docs/collection.md.
  - Sensors that name a plugin C(driver) are checked for their agent-level keys only; the
    agent role validates the rendered C(config.toml) with C(beam-agent check-config) on the node.
seealso:
  - module: beam.fleet.agent_health
"""

EXAMPLES = r"""
- name: Refuse an invalid inventory before touching any node
  beam.fleet.fleet_validate:

- name: Check a fleet described as data
  beam.fleet.fleet_validate:
    nodes:
      - host: rx1
        beam_roles: [receiver]
        beam_site: lab
        beam_arch: x86_64
      - host: pi1
        beam_roles: [agent]
        beam_site: lab
        beam_arch: aarch64
        beam_sensors:
          - name: geiger
            type: mightyohm
            port: /dev/ttyUSB0
"""

RETURN = r"""
problems:
  description: One line per problem, naming the host, the variable and what is wrong. Empty when the fleet is valid.
  returned: always
  type: list
  elements: str
  sample: ["pi2: beam_sensors[0] (geiger).type: unknown sensor type 'geigerr' (known: bme280, ...)"]
nodes:
  description: The checked nodes keyed by inventory host, with the resolved receiver of each agent.
  returned: always
  type: dict
  sample:
    pi1:
      node_id: pi1
      roles: [agent]
      site: lab
      arch: aarch64
      tags: {}
      sensors: []
      devices: {serial: [], i2c: []}
      receiver_host: rx1
      api_url: http://rx1:8000
      ssh:
        automation_user: beam-ops
        automation_keys: []
        operators: [{name: alice, comment: Alice, keys: ["ssh-ed25519 AAAA... alice@laptop"], expires: null}]
        absent_operators: [bob]
        expired: []
        revoked: []
fleet:
  description: Counts and groupings of the fleet.
  returned: always
  type: dict
  sample: {nodes: 2, agents: [pi1], receivers: [rx1], sites: {lab: [pi1, rx1]}, architectures: {}}
ansible_facts:
  description: Facts set for the host the task runs for (action plugin only).
  returned: when run for a fleet node
  type: dict
  contains:
    beam_fleet_node:
      description: This host's entry of RV(nodes).
      type: dict
      returned: when the host is a fleet node
    beam_fleet:
      description: Same as RV(fleet).
      type: dict
      returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.beam.fleet.plugins.module_utils.fleet import fleet_summary, parse_date, validate_fleet


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            hosts=dict(type="list", elements="str"),
            nodes=dict(type="list", elements="dict"),
            groups=dict(type="dict"),
            today=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    nodes = module.params["nodes"] or []
    missing = [index for index, node in enumerate(nodes) if not node.get("host")]
    if missing:
        module.fail_json(msg="nodes[%d]: host is required" % missing[0])
    wanted = module.params["hosts"]
    if wanted is not None:
        nodes = [node for node in nodes if node["host"] in wanted]
    nodes = [node for node in nodes if node.get("beam_roles") is not None]
    today = None
    if module.params["today"] is not None:
        today = parse_date(module.params["today"])
        if today is None:
            module.fail_json(msg="today must be a date YYYY-MM-DD, got %r" % module.params["today"])
    records, problems = validate_fleet(nodes, groups=module.params["groups"], today=today)
    result = dict(changed=False, problems=problems, nodes=records, fleet=fleet_summary(records))
    if problems:
        module.fail_json(
            msg="the inventory does not describe a valid fleet (%d problems):\n%s"
            % (len(problems), "\n".join(problems)),
            **result
        )
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
