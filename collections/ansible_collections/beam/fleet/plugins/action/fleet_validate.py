# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Controller side of beam.fleet.fleet_validate: reads the inventory, not the node.

Why an action plugin: the rules need every host's variables at once (duplicate ids, which
receiver an agent points at), which only the controller has; and a broken inventory must
fail before any connection is made.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.beam.fleet.plugins.module_utils.fleet import (
    NODE_VARIABLES,
    fleet_summary,
    fleet_warnings,
    validate_fleet,
)
from ansible_collections.beam.fleet.plugins.module_utils.ssh_access import SSH_VARIABLES, parse_date


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("hosts", "nodes", "groups", "today"))

    def _inventory_nodes(self, task_vars, hosts):
        hostvars = task_vars["hostvars"]
        nodes = []
        for host in hosts:
            variables = hostvars[host]
            if "beam_roles" not in variables:
                continue
            node = {"host": host, "group_names": list(variables.get("group_names", []))}
            for key in NODE_VARIABLES + SSH_VARIABLES:
                if key in variables:
                    node[key] = self._templar.template(variables[key])
            nodes.append(node)
        return nodes

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        wanted = args.get("hosts")
        if args.get("nodes") is not None:
            nodes = args["nodes"]
            missing = [index for index, node in enumerate(nodes) if not isinstance(node, dict) or not node.get("host")]
            if missing:
                result.update(failed=True, msg="nodes[%d]: host is required" % missing[0])
                return result
            nodes = [n for n in nodes if n.get("beam_roles") is not None and (not wanted or n["host"] in wanted)]
        else:
            nodes = self._inventory_nodes(task_vars, wanted or task_vars.get("groups", {}).get("all", []))
        groups = args.get("groups")
        if groups is None:
            groups = dict((k, list(v)) for k, v in task_vars.get("groups", {}).items())
        today = None
        if args.get("today") is not None:
            today = parse_date(args["today"])
            if today is None:
                result.update(failed=True, msg="today must be a date YYYY-MM-DD, got %r" % (args["today"],))
                return result
        records, problems = validate_fleet(nodes, groups=groups, today=today)
        # No ansible_facts: facts land in the fact cache and would outlive the inventory they
        # were checked from. Callers register the result (see the module's EXAMPLES).
        result.update(changed=False, problems=problems, nodes=records, fleet=fleet_summary(records))
        warnings = fleet_warnings(records) if not problems else []
        if warnings:
            result["warnings"] = warnings
        if problems:
            result["failed"] = True
            result["msg"] = "the inventory does not describe a valid fleet (%d problems):\n%s" % (
                len(problems),
                "\n".join(problems),
            )
        return result
