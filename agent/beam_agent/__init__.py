"""beam-agent: the sensor agent that runs on every node of a beam fleet."""

from __future__ import annotations

import os
import sys

DISTRIBUTION = "beam_fleet"  # the installed distribution's name, normalized as in dist-info


def installed_version() -> str:
    """The version of the installed beam-fleet distribution.

    Read from the name of its `beam_fleet-VERSION.dist-info` directory on sys.path, the first
    one in path order as importlib.metadata finds it: importlib.metadata itself (with email,
    zipfile and csv) would add about 4.5 MiB to the agent's resident memory, for one string.
    """
    prefix, suffix = f"{DISTRIBUTION}-", ".dist-info"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith(prefix) and name.endswith(suffix):
                return name[len(prefix) : -len(suffix)]
    try:  # installed some other way (an .egg-info): ask importlib.metadata
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return "0.0.0+unknown"
    try:
        return version("beam-fleet")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


__version__ = installed_version()

PROTOCOL_VERSION = 1
