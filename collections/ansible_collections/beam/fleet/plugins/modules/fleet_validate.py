#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documentation only: the action plugin plugins/action/fleet_validate.py does the work on the
# controller, where every host's variables are (the rules are in module_utils/fleet.py).

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
  - Receivers serve HTTPS (nginx, the fleet CA) unless the inventory sets C(beam_receiver_tls=false);
    every plain-HTTP hop (such a receiver, an agent pushing to an C(http://) URL) is reported as
    a warning. A C(http://) C(beam_receiver_url) for a receiver that serves HTTPS is refused.
  - Resolves, for each agent, the receiver URL it pushes to, and returns every node's checked
    record in RV(nodes), so roles need not repeat the rules.
  - Runs on the controller (an action plugin reads the inventory); it does not connect to the node.
    Run it once per playbook run (C(run_once)) and register its result; the private task file
    C(beam.fleet._common) C(validate.yml) does so and sets each node's record as C(beam_fleet_node).
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
        C(beam_tags), C(beam_sensors), C(beam_receiver), C(beam_receiver_url), C(beam_receiver_port),
        C(beam_receiver_tls).
      - May also hold C(group_names) and the SSH variables C(beam_ssh_automation_user),
        C(beam_ssh_automation_keys), C(beam_ssh_operators) and C(beam_ssh_revoked_keys).
      - For fleets described outside an Ansible inventory, and for tests.
    type: list
    elements: dict
  groups:
    description:
      - The inventory's groups, each a list of its hosts, to check the operators' C(groups) against.
      - Defaults to the inventory's C(groups); the nodes' C(group_names) are always added.
    type: dict
  today:
    description:
      - The date (C(YYYY-MM-DD)) that decides which keys have expired. Defaults to today (UTC).
      - A key or operator with C(expires) may log in through that date and not after it.
    type: str
extends_documentation_fragment:
  - beam.fleet.attributes
  - beam.fleet.attributes.read_only
attributes:
  platform:
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
- name: Refuse an invalid inventory before touching any node, once for the whole play
  beam.fleet.fleet_validate:
  register: beam_fleet_validation
  run_once: true

- name: Give each node its checked record
  ansible.builtin.set_fact:
    beam_fleet_node: "{{ beam_fleet_validation.nodes[inventory_hostname] }}"
  when: inventory_hostname in beam_fleet_validation.nodes

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
      api_url: https://rx1
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
"""
