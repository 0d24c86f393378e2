"""Each role's meta/argument_specs.yml documents exactly its defaults, with the same values."""

from __future__ import annotations

import pytest
import yaml
from conftest import COLLECTION

ROLES = sorted(path.name for path in (COLLECTION / "roles").iterdir() if path.is_dir())


def computed_non_string(value, option) -> bool:
    return isinstance(value, str) and "{{" in value and option.get("type", "str") not in ("str", "path", "raw")


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_equal_defaults(role):
    defaults = yaml.safe_load((COLLECTION / "roles" / role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((COLLECTION / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    for name, option in options.items():
        assert option["description"], name
        if computed_non_string(defaults[name], option):
            # ansible-doc and antsibull-docs need a default of the option's type: a computed one
            # (a Jinja expression for a bool, list or dict) is said in words instead
            assert "default" not in option, name
            assert "Computed when not set" in " ".join(option["description"]), name
            continue
        assert option["default"] == defaults[name], name
        # the private role _common's variables are beam_common_*
        assert name.startswith(f"beam_{role.lstrip('_')}_"), f"{name} is not prefixed with the role name"


def test_every_role_has_specs():
    assert ROLES == ["_common", "agent", "base", "database", "pki", "receiver", "ssh_access", "wheelhouse"]
