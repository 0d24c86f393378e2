"""beam.fleet.mitogen_linear: Mitogen's strategy when installed, a clear refusal when not."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleError
from ansible.plugins.strategy.linear import StrategyModule as Linear

MODULE = "ansible_collections.beam.fleet.plugins.strategy.mitogen_linear"


def load_plugin(monkeypatch: pytest.MonkeyPatch, *, without_mitogen: bool):
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    if without_mitogen:
        # None in sys.modules makes `import ansible_mitogen...` raise ImportError
        for name in [n for n in sys.modules if n.startswith("ansible_mitogen")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, "ansible_mitogen", None)
    return importlib.import_module(MODULE)


def test_with_mitogen_it_is_mitogens_linear_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    import ansible_mitogen.strategy  # in .venv-ansible (molecule/requirements.txt)

    plugin = load_plugin(monkeypatch, without_mitogen=False)
    assert issubclass(plugin.StrategyModule, ansible_mitogen.strategy.StrategyMixin)
    assert issubclass(plugin.StrategyModule, Linear)


def test_without_mitogen_the_run_stops_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plugin = load_plugin(monkeypatch, without_mitogen=True)
    assert issubclass(plugin.StrategyModule, Linear)
    with pytest.raises(AnsibleError, match="needs the mitogen package.*pip install mitogen"):
        plugin.StrategyModule(None)


def test_ansible_finds_it_by_its_collection_name() -> None:
    """What an operator's ANSIBLE_STRATEGY=beam.fleet.mitogen_linear resolves to."""
    collections_root = Path(__file__).resolve().parents[7]
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections_root)}
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "-t", "strategy", "--json",
         "beam.fleet.mitogen_linear"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    doc = shown.stdout
    assert "Mitogen's linear strategy" in doc
    assert "plugins/strategy/mitogen_linear.py" in doc
