"""Which wire protocol versions this receiver takes, and `protocol_version` in its two forms.

The agent writes a JSON integer (1); the seed systems write a string ("1.0"). Both mean the
same thing, so both are read as MAJOR[.MINOR] and normalised to the major number: a minor
version only adds optional fields (docs/protocol.md: extend, never rename), so the major is
what decides whether this receiver understands a body. The major is what is stored and shown
as the node's `protocol_version`, an integer as before.

No Flask and no database here: validation.py checks the field with `check_version`, the API
counts deprecated versions (`is_deprecated`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional

CURRENT = 1
SUPPORTED = (1, 1)  # majors this receiver speaks, inclusive
# Accepted with a warning, counted in beam_receiver_deprecated_protocol_total: 0 was taken
# without a word before versions were checked, so it keeps working for one more release.
DEPRECATED = (0, 0)
VERSION_TEXT = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,9}))?")  # ASCII digits only
FIELD = "protocol_version"


def supported_range() -> str:
    """The words every refusal carries, so the sender learns what to write."""
    low, high = SUPPORTED
    majors = f"{low}.x" if low == high else f"{low}.x to {high}.x"
    return f'this receiver supports {majors} (write {CURRENT} or "{CURRENT}.0")'


def parse_version(value: Any) -> int:
    """The major version of a number (1, 1.0) or a string ("1", "1.0"); ValueError says why
    the value is no version. Whether the receiver supports it is `check_version`'s part."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f'must be a version like 1 or "1.0", not {_kind(value)}')
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a finite version number of at least 0, got {value!r}")
        return int(value)
    match = VERSION_TEXT.fullmatch(value)
    if match is None:
        raise ValueError(f'must be a version like "1.0" (MAJOR.MINOR), got {value[:32]!r}')
    return int(match.group(1))


def check_version(value: Any) -> tuple[Optional[int], Optional[str]]:
    """(major, None) for a version this receiver takes (null: (None, None), as before), or
    (None, why) naming the supported range when it is refused."""
    if value is None:
        return None, None
    try:
        major = parse_version(value)
    except ValueError as exc:
        return None, f"{exc}; {supported_range()}"
    if SUPPORTED[0] <= major <= SUPPORTED[1] or is_deprecated(major):
        return major, None
    shown = value if isinstance(value, str) else repr(value)
    return None, f"version {shown[:32]} is not supported; {supported_range()}"


def is_deprecated(major: Optional[int]) -> bool:
    return major is not None and DEPRECATED[0] <= major <= DEPRECATED[1]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
