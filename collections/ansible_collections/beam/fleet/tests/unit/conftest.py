"""Make `ansible_collections.beam.fleet` importable from this checkout, and share helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

COLLECTION = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = COLLECTION.parents[2]
REPOSITORY = COLLECTIONS_ROOT.parent
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))


def run_module(main, args, capsys):
    """Run a module's main() with args as Ansible would; returns (result, failed)."""
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        main()
    result = json.loads(capsys.readouterr().out)
    return result, exited.value.code != 0
