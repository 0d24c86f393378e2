"""Make `ansible_collections.beam.fleet` importable from this checkout, and share helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COLLECTION = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = COLLECTION.parents[2]
# The beam-fleet repository (its ansible.cfg, inventories, scripts); CI runs these tests on the
# release tarball's contents, unpacked elsewhere, and names the repository in the environment.
REPOSITORY = Path(os.environ.get("BEAM_FLEET_REPOSITORY", COLLECTIONS_ROOT.parent))
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))


def run_module(main, args, capsys):
    """Run a module's main() with args as Ansible would; returns (result, failed)."""
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        main()
    result = json.loads(capsys.readouterr().out)
    return result, exited.value.code != 0


def ansible(tmp_path: Path, program: str, *args: str) -> subprocess.CompletedProcess:
    """Run an Ansible program of this venv on this checkout's collection, as an operator would."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT),
        ANSIBLE_CONFIG=str(REPOSITORY / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
    )
    return subprocess.run(
        [str(Path(sys.executable).parent / program), *args], cwd=REPOSITORY, env=env,
        capture_output=True, text=True, timeout=240, check=False,
    )
