"""Writing configuration files: TOML values, and files only their owner may read."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path


def toml_value(value: object) -> str:
    """A TOML value: booleans, numbers, strings (escaped), arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def toml_lines(values: Mapping[str, object]) -> list[str]:
    """`key = value` lines; None values are left out."""
    return [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]


def write_private(path: Path, text: str) -> Path:
    """A file for secrets (tokens, configs that hold them): mode 0600 from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that was there already
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def bump_mtime(path: Path, seconds: float = 2) -> None:
    """Move a rewritten file's mtime ahead, so that a reader that watches mtimes notices the
    rewrite even on a file system with coarse timestamps."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + int(seconds * 1e9)))
