"""Turn fleet values into the short words a person reads in the table."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional, Union

STATUS_LABELS = {
    "online": "Online",
    "degraded": "Degraded",
    "offline": "Offline",
    "unexpected": "Unexpected",
}

STATUS_HINTS = {
    "online": "heartbeat within 2x the telemetry interval",
    "degraded": "heartbeat late: within 5x the telemetry interval",
    "offline": "no heartbeat for more than 5x the telemetry interval, or never",
    "unexpected": "reporting, but not in the inventory's node list",
}


def status_label(status: object) -> str:
    """The word shown next to the status colour, so colour is never the only signal."""
    return STATUS_LABELS.get(str(status), str(status).capitalize() or "Unknown")


def status_hint(status: object) -> str:
    """A one-line explanation of a status, shown as a tooltip."""
    return STATUS_HINTS.get(str(status), "")


def status_class(status: object) -> str:
    """A CSS class from a fixed set, whatever the status string holds."""
    return f"status-{status}" if status in STATUS_LABELS else "status-unknown"


def parse_timestamp(value: Union[str, float, int, None]) -> Optional[datetime]:
    """Read an RFC 3339 string or epoch seconds; None when absent or unreadable.

    Python 3.9's fromisoformat takes neither 'Z' nor every fraction length, so both are
    normalised first: the receiver ships in the same wheel as the 3.9 agent.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{(digits + '000000')[:6]}{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def describe_age(value: Union[str, float, int, None], now: Optional[datetime] = None) -> str:
    """'42 s ago', '5 min ago', '3 h ago', '2 d ago', or 'never'."""
    seen = parse_timestamp(value)
    if seen is None:
        return "never" if value is None else str(value)
    seconds = int(((now or datetime.now(timezone.utc)) - seen).total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def iso_utc(value: Union[str, float, int, None]) -> str:
    """The machine-readable form for a <time datetime> attribute ('' when unknown)."""
    seen = parse_timestamp(value)
    return seen.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if seen else ""
