"""What the receiver hands to storage and gets back, whichever backend holds the data.

No SQL and no database module here: validation, collectd and the query-string parsers import
these record types and limits without pulling in a database driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

# SQLite's INTEGER range, and PostgreSQL's bigint: what a seq, and any integer in a payload,
# must fit in.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class NewReading(NamedTuple):
    """A validated reading, in the column order of INSERT_READING (received_at_ms aside).

    Every endpoint that writes readings hands them to storage in this one form. seq is None
    when the sender has none (collectd): insert_readings numbers those itself.
    """

    device_id: str
    seq: Optional[int]
    sensor: str
    sensor_type: str
    timestamp: str
    ts_ms: int
    payload: str  # JSON text of an object


class Heartbeat(NamedTuple):
    node_id: str
    timestamp: str
    role: Optional[str]
    uptime_seconds: Optional[float]
    software_version: Optional[str]
    ip_address: Optional[str]
    protocol_version: Optional[int]
    queue_depth: Optional[int]
    metrics: str  # JSON text of an object
    tags: str  # JSON text of an object


class Registration(NamedTuple):
    node_id: str
    role: Optional[str]
    hostname: Optional[str]
    ip_address: Optional[str]
    software_version: Optional[str]
    tags: str  # JSON text of an object


class DashboardLogin(NamedTuple):
    """A dashboard login that has not been ended: whose, and under which password."""

    username: str
    password_fingerprint: str
    started_at_ms: int


class LoginLimit(NamedTuple):
    """How many login attempts one key (a user name, a client address) may make per window."""

    key: str
    max_attempts: int


@dataclass(frozen=True)
class InsertResult:
    accepted: int
    duplicates: int


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer beam-receiver than this one."""


def payload_path(field: str) -> list[str]:
    """A payload field's keys, outermost first; dots reach into nested objects ("env.temp")."""
    parts = field.split(".")
    if not all(parts) or any('"' in part for part in parts):
        raise ValueError(f"{field!r} is not a payload field name")
    return parts


def json_path(field: str) -> str:
    """A JSON path for a payload field, in SQLite's json_extract syntax: $."env"."temp"."""
    return "$" + "".join(f'."{part}"' for part in payload_path(field))
