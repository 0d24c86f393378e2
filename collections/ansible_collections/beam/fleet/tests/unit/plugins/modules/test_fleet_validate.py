"""fleet_validate, the action plugin a playbook runs: on nodes given as data and on inventories."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from conftest import REPOSITORY, ansible

NODES_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - beam.fleet.fleet_validate:
        nodes: {nodes}
      register: validation
      ignore_errors: true
    - ansible.builtin.copy:
        content: "{{{{ validation | to_json }}}}"
        dest: {out}
"""


def validate_nodes(tmp_path: Path, nodes: list) -> dict:
    """The action plugin's result for nodes given as data (no inventory), from a real run."""
    out = tmp_path / "result.json"
    (tmp_path / "nodes.yml").write_text(NODES_PLAY.format(nodes=json.dumps(nodes), out=out))
    run = ansible(
        tmp_path, "ansible-playbook", "-i", "localhost,", "-c", "local",
        "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "nodes.yml"),
    )
    assert out.exists(), run.stdout[-3000:] + run.stderr[-2000:]
    return json.loads(out.read_text())


def test_nodes_given_as_data_are_accepted(tmp_path):
    result = validate_nodes(tmp_path, [
        {"host": "rx", "beam_roles": ["receiver"], "beam_site": "lab", "beam_arch": "x86_64"},
        {"host": "pi", "beam_roles": ["agent"], "beam_site": "lab", "beam_arch": "aarch64"},
        {"host": "other"},  # not a fleet node: no beam_roles
    ])
    assert not result.get("failed")
    assert sorted(result["nodes"]) == ["pi", "rx"]
    assert result["nodes"]["pi"]["api_url"] == "https://rx"
    assert result["fleet"]["receivers"] == ["rx"]
    assert "ansible_facts" not in result  # never cached: a stale record cannot outlive its inventory


def test_nodes_given_as_data_are_refused_with_every_problem(tmp_path):
    result = validate_nodes(tmp_path, [
        {"host": "a", "beam_roles": ["agent"], "beam_site": "lab", "beam_arch": "x86_64"},
        {"host": "b", "beam_roles": ["agnet"], "beam_site": "lab", "beam_arch": "x86_64"},
    ])
    assert result["failed"]
    assert "(2 problems)" in result["msg"]
    assert result["problems"][0].startswith("a: beam_receiver: agent points at no receiver")
    assert result["problems"][1] == "b: beam_roles: unknown role 'agnet' (known: agent, receiver, database)"


def test_a_node_without_host_is_refused(tmp_path):
    result = validate_nodes(tmp_path, [{"beam_roles": ["agent"]}])
    assert result["failed"]
    assert result["msg"] == "nodes[0]: host is required"


PLAY = """
- hosts: beam_fleet
  gather_facts: false
  tasks:
    - beam.fleet.fleet_validate:
"""


def write_inventory(tmp_path: Path, fleet: str) -> Path:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "fleet.yml").write_text(textwrap.dedent(fleet))
    (inventory / "groups.yml").write_text((REPOSITORY / "inventories/lab/groups.yml").read_text())
    (tmp_path / "play.yml").write_text(PLAY)
    return inventory


def test_playbook_refuses_a_broken_inventory(tmp_path):
    inventory = write_inventory(tmp_path, """
        all:
          vars: {ansible_connection: local, beam_site: lab, beam_arch: x86_64}
          hosts:
            pi1: {beam_roles: [agent], beam_node_id: twin}
            pi2: {beam_roles: [agent], beam_node_id: twin}
            pi3:
              beam_roles: [agent, gateway]
              beam_sensors:
                - {name: g, type: geigerr}
                - {name: t, type: bme280, address: 0x42}
    """)
    run = ansible(tmp_path, "ansible-playbook", "-i", str(inventory), str(tmp_path / "play.yml"))
    assert run.returncode != 0
    out = run.stdout
    assert "pi1: beam_node_id: duplicate node id 'twin' (also used by pi2)" in out
    assert "pi3: beam_roles: unknown role 'gateway'" in out
    assert "pi3: beam_sensors[0] (g).type: unknown sensor type 'geigerr'" in out
    assert "pi3: beam_sensors[1] (t).address: must be one of 118, 119, got 66" in out
    assert "pi1: beam_receiver: agent points at no receiver" in out


def test_duplicate_host_in_one_file_is_an_error(tmp_path):
    inventory = write_inventory(tmp_path, """
        all:
          vars: {ansible_connection: local, beam_site: lab, beam_arch: x86_64}
          hosts:
            rx: {beam_roles: [receiver]}
            pi1: {beam_roles: [agent]}
            pi1: {beam_roles: [agent], beam_tags: {room: roof}}
    """)
    run = ansible(tmp_path, "ansible-inventory", "-i", str(inventory), "--list")
    assert "pi1" in run.stderr and "uplicate" in run.stderr, run.stderr
    assert run.returncode != 0


def test_lab_inventory_is_valid_and_grouped_by_role_and_site(tmp_path):
    graph = ansible(tmp_path, "ansible-inventory", "-i", "inventories/lab", "--graph")
    assert graph.returncode == 0, graph.stderr
    for group in ("@role_agent:", "@role_receiver:", "@site_lab:", "@beam_fleet:"):
        assert group in graph.stdout
    (tmp_path / "play.yml").write_text(PLAY)
    run = ansible(tmp_path, "ansible-playbook", "-i", "inventories/lab", str(tmp_path / "play.yml"))
    assert run.returncode == 0, run.stdout[-2000:]
    assert "ok=1" in run.stdout


def test_example_inventory_is_valid(tmp_path):
    (tmp_path / "play.yml").write_text(PLAY)
    run = ansible(tmp_path, "ansible-playbook", "-i", "inventories/example", str(tmp_path / "play.yml"))
    assert run.returncode == 0, run.stdout[-3000:]
