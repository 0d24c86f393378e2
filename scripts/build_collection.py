"""Build the beam.fleet release tarball: the collection with the beam-fleet wheel inside.

Why: an operator installs the collection with ansible-galaxy into their own project and has
no clone of this repository; the wheelhouse role then deploys the wheel the tarball carries
(roles/wheelhouse/files/dist/). One version names all three: pyproject.toml, galaxy.yml and
the wheel; a mismatch is refused before anything is built.

Usage: build_collection.py [--output DIR]   (prints the tarball's path and size)
Runs with the Python of the Ansible virtual environment (it calls its ansible-galaxy).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLLECTION = REPO / "collections" / "ansible_collections" / "beam" / "fleet"
BUNDLED = COLLECTION / "roles" / "wheelhouse" / "files" / "dist"
PYPROJECT_VERSION = re.compile(r'(?m)^version\s*=\s*"([^"]+)"')
GALAXY_VERSION = re.compile(r"(?m)^version:\s*['\"]?([^'\"\s]+)")


class BuildError(Exception):
    """The tarball cannot be built as asked: the message says why."""


def versions() -> tuple[str, str]:
    """pyproject.toml's and galaxy.yml's versions."""
    project = PYPROJECT_VERSION.search((REPO / "pyproject.toml").read_text())
    galaxy = GALAXY_VERSION.search((COLLECTION / "galaxy.yml").read_text())
    if not project or not galaxy:
        raise BuildError("no version line in pyproject.toml or galaxy.yml")
    return project.group(1), galaxy.group(1)


def build_wheel(version: str) -> Path:
    """The beam-fleet wheel of this tree, put where the wheelhouse role looks for it."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--wheel-dir",
                scratch,
                str(REPO),
            ],
            check=True,
        )
        built = sorted(Path(scratch).glob("beam_fleet-*-py3-none-any.whl"))
        expected = f"beam_fleet-{version}-py3-none-any.whl"
        if [w.name for w in built] != [expected]:
            raise BuildError(f"pip built {[w.name for w in built]}, expected {expected}")
        shutil.rmtree(BUNDLED, ignore_errors=True)
        BUNDLED.mkdir(parents=True)
        return Path(shutil.copy2(built[0], BUNDLED / expected))


def build_tarball(output: Path) -> Path:
    """ansible-galaxy's tarball of the collection as it is now (the bundled wheel included)."""
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    output.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [
            str(galaxy),
            "collection",
            "build",
            "--force",
            "--output-path",
            str(output),
            str(COLLECTION),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"Created collection for \S+ at (\S+)", run.stdout)
    if not found:
        raise BuildError(f"ansible-galaxy did not say where the tarball is: {run.stdout.strip()}")
    return Path(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO / "dist",
        help="directory for the tarball (default dist/)",
    )
    args = parser.parse_args(argv)
    try:
        project, galaxy = versions()
        if project != galaxy:
            raise BuildError(
                f"pyproject.toml says {project}, galaxy.yml says {galaxy}: one version names the "
                "collection and its wheel; set both"
            )
        wheel = build_wheel(project)
        tarball = build_tarball(args.output)
    except (BuildError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", None) or ""
        print(f"build_collection: {error} {detail}".strip(), file=sys.stderr)
        return 2
    print(f"wheel    {wheel.relative_to(REPO)} ({wheel.stat().st_size / 1024:.0f} KiB)")
    print(f"tarball  {tarball} ({tarball.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
