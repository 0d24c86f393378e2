"""POST /api/readings (devices) and GET /api/readings, /api/readings/latest (operators)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from beam_receiver.api.params import invalid, query_args
from beam_receiver.auth import require_device, require_operator
from beam_receiver.body import read_json_body
from beam_receiver.errors import ApiError
from beam_receiver.queries import parse_latest_query, parse_readings_query
from beam_receiver.state import get_state
from beam_receiver.timestamps import now_ms
from beam_receiver.validation import (
    ValidationError,
    foreign_devices,
    parse_readings,
    reading_items,
)

bp = Blueprint("readings", __name__)


@bp.post("/api/readings")
@require_device
def post_readings() -> dict[str, Any]:
    """Store one reading or a batch, all or nothing; resent readings count as duplicates."""
    state = get_state()
    device_id = g.caller.name
    count = 1
    try:
        items = reading_items(read_json_body(state.config.max_body_bytes))
        count = len(items)
        foreign = foreign_devices(items, device_id)
        if foreign:
            raise ApiError(
                403,
                "forbidden",
                f"A device writes only as itself; this token belongs to {device_id!r}.",
                foreign,
            )
        readings = parse_readings(items, now_ms(), int(state.config.max_future_s * 1000))
    except ValidationError as exc:
        state.metrics.readings_rejected.labels("invalid_body").inc(count)
        raise invalid(exc, "invalid_body") from exc
    except ApiError as exc:
        state.metrics.readings_rejected.labels(exc.error).inc(count)
        raise
    result = state.database.insert_readings(readings)
    state.metrics.readings_accepted.labels(device_id).inc(result.accepted)
    state.metrics.readings_duplicate.labels(device_id).inc(result.duplicates)
    return {"accepted": result.accepted, "duplicates": result.duplicates}


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
