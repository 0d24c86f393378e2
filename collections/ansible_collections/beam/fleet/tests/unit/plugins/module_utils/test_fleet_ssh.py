"""SSH access declarations: refused when invalid, resolved per node when valid."""

from __future__ import annotations

import datetime

from ansible_collections.beam.fleet.plugins.module_utils.fleet import validate_fleet
from ssh_fixtures import KEY_A, KEY_B, KEY_RSA, PRINT_A, PRINT_B

TODAY = datetime.date(2026, 6, 1)
GROUPS = {"all": ["rx", "pi1", "pi2"], "beam_fleet": ["rx", "pi1", "pi2"], "site_roof": ["pi1"], "role_receiver": ["rx"]}


def fleet(operators, **ssh):
    variables = {"beam_ssh_automation_user": "beam-ops", "beam_ssh_operators": operators}
    variables.update(ssh)
    nodes = []
    for host, roles in (("rx", ["receiver"]), ("pi1", ["agent"]), ("pi2", ["agent"])):
        node = {"host": host, "beam_roles": roles, "beam_site": "lab", "beam_arch": "x86_64"}
        node.update(variables)
        nodes.append(node)
    return validate_fleet(nodes, groups=GROUPS, today=TODAY)


def names(record):
    return [operator["name"] for operator in record["ssh"]["operators"]]


def test_operators_reach_only_their_groups_nodes():
    records, problems = fleet([
        {"name": "alice", "groups": ["beam_fleet"], "keys": [KEY_A], "comment": "Alice"},
        {"name": "bob", "groups": "site_roof", "keys": [KEY_B]},
    ])
    assert problems == []
    assert names(records["pi1"]) == ["alice", "bob"]
    assert names(records["pi2"]) == ["alice"]
    assert records["pi2"]["ssh"]["absent_operators"] == ["bob"]
    assert records["pi1"]["ssh"]["operators"][0] == {"name": "alice", "comment": "Alice", "keys": [KEY_A], "expires": None}
    assert records["rx"]["ssh"]["automation_user"] == "beam-ops"


def test_expired_operator_and_expired_key_have_no_key():
    records, problems = fleet([
        {"name": "alice", "groups": ["all"], "keys": [KEY_A, {"key": KEY_B, "expires": "2026-05-31"}]},
        {"name": "carol", "groups": ["all"], "keys": [KEY_RSA], "expires": datetime.date(2026, 5, 31)},
        {"name": "dave", "groups": ["all"], "keys": [KEY_RSA.replace("r@test", "d")], "expires": "2026-06-01"},
    ])
    assert problems == [
        "rx: beam_ssh_operators[2] (dave).keys[0]: key SHA256:yLy8ejMErdpV2YBGHba842Kbn0sTUoyjW/vOSmtCX0Q is also declared for operator 'carol'"
    ]
    ssh = records["pi1"]["ssh"]
    assert names(records["pi1"]) == ["alice"]
    assert ssh["operators"][0]["keys"] == [KEY_A]
    assert "carol" in ssh["absent_operators"]
    assert PRINT_B in ssh["expired"]


def test_expiry_day_itself_still_works():
    records, problems = fleet([{"name": "alice", "groups": ["all"], "keys": [KEY_A], "expires": "2026-06-01"}])
    assert problems == []
    assert names(records["pi1"]) == ["alice"]


def test_revoked_keys_are_dropped_even_when_declared():
    records, problems = fleet(
        [{"name": "alice", "groups": ["all"], "keys": [KEY_A, KEY_B]}],
        beam_ssh_revoked_keys=[PRINT_B],
    )
    assert problems == []
    assert records["pi1"]["ssh"]["operators"][0]["keys"] == [KEY_A]
    records = fleet([{"name": "alice", "groups": ["all"], "keys": [KEY_A]}], beam_ssh_revoked_keys=[KEY_A])[0]
    assert records["pi1"]["ssh"]["operators"] == []
    assert records["pi1"]["ssh"]["revoked"] == [PRINT_A]


def test_invalid_declarations_are_refused_once_each_with_a_clear_message():
    problems = fleet([
        {"name": "alice", "groups": ["site_rooof"], "keys": [KEY_A]},
        {"name": "alice", "groups": ["all"], "keys": [KEY_B]},
        {"name": "bob", "groups": ["all"], "keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGn47ehJky3F1kz4AjNr bob"]},
        {"name": "carol", "groups": ["all"], "keys": [KEY_RSA], "expires": "31/12/2026"},
        {"name": "Dave Smith", "groups": ["all"], "keys": [KEY_RSA]},
        {"name": "erin", "keys": [], "shell": "/bin/zsh"},
        {"name": "beam-ops", "groups": ["all"], "keys": [{"key": KEY_B, "expires": "2026-02-30"}]},
    ], beam_ssh_revoked_keys=["SHA256:short"])[1]
    assert problems == sorted([
        "rx: beam_ssh_operators[0] (alice).groups: unknown group 'site_rooof' (not a group of this inventory)",
        "rx: beam_ssh_operators[1] (alice).name: duplicate operator name 'alice' (also beam_ssh_operators[0])",
        "rx: beam_ssh_operators[2] (bob).keys[0]: malformed public key: key data does not hold a ssh-ed25519 key (truncated or mixed up?)",
        "rx: beam_ssh_operators[3] (carol).expires: must be a date YYYY-MM-DD, got '31/12/2026'",
        "rx: beam_ssh_operators[4] (Dave Smith).name: must be a login name (lowercase letters, digits, '_' or '-', "
        "not root, beam-agent, beam-receiver, daemon, nobody, sshd), got 'Dave Smith'",
        "rx: beam_ssh_operators[5] (erin).groups: is required: the inventory groups whose nodes this operator may reach ('all' for every node)",
        "rx: beam_ssh_operators[5] (erin).keys: is required: a list of public keys ('ssh-ed25519 AAAA... comment')",
        "rx: beam_ssh_operators[5] (erin).shell: unknown field (fields: name, keys, groups, expires, comment)",
        "rx: beam_ssh_operators[6] (beam-ops).name: 'beam-ops' is the automation user (beam_ssh_automation_user)",
        "rx: beam_ssh_operators[6] (beam-ops).keys[0].expires: must be a date YYYY-MM-DD, got '2026-02-30'",
        "rx: beam_ssh_revoked_keys[0]: neither a SHA256: fingerprint nor a public key: unknown key type 'SHA256:short' "
        "(known: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, "
        "sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, ssh-dss)",
    ])


def test_bad_automation_user_and_keys_are_refused():
    problems = fleet([], beam_ssh_automation_user="root", beam_ssh_automation_keys=["ssh-rsa nope"])[1]
    assert problems[0].startswith("rx: beam_ssh_automation_keys[0]: malformed public key")
    assert problems[1].startswith("rx: beam_ssh_automation_user: must be a login name")


def test_nodes_without_ssh_declarations_have_no_access_record():
    records, problems = validate_fleet([{"host": "rx", "beam_roles": ["receiver"], "beam_site": "lab", "beam_arch": "x86_64"}])
    assert problems == []
    assert records["rx"]["ssh"] is None
