"""The wheelhouse download falls back to sources only for what has no wheel for the node.

pip runs for real, against a local find-links directory (PIP_NO_INDEX), so nothing here
touches the network: pkg-pure has a universal wheel, pkg-native a wheel for x86_64 only
plus a source archive, like psutil on PyPI (no armv7l wheel).
"""

from __future__ import annotations

import importlib.util
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import COLLECTION

SCRIPT = COLLECTION / "roles" / "wheelhouse" / "files" / "download_wheels.py"
spec = importlib.util.spec_from_file_location("download_wheels", SCRIPT)
download_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(download_wheels)


def make_wheel(directory: Path, name: str, version: str, tag: str, requires=()) -> Path:
    dist = name.replace("-", "_")
    path = directory / f"{dist}-{version}-{tag}.whl"
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "Provides-Extra: agent\n"
    metadata += "".join(f"Requires-Dist: {req}\n" for req in requires)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{dist}/__init__.py", "")
        wheel.writestr(f"{info}/METADATA", metadata)
        wheel.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def make_sdist(directory: Path, name: str, version: str) -> Path:
    """A source archive with an in-tree build backend, so pip prepares it with no downloads."""
    dist = name.replace("-", "_")
    root = f"{dist}-{version}"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    backend = (
        "import os\n"
        "def get_requires_for_build_wheel(config_settings=None):\n"
        "    return []\n"
        "def prepare_metadata_for_build_wheel(directory, config_settings=None):\n"
        f"    info = {dist + '-' + version + '.dist-info'!r}\n"
        "    os.makedirs(os.path.join(directory, info))\n"
        "    with open(os.path.join(directory, info, 'METADATA'), 'w') as out:\n"
        f"        out.write({metadata!r})\n"
        "    return info\n"
    )
    files = {
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        ),
        "backend.py": backend,
        "PKG-INFO": metadata,
    }
    path = directory / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for filename, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"{root}/{filename}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


@pytest.fixture
def links(tmp_path, monkeypatch):
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index, "pkg-pure", "1.0", "py3-none-any")
    make_wheel(index, "pkg-native", "2.0", "cp311-cp311-manylinux2014_x86_64")
    make_sdist(index, "pkg-native", "2.0")
    make_wheel(index, "setuptools", "99.0", "py3-none-any")
    make_wheel(index, "wheel", "99.0", "py3-none-any")
    root = make_wheel(index, "beam-fleet", "0.1.0", "py3-none-any",
                      requires=["pkg-pure", 'pkg-native; extra == "agent"'])
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return root


def run(root: Path, dest: Path, arch: str, *extra: str) -> int:
    return download_wheels.main([
        "--dest", str(dest), "--wheel", str(root), "--extras", "agent", "--arch", arch,
        "--python-version", "3.11", *extra,
    ])


def test_all_binary_when_every_wheel_exists(links, tmp_path):
    dest = tmp_path / "x86"
    assert run(links, dest, "x86_64") == 0
    assert sorted(os.listdir(dest)) == [
        "beam_fleet-0.1.0-py3-none-any.whl",
        "pkg_native-2.0-cp311-cp311-manylinux2014_x86_64.whl",
        "pkg_pure-1.0-py3-none-any.whl",
    ]


def test_source_for_what_has_no_wheel_for_the_node(links, tmp_path):
    dest = tmp_path / "arm"
    assert run(links, dest, "armv7l") == 0
    files = sorted(os.listdir(dest))
    assert "pkg_native-2.0.tar.gz" in files
    assert "pkg_pure-1.0-py3-none-any.whl" in files
    assert "beam_fleet-0.1.0-py3-none-any.whl" in files
    assert {"setuptools-99.0-py3-none-any.whl", "wheel-99.0-py3-none-any.whl"} <= set(files)
    assert (dest / "SDISTS").read_text() == "pkg-native==2.0\n"


def test_source_only_forces_a_source_build(links, tmp_path):
    dest = tmp_path / "forced"
    assert run(links, dest, "x86_64", "--source-only", "pkg_native") == 0
    assert (dest / "SDISTS").read_text() == "pkg-native==2.0\n"
    assert not any(name.startswith("pkg_native-2.0-cp311") for name in os.listdir(dest))


def test_platform_tags_and_file_names():
    tags = download_wheels.platform_tags("aarch64", "2.28")
    assert tags[0] == "manylinux2014_aarch64"
    assert tags[1] == "manylinux_2_17_aarch64" and "manylinux_2_28_aarch64" in tags
    assert tags[-1] == "linux_aarch64"
    assert download_wheels.pin_from_filename("Flask_Login-0.6.3-py3-none-any.whl") == ("flask-login", "0.6.3")
    assert download_wheels.pin_from_filename("psutil-7.2.2.tar.gz") == ("psutil", "7.2.2")
    assert download_wheels.pin_from_filename("SDISTS") is None


def test_what_the_targets_python_needs_is_added_though_pip_runs_on_another(tmp_path, monkeypatch):
    """pip evaluates markers with its own Python (3.11 here): a 3.9 node's needs are added."""
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index, "pkg-old", "1.0", "py3-none-any", requires=['pkg-deep; python_version < "3.10"'])
    make_wheel(index, "pkg-deep", "3.0", "py3-none-any")
    make_wheel(index, "pkg-new-only", "1.0", "py3-none-any")
    root = make_wheel(index, "beam-fleet", "0.1.0", "py3-none-any", requires=[
        'pkg-old>=1.0; python_version < "3.11" and extra == "agent"',
        'pkg-new-only; python_version >= "3.11"',
    ])
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    dest = tmp_path / "py39"
    assert download_wheels.main([
        "--dest", str(dest), "--wheel", str(root), "--extras", "agent", "--arch", "aarch64",
        "--python-version", "3.9",
    ]) == 0
    files = set(os.listdir(dest))
    # pkg-old (and through it pkg-deep) only apply on Python < 3.10/3.11: the node's, not pip's
    assert {"pkg_old-1.0-py3-none-any.whl", "pkg_deep-3.0-py3-none-any.whl"} <= files
    assert not (dest / "SDISTS").exists()


def test_markers_are_evaluated_for_the_target():
    environment = download_wheels.target_environment("armv7l", "3.9")
    assert environment["python_version"] == "3.9" and environment["platform_machine"] == "armv7l"
