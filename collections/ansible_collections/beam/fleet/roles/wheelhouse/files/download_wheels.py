# Copyright: beam-fleet contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Fill a wheelhouse for one node platform: binary wheels where PyPI has them, else sources.

Why: nodes install offline from what the controller downloads. `pip download --platform`
accepts binary wheels only, and PyPI lacks some for small boards (psutil has no armv7l
wheel). So when the all-binary download fails, the dependency set is resolved for x86_64,
each pinned distribution is fetched as a wheel for the target when there is one and as
a source archive otherwise, and the names of those go to SDISTS; the node then builds
them (the agent and receiver roles install a compiler for that), with setuptools and
wheel from the same wheelhouse so the build needs no index either.

Usage: download_wheels.py --dest DIR --wheel WHEEL --extras agent,receiver --arch aarch64
                          --python-version 3.11 [--glibc-max 2.31] [--source-only psutil ...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

BUILD_TOOLS = ("setuptools", "wheel")


def platform_tags(arch: str, glibc_max: str) -> list[str]:
    """manylinux tags a node with this architecture and glibc accepts, oldest first."""
    newest = int(glibc_max.split(".")[1])
    tags = ["manylinux2014_" + arch]
    tags += ["manylinux_2_%d_%s" % (minor, arch) for minor in range(17, newest + 1)]
    return tags + ["linux_" + arch]


def pin_from_filename(filename: str) -> tuple[str, str] | None:
    """(name, version) of a wheel or source archive file name, None for anything else."""
    if filename.endswith(".whl"):
        name, version = filename[:-4].split("-")[:2]
    else:
        match = re.match(r"^(.+)-([^-]+)\.(?:tar\.gz|zip)$", filename)
        if not match:
            return None
        name, version = match.groups()
    return re.sub(r"[-_.]+", "-", name).lower(), version


def pip_download(args: list[str], python_version: str, dest: str, quiet: bool = False) -> bool:
    """One `pip download`; quiet for attempts that have a fallback, so no false alarms."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--python-version", python_version, "--implementation", "cp", "--dest", dest]
    stderr = subprocess.DEVNULL if quiet else None
    return subprocess.run(command + args, stderr=stderr, check=False).returncode == 0


def binary_args(tags: list[str]) -> list[str]:
    return ["--only-binary=:all:"] + ["--platform=" + tag for tag in tags]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", required=True)
    parser.add_argument("--wheel", required=True)
    parser.add_argument("--extras", default="")
    parser.add_argument("--arch", required=True)
    parser.add_argument("--python-version", required=True)
    parser.add_argument("--glibc-max", default="2.31")
    parser.add_argument("--source-only", nargs="*", default=[],
                        help="distributions to take as source even when a wheel exists")
    options = parser.parse_args(argv)
    requirement = options.wheel + ("[%s]" % options.extras if options.extras else "")
    tags = platform_tags(options.arch, options.glibc_max)
    forced = {re.sub(r"[-_.]+", "-", name).lower() for name in options.source_only}
    os.makedirs(options.dest, exist_ok=True)

    if not forced and pip_download(binary_args(tags) + [requirement], options.python_version,
                                   options.dest, quiet=True):
        return 0

    with tempfile.TemporaryDirectory() as reference:
        if not pip_download(binary_args(platform_tags("x86_64", options.glibc_max)) + [requirement],
                            options.python_version, reference):
            print("cannot resolve %s for Python %s" % (requirement, options.python_version),
                  file=sys.stderr)
            return 1
        pins = sorted(filter(None, (pin_from_filename(name) for name in os.listdir(reference))))
    sources = []
    for name, version in pins:
        if name == "beam-fleet":
            continue
        spec = "%s==%s" % (name, version)
        if name not in forced and pip_download(binary_args(tags) + ["--no-deps", spec],
                                               options.python_version, options.dest, quiet=True):
            continue
        if not pip_download(["--no-deps", "--no-binary=:all:", spec], options.python_version,
                            options.dest):
            print("no wheel for %s and no source archive of %s" % (options.arch, spec),
                  file=sys.stderr)
            return 1
        sources.append(spec)
    if not pip_download(binary_args(tags) + ["--no-deps", options.wheel], options.python_version,
                        options.dest):
        return 1
    if sources:
        if not pip_download(["--only-binary=:all:", *BUILD_TOOLS], options.python_version,
                            options.dest):
            return 1
        with open(os.path.join(options.dest, "SDISTS"), "w", encoding="utf-8") as listing:
            listing.write("\n".join(sources) + "\n")
        print("built on the node from source: %s" % ", ".join(sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
