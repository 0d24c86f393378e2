"""Readings and timestamps as they go over the wire: a valid reading to send, the check a
driver's payload must pass, and RFC 3339 times both ways."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from tests.support.constants import DEVICE


def valid_reading(seq: int, /, **fields: Any) -> dict[str, Any]:
    """A valid reading of DEVICE's Geiger counter for POST /api/readings; `fields` replace."""
    reading: dict[str, Any] = {
        "device_id": DEVICE,
        "sensor": "geiger",
        "sensor_type": "mightyohm",
        "payload": {"cps": 1, "cpm": 38, "usv_per_hr": 0.21, "mode": "SLOW"},
        "timestamp": "2026-02-15T19:06:00.123Z",
        "seq": seq,
    }
    reading.update(fields)
    return reading


def assert_json_payload(payload: Any) -> dict[str, Any]:
    """A driver's payload: a JSON object of finite values (json.dumps raises ValueError on
    NaN and infinity, which are not JSON) that comes back from JSON as it went in."""
    assert isinstance(payload, dict), f"payload must be an object, not {type(payload).__name__}"
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text) == payload, f"payload changes through JSON: {payload!r}"
    return payload


def rfc3339(moment: datetime) -> str:
    """UTC with milliseconds and a 'Z', as the agents send it."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC timestamp as the receiver's API writes it ('Z' suffix)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
