"""RFC 3339 timestamps in, epoch milliseconds inside, RFC 3339 UTC 'Z' strings out.

Written by hand rather than with datetime.fromisoformat so that Python 3.9 and 3.13 accept
exactly the same strings, and so that every rejection says what was wrong.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Optional

RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))$"
)
# The form agents send (UTC, 'Z', at most microseconds): parsed without datetime, fast.
CANONICAL = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z"
)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class TimestampError(ValueError):
    """Why a string is not an acceptable RFC 3339 timestamp."""


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _parse_canonical(text: str) -> Optional[int]:
    """Epoch ms of a plainly valid 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z', else None."""
    match = CANONICAL.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    if year < 1970 or not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return None
    leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= MONTH_DAYS[month - 1] + leap:
        return None
    fraction = match.group(7) or ""
    seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return seconds * 1000 + (int((fraction + "00")[:3]) if fraction else 0)


def parse_rfc3339(text: str) -> tuple[int, str]:
    """(epoch milliseconds, the same instant as 'YYYY-MM-DDTHH:MM:SS[.fraction]Z').

    The fraction is kept as sent (up to microseconds), so a timestamp already in UTC 'Z'
    form comes back unchanged.
    """
    epoch_ms = _parse_canonical(text)
    if epoch_ms is not None:
        return epoch_ms, text
    match = RFC3339.fullmatch(text)
    if match is None:
        raise TimestampError(
            f"{text[:40]!r} is not an RFC 3339 timestamp like 2026-02-15T19:06:00.123Z"
        )
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "")[:6]
    if second == 60:
        raise TimestampError(f"{text!r}: leap seconds (:60) cannot be stored")
    try:
        moment = datetime(
            year,
            month,
            day,
            hour,
            minute,
            second,
            int(fraction.ljust(6, "0")) if fraction else 0,
            tzinfo=timezone.utc,
        )
    except ValueError as exc:
        raise TimestampError(f"{text!r}: {exc}") from exc
    if match.group(9):
        offset_hours, offset_minutes = int(match.group(10)), int(match.group(11))
        if offset_hours > 23 or offset_minutes > 59:
            raise TimestampError(f"{text!r}: the UTC offset is out of range")
        offset = timedelta(hours=offset_hours, minutes=offset_minutes)
        try:
            moment = moment - offset if match.group(9) == "+" else moment + offset
        except OverflowError as exc:
            raise TimestampError(f"{text!r}: out of range") from exc
    if moment < EPOCH:
        raise TimestampError(f"{text!r} is before 1970-01-01T00:00:00Z")
    delta = moment - EPOCH
    epoch_ms = (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return epoch_ms, format_datetime(moment, len(fraction))


def format_datetime(moment: datetime, fraction_digits: int = 3) -> str:
    """RFC 3339 in UTC with a 'Z' and 0 to 6 fraction digits."""
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction_digits > 0:
        text += "." + f"{moment.microsecond:06d}"[:fraction_digits]
    return text + "Z"


def format_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds, the agent's own format."""
    return format_datetime(EPOCH + timedelta(milliseconds=epoch_ms), 3)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
