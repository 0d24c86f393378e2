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

pip evaluates environment markers with the Python that runs it, not the target's
(`--python-version` only selects wheels): downloading for Python 3.9 from 3.11 leaves out
`tomli; python_version < "3.11"`. So the set is then completed for the target: every
wheel's Requires-Dist is evaluated with the target's markers, and what is missing is fetched
the same way, until nothing is.

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
import zipfile

from packaging.markers import default_environment
from packaging.requirements import Requirement

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


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def target_environment(arch: str, python_version: str) -> dict[str, str]:
    """Marker values of a CPython node on Linux with this architecture and Python."""
    environment = dict(default_environment())
    environment.update({
        "python_version": python_version, "python_full_version": python_version + ".0",
        "implementation_version": python_version + ".0", "platform_machine": arch,
        "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
    })
    return environment


def wheel_requires(path: str) -> list[Requirement]:
    """A wheel's Requires-Dist lines."""
    with zipfile.ZipFile(path) as wheel:
        metadata = next(name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata).decode("utf-8")
    return [Requirement(line.split(":", 1)[1].strip()) for line in text.splitlines()
            if line.startswith("Requires-Dist:")]


def missing_for_target(dest: str, root: str, extras: set[str], environment: dict[str, str]) -> list[Requirement]:
    """Requirements the target needs (its markers) that no file in dest provides."""
    files = {}
    for filename in os.listdir(dest):
        pin = pin_from_filename(filename)
        if pin:
            files[pin[0]] = os.path.join(dest, filename)
    missing, seen = [], set()
    pending = [(canonical(root), frozenset(extras))]
    while pending:
        name, wanted = pending.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        path = files.get(name)
        if path is None or not path.endswith(".whl"):
            continue  # source archives declare their needs only when built (psutil has none)
        for requirement in wheel_requires(path):
            applies = requirement.marker is None or any(
                requirement.marker.evaluate(dict(environment, extra=extra)) for extra in (wanted or {""}))
            if not applies:
                continue
            if canonical(requirement.name) in files:
                pending.append((canonical(requirement.name), frozenset(requirement.extras)))
            elif canonical(requirement.name) not in {canonical(r.name) for r in missing}:
                missing.append(requirement)
    return missing


def fetch(spec: str, tags: list[str], options: argparse.Namespace, forced: set[str]) -> str:
    """One distribution for the target: "wheel", "source" or "" when neither exists."""
    name = canonical(Requirement(spec).name)
    if name not in forced and pip_download(binary_args(tags) + ["--no-deps", spec],
                                           options.python_version, options.dest, quiet=True):
        return "wheel"
    if pip_download(["--no-deps", "--no-binary=:all:", spec], options.python_version, options.dest):
        return "source"
    return ""


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

    sources: list[str] = []
    if forced or not pip_download(binary_args(tags) + [requirement], options.python_version,
                                  options.dest, quiet=True):
        with tempfile.TemporaryDirectory() as reference:
            if not pip_download(binary_args(platform_tags("x86_64", options.glibc_max)) + [requirement],
                                options.python_version, reference):
                print("cannot resolve %s for Python %s" % (requirement, options.python_version),
                      file=sys.stderr)
                return 1
            pins = sorted(filter(None, (pin_from_filename(name) for name in os.listdir(reference))))
        for name, version in pins:
            if name == "beam-fleet":
                continue
            spec = "%s==%s" % (name, version)
            got = fetch(spec, tags, options, forced)
            if not got:
                print("no wheel for %s and no source archive of %s" % (options.arch, spec), file=sys.stderr)
                return 1
            if got == "source":
                sources.append(spec)
        if not pip_download(binary_args(tags) + ["--no-deps", options.wheel], options.python_version,
                            options.dest):
            return 1
    # complete the set with what the target's own markers ask for (see the docstring)
    environment = target_environment(options.arch, options.python_version)
    extras = {extra for extra in options.extras.split(",") if extra}
    for _round in range(10):
        missing = missing_for_target(options.dest, "beam-fleet", extras, environment)
        if not missing:
            break
        for needed in missing:
            spec = needed.name + str(needed.specifier)
            got = fetch(spec, tags, options, forced)
            if not got:
                print("no wheel for %s and no source archive of %s" % (options.arch, spec), file=sys.stderr)
                return 1
            print("for Python %s on %s also: %s (%s)" % (options.python_version, options.arch, spec, got))
            if got == "source":
                sources.append(spec)
    else:
        print("the requirements for %s did not settle after 10 rounds" % options.arch, file=sys.stderr)
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
