"""POST /api/telemetry: a node's heartbeat, kept as an event and as its current state."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from beam_receiver.api.params import invalid
from beam_receiver.api.versions import note_deprecated
from beam_receiver.auth import require_device
from beam_receiver.body import read_json_body
from beam_receiver.errors import ApiError
from beam_receiver.state import get_state
from beam_receiver.timestamps import format_ms, now_ms
from beam_receiver.validation import ValidationError, node_id_of, parse_heartbeat

bp = Blueprint("telemetry", __name__)


def check_own_node(body: Any, device_id: str) -> None:
    """A device reports only about itself."""
    claimed = node_id_of(body)
    if claimed is not None and claimed != device_id:
        raise ApiError(
            403,
            "forbidden",
            f"This token belongs to {device_id!r}, not {claimed[:128]!r}.",
            [{"field": "node_id", "message": "does not match the token"}],
        )


@bp.post("/api/telemetry")
@require_device
def post_telemetry() -> dict[str, Any]:
    state = get_state()
    body = read_json_body(state.config.max_body_bytes)
    check_own_node(body, g.caller.name)
    received = now_ms()
    try:
        heartbeat = parse_heartbeat(body, received, int(state.config.max_future_s * 1000))
    except ValidationError as exc:
        raise invalid(exc, "invalid_body") from exc
    retention_days = state.config.telemetry_retention_days
    state.database.record_heartbeat(
        heartbeat,
        received,
        keep_events_ms=int(retention_days * 86_400_000) if retention_days > 0 else None,
    )
    state.metrics.heartbeats.labels(heartbeat.node_id).inc()
    note_deprecated(body, "telemetry")
    # received_at is the receiver's clock: a node can compare it with its own.
    return {"node_id": heartbeat.node_id, "received_at": format_ms(received)}
