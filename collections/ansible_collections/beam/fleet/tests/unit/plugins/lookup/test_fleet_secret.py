"""beam.fleet.fleet_secret in real playbook runs: where secrets live, their shape, what it refuses."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from conftest import ansible

PLAY = """
- hosts: node
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        content: "{{{{ {expression} | to_json }}}}"
        dest: {out}
      delegate_to: localhost
"""


def lookup(tmp_path: Path, expression: str, *extra: str) -> subprocess.CompletedProcess:
    """Run one play that writes `expression` as JSON to tmp_path/out.json; the run itself."""
    inventory = tmp_path / "inventory"
    inventory.mkdir(exist_ok=True)
    (inventory / "hosts.ini").write_text(
        f"node ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    (tmp_path / "play.yml").write_text(PLAY.format(expression=expression, out=tmp_path / "out.json"))
    return ansible(tmp_path, "ansible-playbook", "-i", str(inventory), str(tmp_path / "play.yml"), *extra)


def result(tmp_path: Path):
    return json.loads((tmp_path / "out.json").read_text())


def test_a_token_is_created_once_under_the_inventory_and_kept_private(tmp_path):
    run = lookup(tmp_path, "lookup('beam.fleet.fleet_secret', 'tokens/pi-01')")
    assert run.returncode == 0, run.stdout[-3000:]
    token = result(tmp_path)
    secret = tmp_path / "inventory" / ".secrets" / "tokens" / "pi-01"
    assert secret.read_text().strip() == token
    assert len(token) == 48 and token.isalnum()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    again = lookup(tmp_path, "lookup('beam.fleet.fleet_secret', 'tokens/pi-01')")
    assert again.returncode == 0 and result(tmp_path) == token


def test_each_kind_has_its_length_and_the_fleet_setting_moves_the_directory(tmp_path):
    elsewhere = tmp_path / "vault"
    expression = (
        "[lookup('beam.fleet.fleet_secret', 'operators/ops'), lookup('beam.fleet.fleet_secret', 'users/admin'),"
        " lookup('beam.fleet.fleet_secret', 'users/admin.salt')]"
    )
    run = lookup(tmp_path, expression, "-e", f"beam_fleet_secrets_dir={elsewhere}")
    assert run.returncode == 0, run.stdout[-3000:]
    operator, password, salt = result(tmp_path)
    assert (len(operator), len(password), len(salt)) == (48, 20, 16)
    assert (elsewhere / "users" / "admin.salt").read_text().strip() == salt
    assert not (tmp_path / "inventory" / ".secrets").exists()


def test_path_names_without_creating(tmp_path):
    run = lookup(tmp_path, "lookup('beam.fleet.fleet_secret', 'ssh', path=true)")
    assert run.returncode == 0, run.stdout[-3000:]
    assert result(tmp_path) == str(tmp_path / "inventory" / ".secrets" / "ssh")
    assert not (tmp_path / "inventory" / ".secrets").exists()


def test_what_is_not_a_secret_is_refused_by_name(tmp_path):
    run = lookup(tmp_path, "lookup('beam.fleet.fleet_secret', 'passwords/x')")
    assert run.returncode != 0
    assert "'passwords/x' is not a secret: use tokens/<device>" in run.stdout
    run = lookup(tmp_path, "lookup('beam.fleet.fleet_secret', '../../etc/x')")
    assert run.returncode != 0
    assert "'../../etc/x' is outside the secrets directory" in run.stdout
    assert not (tmp_path / "out.json").exists()
