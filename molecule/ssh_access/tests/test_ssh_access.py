"""SSH access over real SSH: who can log in where, expiry, revocation, audit, rotation.

Converge applied beam.fleet.access through the docker connection. Every test here
reaches the containers at their addresses on the scenario's own docker network with the
`ssh` client of this machine, and runs the playbooks with an inventory that makes Ansible
connect over SSH as the automation user (the molecule inventory plus an override file).
The tests run in file order: each one leaves the nodes as the next one expects.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

NODES = ["beam-mol-ssh-1", "beam-mol-ssh-2"]
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
KEYS = EPHEMERAL / "keys"
HOSTS = EPHEMERAL / "secrets" / "ssh" / "hosts"
KNOWN_HOSTS = EPHEMERAL / "known_hosts"
SSH_INVENTORY = EPHEMERAL / "ssh-inventory.yml"
AUTOMATION = "beam-ops"
SSH_OPTIONS = [
    "-o", "ControlPath=none", "-o", "ControlMaster=no", "-o", "IdentitiesOnly=yes",
    "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
    "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes",
]


def docker(node: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", node, "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, check=False)


def address(node: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", node],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert out, f"{node} has no address"
    return out


def ssh(node: str, user: str, key: Path | None, command: str = "true", *extra: str) -> subprocess.CompletedProcess:
    """A fresh ssh login (no shared connection, only this key); returns the finished process."""
    args = ["ssh", *SSH_OPTIONS, *extra, "-l", user]
    if key is not None:
        args += ["-i", str(key)]
    return subprocess.run([*args, address(node), command], capture_output=True, text=True, timeout=60, check=False)


def logs_in(node: str, user: str, key: Path) -> bool:
    result = ssh(node, user, key, "id -un")
    return result.returncode == 0 and result.stdout.strip() == user


def automation_key(node: str) -> Path:
    return HOSTS / node / "id_ed25519"


def generation(node: str) -> str:
    return os.readlink(HOSTS / node)


def playbook(name: str, *extra: str) -> subprocess.CompletedProcess:
    """ansible-playbook over real SSH as the automation user."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(PROJECT / "collections"),
        ANSIBLE_ROLES_PATH=str(PROJECT / "collections/ansible_collections/beam/fleet/roles"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    run = subprocess.run(
        ["ansible-playbook", "-i", str(EPHEMERAL / "inventory"), "-i", str(SSH_INVENTORY),
         "beam.fleet." + name.removesuffix(".yml"), *extra],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    print(run.stdout[-6000:], run.stderr[-3000:])
    return run


def recap_changed(stdout: str) -> dict[str, int]:
    changed = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[0] in NODES and parts[1] == ":":
            changed[parts[0]] = int(parts[3].split("=")[1])
    return changed


def public(name: str) -> str:
    return (KEYS / f"{name}.pub").read_text().strip()


def fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


@pytest.fixture(scope="module", autouse=True)
def ssh_inventory():
    """known_hosts from the nodes themselves, and an inventory that reaches them over SSH."""
    lines = []
    for node in NODES:
        scan = subprocess.run(["ssh-keyscan", "-T", "10", "-t", "ed25519", address(node)],
                              capture_output=True, text=True, timeout=30, check=False)
        assert scan.stdout.strip(), f"no host key from {node}: {scan.stderr}"
        lines.append(scan.stdout.strip())
    KNOWN_HOSTS.write_text("\n".join(lines) + "\n")
    known = ["-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes"]
    hosts = {
        node: {
            "ansible_host": address(node),
            "ansible_connection": "ansible.builtin.ssh",
            "ansible_user": AUTOMATION,
            "ansible_become": True,
            "ansible_ssh_private_key_file": str(automation_key(node)),
            "ansible_ssh_common_args": " ".join(known),
        }
        for node in NODES
    }
    SSH_INVENTORY.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    yield


def test_automation_user_logs_in_with_its_key_and_has_sudo():
    for node in NODES:
        result = ssh(node, AUTOMATION, automation_key(node), "sudo -n id -un")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "root"
        assert docker(node, "visudo -cf /etc/sudoers.d/beam-automation").returncode == 0


def test_sshd_refuses_password_and_root_login():
    for node in NODES:
        effective = docker(node, "sshd -T -C user=root,host=x,addr=127.0.0.1").stdout.splitlines()
        for setting in ("passwordauthentication no", "kbdinteractiveauthentication no", "permitrootlogin no"):
            assert setting in effective
        # a password login: the server offers nothing but public keys
        password = ssh(node, "alice", None, "true", "-o", "PubkeyAuthentication=no",
                       "-o", "PreferredAuthentications=password,keyboard-interactive")
        assert password.returncode == 255
        assert "Permission denied (publickey)" in password.stderr
        # root with a key it authorizes (planted by hand): still refused
        planted = public("planted")
        assert docker(node, f"mkdir -p /root/.ssh && echo '{planted}' >> /root/.ssh/authorized_keys").returncode == 0
        root = ssh(node, "root", KEYS / "planted")
        assert root.returncode == 255 and "Permission denied" in root.stderr


def test_operators_log_in_only_where_their_groups_allow():
    for node in NODES:
        assert logs_in(node, "alice", KEYS / "alice_a")
        assert logs_in(node, "alice", KEYS / "alice_b")
        assert "(beam-fleet operator)" in docker(node, "getent passwd alice").stdout
    assert logs_in("beam-mol-ssh-2", "bob", KEYS / "bob")
    assert not logs_in("beam-mol-ssh-1", "bob", KEYS / "bob")
    assert docker("beam-mol-ssh-1", "getent passwd bob").returncode == 2  # no account outside site_south


def test_an_expired_key_is_removed():
    for node in NODES:
        assert not logs_in(node, "carol", KEYS / "carol")  # expired 2020-01-01 at converge
    run = playbook("access.yml", "-e", "beam_test_carol_expires=2099-12-31")
    assert run.returncode == 0
    for node in NODES:
        assert logs_in(node, "carol", KEYS / "carol")
    run = playbook("access.yml", "-e", "beam_test_carol_expires=2021-06-30")
    assert run.returncode == 0
    for node in NODES:
        assert not logs_in(node, "carol", KEYS / "carol")
        assert docker(node, "test -e ~carol/.ssh/authorized_keys").returncode == 1


def test_a_revoked_key_no_longer_logs_in():
    revoked = json.dumps({"beam_test_revoked": [fingerprint(KEYS / "alice_b.pub")]})
    run = playbook("access.yml", "-e", revoked)
    assert run.returncode == 0
    for node in NODES:
        assert not logs_in(node, "alice", KEYS / "alice_b")
        assert logs_in(node, "alice", KEYS / "alice_a")


def test_an_operator_removed_from_the_inventory_loses_its_keys(tmp_path):
    operators = {"beam_ssh_operators": [
        {"name": "alice", "groups": ["beam_fleet"], "keys": [public("alice_a"), public("alice_b")]},
    ]}
    extra = tmp_path / "without-bob.json"
    extra.write_text(json.dumps(operators))
    run = playbook("access.yml", "-e", f"@{extra}")
    assert run.returncode == 0
    assert not logs_in("beam-mol-ssh-2", "bob", KEYS / "bob")
    assert docker("beam-mol-ssh-2", "getent passwd bob").returncode == 0  # the account stays, keyless
    assert docker("beam-mol-ssh-2", "test -e ~bob/.ssh/authorized_keys").returncode == 1
    # back to the inventory as declared: bob may log in again
    assert playbook("access.yml").returncode == 0
    assert logs_in("beam-mol-ssh-2", "bob", KEYS / "bob")


def test_the_audit_names_every_key_and_flags_one_planted_by_hand(tmp_path):
    planted = public("planted")
    assert docker("beam-mol-ssh-1", f"echo '{planted}' >> ~alice/.ssh/authorized_keys").returncode == 0
    run = playbook("ssh_audit.yml", "-e", f"beam_ssh_audit_dir={tmp_path}")
    assert run.returncode != 0  # undeclared keys fail the audit
    assert "keys not declared in the inventory can log in" in run.stdout
    report = json.loads((tmp_path / "ssh-audit.json").read_text())
    planted_print = fingerprint(KEYS / "planted.pub")
    node1 = report["nodes"]["beam-mol-ssh-1"]
    flagged = {(u["account"], u["fingerprint"]) for u in node1["unknown"]}
    assert flagged == {("alice", planted_print), ("root", planted_print)}
    alice = {k["fingerprint"]: k for k in node1["accounts"]["alice"]["keys"]}
    assert alice[fingerprint(KEYS / "alice_a.pub")]["owner"] == "alice"
    assert alice[fingerprint(KEYS / "alice_a.pub")]["known"] is True
    automation = node1["accounts"][AUTOMATION]["keys"]
    assert [k["fingerprint"] for k in automation] == [fingerprint(automation_key("beam-mol-ssh-1").with_suffix(".pub"))]
    assert automation[0]["owner"].startswith("automation")
    node2 = report["nodes"]["beam-mol-ssh-2"]
    assert {u["account"] for u in node2["unknown"]} == {"root"}
    assert sorted(node2["accounts"]) == ["alice", "beam-ops", "bob", "root"]
    text = (tmp_path / "ssh-audit.txt").read_text()
    assert "NOT IN INVENTORY" in text and planted_print in text
    # the role takes the planted key off alice again; root is not managed (and may not log in)
    assert playbook("access.yml").returncode == 0
    assert planted not in docker("beam-mol-ssh-1", "cat ~alice/.ssh/authorized_keys").stdout


def test_rotation_leaves_every_node_on_the_new_key_only():
    before = {node: generation(node) for node in NODES}
    old_keys = {node: automation_key(node).resolve() for node in NODES}
    run = playbook("ssh_rotate.yml")
    assert run.returncode == 0
    assert "KEPT THE OLD KEY: none" in run.stdout
    for node in NODES:
        assert generation(node) != before[node]
        assert logs_in(node, AUTOMATION, automation_key(node))
        old = ssh(node, AUTOMATION, old_keys[node])
        assert old.returncode == 255 and "Permission denied" in old.stderr
    assert len({generation(node) for node in NODES}) == 1


PIN = """
mkdir -p /etc/ssh/pinned
cp ~beam-ops/.ssh/authorized_keys /etc/ssh/pinned/beam-ops && chmod 0644 /etc/ssh/pinned/beam-ops  # sshd reads it as beam-ops
echo 'AuthorizedKeysFile /etc/ssh/pinned/%u .ssh/authorized_keys_not_read' > /etc/ssh/sshd_config.d/99-test-pin.conf
sshd -t && systemctl reload ssh.service
"""
UNPIN = "rm -rf /etc/ssh/pinned /etc/ssh/sshd_config.d/99-test-pin.conf && systemctl reload ssh.service"


def test_a_node_where_the_new_key_fails_keeps_the_old_key():
    # by hand, on node 2: sshd reads the automation user's keys from a file the rotation
    # does not write, so only the old key can log in there
    assert docker("beam-mol-ssh-2", PIN).returncode == 0
    try:
        before = {node: generation(node) for node in NODES}
        old_keys = {node: automation_key(node).resolve() for node in NODES}
        run = playbook("ssh_rotate.yml")
        assert run.returncode != 0
        assert "beam-mol-ssh-2 keeps its old key" in run.stdout
        assert "KEPT THE OLD KEY: beam-mol-ssh-2" in run.stdout
        assert "rotated: beam-mol-ssh-1" in run.stdout
        assert generation("beam-mol-ssh-2") == before["beam-mol-ssh-2"]
        assert generation("beam-mol-ssh-1") != before["beam-mol-ssh-1"]
        assert logs_in("beam-mol-ssh-2", AUTOMATION, old_keys["beam-mol-ssh-2"])
        new = automation_key("beam-mol-ssh-1").resolve()
        assert not logs_in("beam-mol-ssh-2", AUTOMATION, new)
        # the unproven key was taken off node 2 again
        node2_keys = docker("beam-mol-ssh-2", "cat ~beam-ops/.ssh/authorized_keys").stdout
        assert public_of(new) not in node2_keys and public_of(old_keys["beam-mol-ssh-2"]) in node2_keys
        assert logs_in("beam-mol-ssh-1", AUTOMATION, new)
        assert not logs_in("beam-mol-ssh-1", AUTOMATION, old_keys["beam-mol-ssh-1"])
    finally:
        assert docker("beam-mol-ssh-2", UNPIN).returncode == 0


def public_of(private: Path) -> str:
    return " ".join(Path(str(private) + ".pub").read_text().split()[:2])


FRESH_SSHD = """
rm -f /etc/ssh/sshd_config.d/00-beam-access.conf
mkdir -p /etc/ssh/pinned
cp ~beam-ops/.ssh/authorized_keys /etc/ssh/pinned/{name} && chmod 0644 /etc/ssh/pinned/{name}
echo 'AuthorizedKeysFile /etc/ssh/pinned/{pattern}' > /etc/ssh/sshd_config.d/99-test-pin.conf
sshd -t && systemctl reload ssh.service
"""


def password_login(node: str) -> str:
    return docker(node, "sshd -T | grep -i '^passwordauthentication'").stdout.split()[-1]


def test_keys_go_where_sshd_reads_them_and_password_login_waits_for_the_proof():
    # by hand, node 2 as before its first access.yml: password login on, and an sshd that
    # reads keys from /etc/ssh/pinned/%u (the automation key copied there, so Ansible gets in)
    assert docker("beam-mol-ssh-2", FRESH_SSHD.format(name="beam-ops", pattern="%u")).returncode == 0
    try:
        assert password_login("beam-mol-ssh-2") == "yes"
        run = playbook("access.yml")
        assert run.returncode == 0
        assert password_login("beam-mol-ssh-2") == "no"
        pinned = docker("beam-mol-ssh-2", "cat /etc/ssh/pinned/beam-ops").stdout
        assert public_of(automation_key("beam-mol-ssh-2").resolve()) in pinned
        assert public("alice_a") in docker("beam-mol-ssh-2", "cat /etc/ssh/pinned/alice").stdout
        # an sshd whose key location the role cannot resolve (%U, the uid): the node keeps
        # password login, and the run names it; the other node is untouched
        uid = docker("beam-mol-ssh-2", "id -u beam-ops").stdout.strip()
        assert docker("beam-mol-ssh-2", FRESH_SSHD.format(name=uid, pattern="%U")).returncode == 0
        run = playbook("access.yml")
        assert run.returncode != 0
        assert "beam-mol-ssh-2" in run.stdout and "%U is not supported" in run.stdout
        assert password_login("beam-mol-ssh-2") == "yes"
        assert password_login("beam-mol-ssh-1") == "no"
        assert recap_changed(run.stdout).get("beam-mol-ssh-1") == 0
    finally:
        assert docker("beam-mol-ssh-2", UNPIN).returncode == 0
        playbook("access.yml")  # back to the role's own drop-in


def test_access_over_ssh_changes_nothing_the_second_time():
    playbook("access.yml")
    run = playbook("access.yml")
    assert run.returncode == 0
    assert recap_changed(run.stdout) == {node: 0 for node in NODES}
