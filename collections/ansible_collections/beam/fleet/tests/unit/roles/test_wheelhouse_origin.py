"""The wheelhouse role refuses a wheel it cannot trust or name, before fetching anything."""

from __future__ import annotations

import sys

import pytest
from conftest import ansible

PLAY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: beam.fleet.wheelhouse
"""


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://example.invalid/beam_fleet-1.0.0-py3-none-any.whl", "plain http:// only with beam_wheelhouse_wheel_sha256"),
        ("ftp://example.invalid/beam_fleet-1.0.0-py3-none-any.whl", "give an https:// or file:// URL"),
        ("https://example.invalid/beam-fleet.tar.gz", "named beam_fleet-<version>-py3-none-any.whl"),
        ("relative/beam_fleet-1.0.0-py3-none-any.whl", "absolute path"),
    ],
)
def test_a_wheel_url_that_cannot_work_is_refused_naming_the_variable(tmp_path, url, said):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    run = ansible(tmp_path, "ansible-playbook", "-i", "localhost,", "-c", "local", str(play),
                  "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"beam_wheelhouse_wheel_url={url}")
    assert run.returncode != 0
    text = " ".join((run.stdout + run.stderr).split())
    assert f"beam_wheelhouse_wheel_url {url}" in text, text[-1500:]
    assert said in text, text[-1500:]
    assert "Download the wheel" not in run.stdout  # refused before any fetch
