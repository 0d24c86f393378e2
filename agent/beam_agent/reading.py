"""The reading: what a driver measures, and the unified JSON form the receiver stores."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a 'Z', as the contract fixes it."""
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (a 'Z' or an explicit offset) into an aware UTC datetime."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class Sample:
    """One measurement as a driver returns it: not yet tied to a device, a sensor name or a seq."""

    sensor_type: str
    payload: dict[str, Any]
    timestamp: datetime = field(default_factory=utc_now)


@dataclass(frozen=True)
class Reading:
    """A sample attributed to a device and a configured sensor; `seq` is set by the queue."""

    device_id: str
    sensor: str
    sensor_type: str
    payload: dict[str, Any]
    timestamp: datetime
    seq: Optional[int] = None

    @classmethod
    def from_sample(cls, device_id: str, sensor: str, sample: Sample) -> Reading:
        return cls(
            device_id=device_id,
            sensor=sensor,
            sensor_type=sample.sensor_type,
            payload=sample.payload,
            timestamp=sample.timestamp,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "sensor": self.sensor,
            "sensor_type": self.sensor_type,
            "payload": self.payload,
            "timestamp": format_timestamp(self.timestamp),
            "seq": self.seq,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))


def finite(value: float) -> Optional[float]:
    """Drivers report a value that cannot be measured as null rather than NaN."""
    return value if math.isfinite(value) else None
