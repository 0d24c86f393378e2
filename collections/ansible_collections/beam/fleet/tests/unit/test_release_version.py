"""One version names the collection and the beam-fleet wheel it deploys."""

from __future__ import annotations

import re
import zipfile

import yaml
from conftest import COLLECTION, REPOSITORY

BUNDLED = COLLECTION / "roles" / "wheelhouse" / "files" / "dist"


def galaxy_version() -> str:
    return str(yaml.safe_load((COLLECTION / "galaxy.yml").read_text())["version"])


def test_galaxy_and_pyproject_name_one_version():
    pyproject = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (REPOSITORY / "pyproject.toml").read_text())
    assert pyproject, "no version in pyproject.toml"
    assert pyproject.group(1) == galaxy_version()


def test_the_bundled_wheel_is_the_collections_version():
    """In a release tarball (CI runs these tests on its contents) the wheel must be there."""
    wheels = sorted(BUNDLED.glob("*.whl"))
    if not (COLLECTION / "MANIFEST.json").exists() and not wheels:
        return  # a source checkout before `make collection`: nothing bundled yet
    assert [w.name for w in wheels] == [f"beam_fleet-{galaxy_version()}-py3-none-any.whl"]
    with zipfile.ZipFile(wheels[0]) as wheel:
        metadata = wheel.read(f"beam_fleet-{galaxy_version()}.dist-info/METADATA").decode()
        names = wheel.namelist()
    assert f"\nVersion: {galaxy_version()}\n" in metadata
    assert "beam_agent/__init__.py" in names and "beam_receiver/__init__.py" in names
