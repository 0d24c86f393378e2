# -*- coding: utf-8 -*-
# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Mitogen's linear strategy under a name this collection owns: beam.fleet.mitogen_linear.

Why here: Mitogen ships its strategy plugins inside its Python package, so naming them in
ansible.cfg needs that package's path in site-packages, which differs per machine and Python
version. Installed with pip (molecule/requirements.txt puts it in .venv-ansible), the
package imports from anywhere; this file only gives its strategy a stable name. Opt in per
run with ANSIBLE_STRATEGY=beam.fleet.mitogen_linear (docs/collection.md, "Faster runs").
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: mitogen_linear
short_description: Mitogen's linear strategy, for faster runs over SSH
description:
  - Runs tasks like C(ansible.builtin.linear), but each node keeps one Python interpreter
    for the whole run, reached over the SSH connection, instead of a new interpreter and a
    new SSH command per task.
  - Needs the C(mitogen) Python package in Ansible's own environment. Without it the run
    stops before the first task, saying so.
  - Only connections named C(ssh) (the default), C(local) and a few others are taken over
    by Mitogen; others, such as C(community.docker.docker), run as under C(linear).
author:
  - beam-fleet contributors (@beam-fleet)
"""

from ansible.errors import AnsibleError

try:
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError as error:
    MITOGEN_IMPORT_ERROR = error
    from ansible.plugins.strategy.linear import StrategyModule as _Linear

    class StrategyModule(_Linear):
        def __init__(self, *args, **kwargs):
            raise AnsibleError(
                "strategy beam.fleet.mitogen_linear needs the mitogen package in Ansible's "
                "Python (pip install mitogen; molecule/scripts/ansible-venv.sh installs it "
                "into .venv-ansible): %s" % MITOGEN_IMPORT_ERROR
            )

else:
    _Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)

    class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Base):
        pass
