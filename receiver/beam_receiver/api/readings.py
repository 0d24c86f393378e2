"""POST /api/readings (devices) and GET /api/readings, /api/readings/latest (operators)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from beam_receiver.api.ingest import WireFormat, ingest
from beam_receiver.api.params import invalid, query_args
from beam_receiver.auth import require_device, require_operator
from beam_receiver.queries import parse_latest_query, parse_readings_query
from beam_receiver.state import get_state
from beam_receiver.storage import NewReading
from beam_receiver.validation import (
    ValidationError,
    foreign_devices,
    parse_readings,
    reading_items,
)

bp = Blueprint("readings", __name__)


def _parse(items: list[Any], device_id: str, now: int, max_future_ms: int) -> list[NewReading]:
    """A reading names its own device_id, already checked against the token's."""
    return parse_readings(items, now, max_future_ms)


# The agent's format: one reading, or {"readings": [...]}, each with its device_id and seq.
READINGS = WireFormat(items=reading_items, foreign=foreign_devices, parse=_parse)


@bp.post("/api/readings")
@require_device
def post_readings() -> dict[str, int]:
    """Store one reading or a batch, all or nothing; resent readings count as duplicates."""
    return ingest(READINGS, g.caller.name)


@bp.get("/api/readings")
@require_operator
def list_readings() -> dict[str, Any]:
    """Readings in stored order, filtered, a page at a time; `next` is the following cursor."""
    try:
        query = parse_readings_query(query_args())
    except ValidationError as exc:
        raise invalid(exc, "invalid_query") from exc
    rows, next_cursor = get_state().database.query_readings(
        device_id=query.device_id,
        sensor=query.sensor,
        sensor_type=query.sensor_type,
        start_ms=query.start_ms,
        end_ms=query.end_ms,
        after_id=query.after_id,
        limit=query.limit,
    )
    return {"readings": rows, "next": None if next_cursor is None else str(next_cursor)}


@bp.get("/api/readings/latest")
@require_operator
def latest_readings() -> dict[str, Any]:
    """The newest reading of every (device_id, sensor), optionally of one device."""
    try:
        device_id = parse_latest_query(query_args())
    except ValidationError as exc:
        raise invalid(exc, "invalid_query") from exc
    return {"readings": get_state().database.latest_readings(device_id)}
