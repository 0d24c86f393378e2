"""GET /api/analytics/series: count/min/max/avg of one payload field per time bucket."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from beam_receiver.api.params import invalid, query_args
from beam_receiver.auth import require_operator
from beam_receiver.queries import parse_series_query
from beam_receiver.state import get_state
from beam_receiver.timestamps import format_ms, now_ms
from beam_receiver.validation import ValidationError

bp = Blueprint("analytics", __name__)


@bp.get("/api/analytics/series")
@require_operator
def series() -> dict[str, Any]:
    """Buckets computed in SQL; e.g. field=cpm of a Geiger counter gives counts per minute."""
    try:
        query = parse_series_query(query_args(), now_ms())
    except ValidationError as exc:
        raise invalid(exc, "invalid_query") from exc
    buckets = get_state().database.series(
        query.device_id, query.sensor, query.field, query.bucket_ms, query.start_ms, query.end_ms
    )
    return {
        "device_id": query.device_id,
        "sensor": query.sensor,
        "field": query.field,
        "bucket_s": query.bucket_ms / 1000,
        "start": format_ms(query.start_ms),
        "end": format_ms(query.end_ms),
        "buckets": [
            {
                "start": format_ms(bucket["start_ms"]),
                "count": bucket["count"],
                "min": bucket["min"],
                "max": bucket["max"],
                "avg": bucket["avg"],
            }
            for bucket in buckets
        ],
    }
