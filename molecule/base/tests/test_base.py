"""What beam.fleet.base leaves on a node, read from the node itself."""

import pytest


def test_agent_user_is_a_system_account_in_the_hardware_groups(host):
    user = host.user("beam-agent")
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    assert user.group == "beam-agent"
    # dialout ships with Debian; i2c and gpio only exist on boards that have them
    assert "dialout" in user.groups
    assert "i2c" not in user.groups


def test_receiver_user_is_a_system_account(host):
    user = host.user("beam-receiver")
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    assert user.groups == ["beam-receiver"]


@pytest.mark.parametrize("path", ["/opt/beam", "/etc/beam"])
def test_directories_are_root_owned(host, path):
    directory = host.file(path)
    assert directory.is_directory
    assert directory.user == "root"
    assert directory.mode == 0o755


def test_journald_is_limited(host):
    conf = host.file("/etc/systemd/journald.conf.d/50-beam.conf")
    assert conf.mode == 0o644
    assert conf.contains("^SystemMaxUse=200M$")
    assert conf.contains("^MaxRetentionSec=1month$")
    assert host.service("systemd-journald").is_running


def test_venv_can_be_built(host):
    result = host.run("python3 -m venv /tmp/probe-venv && /tmp/probe-venv/bin/python -V")
    assert result.rc == 0, result.stderr
