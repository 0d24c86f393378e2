# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Build one release of beam-fleet into the controller's release catalog.

Why: a rollout deploys a named version (`-e beam_version=1.2.0`), and every node of it must
get exactly the same bytes, also days later for a rollback or a node added to the fleet.
So a release is built once into CATALOG/<version>/beam_fleet-<version>-py3-none-any.whl and
never rebuilt: building a version that is already in the catalog is refused.

The version is stamped into a copy of the source tree (pyproject's [project] version), so a
tree can be released under a version other than the one it names (a hotfix, a lab build).

Usage: build_release.py --source DIR --catalog DIR [--version X]
Prints the wheel's path. Exit status 2 on bad input, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# What the wheel is built from (see pyproject.toml: packages under agent/ and receiver/).
SOURCE_ENTRIES = ("pyproject.toml", "README.md", "agent", "receiver")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
VERSION_LINE = re.compile(r'(?m)^version\s*=\s*"([^"]+)"')
# PEP 440 public and local versions (the grammar pip accepts), e.g. 1.2.0, 1.2.0rc1, 1.2.0+lab.3
PEP440 = re.compile(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*((a|b|rc)(0|[1-9][0-9]*))?"
    r"(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?(\+[a-z0-9]+(\.[a-z0-9]+)*)?$"
)


class ReleaseError(Exception):
    """A release that cannot be built as asked: the message says why."""


def source_version(source: str) -> str:
    with open(os.path.join(source, "pyproject.toml"), encoding="utf-8") as handle:
        match = VERSION_LINE.search(handle.read())
    if not match:
        raise ReleaseError("%s/pyproject.toml names no version" % source)
    return match.group(1)


def stamp_version(pyproject: str, version: str) -> None:
    with open(pyproject, encoding="utf-8") as handle:
        text = handle.read()
    with open(pyproject, "w", encoding="utf-8") as handle:
        handle.write(VERSION_LINE.sub('version = "%s"' % version, text, count=1))


def build(source: str, catalog: str, version: str | None = None) -> str:
    """Build the release and return its wheel's path; the catalog entry appears whole or not at all."""
    source = os.path.abspath(source)
    version = version or source_version(source)
    if not PEP440.match(version):
        raise ReleaseError("version %r is not a PEP 440 version (e.g. 1.2.0, 1.2.0rc1, 1.2.0+lab.1)" % version)
    for entry in SOURCE_ENTRIES:
        if not os.path.exists(os.path.join(source, entry)):
            raise ReleaseError("%s is not a beam-fleet source tree: %s is missing" % (source, entry))
    target = os.path.join(catalog, version)
    if os.path.isdir(target):
        raise ReleaseError(
            "release %s is already in %s: releases are immutable; choose another version" % (version, catalog)
        )
    os.makedirs(catalog, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=catalog, prefix=".build-") as work:
        tree = os.path.join(work, "src")
        os.mkdir(tree)
        for entry in SOURCE_ENTRIES:
            path = os.path.join(source, entry)
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(tree, entry), ignore=IGNORED)
            else:
                shutil.copy2(path, os.path.join(tree, entry))
        stamp_version(os.path.join(tree, "pyproject.toml"), version)
        staged = os.path.join(work, "wheel")
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                   "--wheel-dir", staged, tree]
        if subprocess.run(command, check=False).returncode != 0:
            raise ReleaseError("pip could not build the wheel of %s (see above)" % source)
        wheels = [name for name in os.listdir(staged) if name.endswith(".whl")]
        if len(wheels) != 1:
            raise ReleaseError("expected one wheel from the build, found %r" % wheels)
        os.rename(staged, target)
    return os.path.join(target, wheels[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the beam-fleet source tree")
    parser.add_argument("--catalog", required=True, help="the release catalog (dist/releases)")
    parser.add_argument("--version", help="the version to stamp (default: the source's own)")
    options = parser.parse_args()
    try:
        print(build(options.source, options.catalog, options.version))
    except (ReleaseError, OSError) as exc:
        print("build_release: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
