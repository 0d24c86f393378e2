"""A release is built once into the catalog, under a valid version, from a real source tree.

The wheel build itself runs in the rollout Molecule scenario (it needs pip's build
isolation, hence an index); here: every refusal, and the version stamp.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import COLLECTION

SCRIPT = COLLECTION / "roles" / "wheelhouse" / "files" / "build_release.py"
spec = importlib.util.spec_from_file_location("build_release", SCRIPT)
build_release = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_release)

PYPROJECT = '[project]\nname = "beam-fleet"\nversion = "0.1.0"\n\n[tool.x]\nversion = "keep"\n'


def source_tree(root: Path) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "README.md").write_text("beam-fleet\n")
    (root / "agent").mkdir()
    (root / "receiver").mkdir()
    return root


def test_stamp_changes_only_the_project_version(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT)
    build_release.stamp_version(str(pyproject), "1.2.0+lab.1")
    assert pyproject.read_text() == PYPROJECT.replace('"0.1.0"', '"1.2.0+lab.1"', 1)
    assert build_release.source_version(str(tmp_path)) == "1.2.0+lab.1"


@pytest.mark.parametrize("version", ["1.2.0", "1.2.0rc1", "2.0.0.post1", "1.0.0.dev3", "1.2.0+lab.1", "1!2.0"])
def test_pep440_versions_are_accepted(version):
    assert build_release.PEP440.match(version)


@pytest.mark.parametrize("version", ["v1.2.0", "1.2.", "1..2", "1.2.0-beta", "../1.0", "1.0/x", "latest"])
def test_other_versions_are_refused_before_anything_is_written(tmp_path, version):
    catalog = tmp_path / "catalog"
    with pytest.raises(build_release.ReleaseError, match="not a PEP 440 version"):
        build_release.build(str(source_tree(tmp_path / "src")), str(catalog), version)
    assert not catalog.exists()


def test_a_version_already_in_the_catalog_is_never_rebuilt(tmp_path):
    catalog = tmp_path / "catalog"
    (catalog / "1.1.0").mkdir(parents=True)
    (catalog / "1.1.0" / "beam_fleet-1.1.0-py3-none-any.whl").write_bytes(b"the released bytes")
    with pytest.raises(build_release.ReleaseError, match="already in .*releases are immutable"):
        build_release.build(str(source_tree(tmp_path / "src")), str(catalog), "1.1.0")
    assert (catalog / "1.1.0" / "beam_fleet-1.1.0-py3-none-any.whl").read_bytes() == b"the released bytes"


def test_a_directory_that_is_no_source_tree_is_refused(tmp_path):
    tree = source_tree(tmp_path / "src")
    (tree / "receiver").rmdir()
    with pytest.raises(build_release.ReleaseError, match="not a beam-fleet source tree: receiver is missing"):
        build_release.build(str(tree), str(tmp_path / "catalog"), "1.0.0")


def test_the_command_line_says_why_and_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["build_release.py", "--source", str(tmp_path / "none"),
                                     "--catalog", str(tmp_path / "catalog")])
    assert build_release.main() == 2
    assert "build_release:" in capsys.readouterr().err
