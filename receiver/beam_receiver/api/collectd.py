"""POST /api/collectd: collectd's write_http JSON, stored as readings of the token's device.

collectd (`LoadPlugin write_http`, `Format "JSON"`, `Header "Authorization: Bearer ..."`)
posts arrays of value lists and never retries. The mapping to readings and the identity
the receiver gives them are described in beam_receiver.collectd.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from beam_receiver.api.params import invalid
from beam_receiver.auth import require_device
from beam_receiver.body import read_json_body
from beam_receiver.collectd import (
    foreign_hosts,
    parse_value_lists,
    store_value_lists,
    value_list_items,
)
from beam_receiver.errors import ApiError
from beam_receiver.state import get_state
from beam_receiver.timestamps import now_ms
from beam_receiver.validation import ValidationError

bp = Blueprint("collectd", __name__)


@bp.post("/api/collectd")
@require_device
def post_collectd() -> dict[str, Any]:
    """Store every value list of the body, all or nothing; one reading per value list."""
    state = get_state()
    device_id = g.caller.name
    count = 1
    try:
        items = value_list_items(read_json_body(state.config.max_body_bytes))
        count = len(items)
        foreign = foreign_hosts(items, device_id)
        if foreign:
            raise ApiError(
                403,
                "forbidden",
                f"A device writes only as itself; this token belongs to {device_id!r}.",
                foreign,
            )
        value_lists = parse_value_lists(
            items, device_id, now_ms(), int(state.config.max_future_s * 1000)
        )
    except ValidationError as exc:
        state.metrics.readings_rejected.labels("invalid_body").inc(count)
        raise invalid(exc, "invalid_body") from exc
    except ApiError as exc:
        state.metrics.readings_rejected.labels(exc.error).inc(count)
        raise
    result = store_value_lists(state.database, value_lists)
    state.metrics.readings_accepted.labels(device_id).inc(result.accepted)
    state.metrics.readings_duplicate.labels(device_id).inc(result.duplicates)
    return {"accepted": result.accepted, "duplicates": result.duplicates}
