"""POST /api/nodes/register (devices); GET /api/nodes, /api/nodes/<id> and its heartbeat
history (operators)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from beam_receiver import fleet
from beam_receiver.api.params import invalid, query_args
from beam_receiver.api.telemetry import check_own_node
from beam_receiver.api.versions import note_deprecated
from beam_receiver.auth import require_device, require_operator
from beam_receiver.body import read_json_body
from beam_receiver.errors import ApiError
from beam_receiver.queries import parse_window_query
from beam_receiver.state import get_state
from beam_receiver.status import status_segments
from beam_receiver.timestamps import format_ms, now_ms
from beam_receiver.validation import ValidationError, parse_registration

bp = Blueprint("nodes", __name__)


@bp.post("/api/nodes/register")
@require_device
def register() -> dict[str, Any]:
    """Record hostname, address, role, software version and tags of the calling node."""
    state = get_state()
    body = read_json_body(state.config.max_body_bytes)
    check_own_node(body, g.caller.name)
    try:
        registration = parse_registration(body)
    except ValidationError as exc:
        raise invalid(exc, "invalid_body") from exc
    state.database.register_node(registration)
    note_deprecated(body, "register")
    node = fleet.get_node(registration.node_id)
    return {"registered": True, "node": node}


def _no_parameters() -> None:
    args = query_args()
    if args:
        raise ApiError(
            400,
            "invalid_query",
            "This endpoint takes no query parameters.",
            [{"field": name, "message": "unknown parameter"} for name in sorted(args)],
        )


@bp.get("/api/nodes")
@require_operator
def list_nodes() -> dict[str, Any]:
    """Every node the inventory expects or that reported, with its status, and the newest
    rollout the nodes report."""
    _no_parameters()
    nodes = fleet.list_nodes()
    return {"nodes": nodes, "last_rollout": fleet.last_rollout(nodes)}


@bp.get("/api/nodes/<node_id>")
@require_operator
def get_node(node_id: str) -> dict[str, Any]:
    _no_parameters()
    node = fleet.get_node(node_id)
    if node is None:
        raise ApiError(
            404,
            "not_found",
            f"No node {node_id[:128]!r} has reported, and the inventory does not list it.",
        )
    return node


@bp.get("/api/nodes/<node_id>/telemetry")
@require_operator
def node_telemetry(node_id: str) -> dict[str, Any]:
    """The node's last 100 heartbeats, newest first (for diagnosing one node)."""
    _no_parameters()
    if fleet.get_node(node_id) is None:
        raise ApiError(404, "not_found", f"No node {node_id[:128]!r} is known.")
    return {"node_id": node_id, "events": get_state().database.telemetry_events(node_id)}


# At most this many heartbeats are read for one history: 31 days at one every 30 s is 89,280.
MAX_HISTORY_HEARTBEATS = 100_000


@bp.get("/api/nodes/<node_id>/status-history")
@require_operator
def node_status_history(node_id: str) -> dict[str, Any]:
    """The node's status over a window, from when its heartbeats arrived (the dashboard's
    heartbeat history): online, degraded and offline by the same rule as its status now."""
    try:
        window = parse_window_query(query_args(), now_ms())
    except ValidationError as exc:
        raise invalid(exc, "invalid_query") from exc
    if fleet.get_node(node_id) is None:
        raise ApiError(404, "not_found", f"No node {node_id[:128]!r} is known.")
    state = get_state()
    previous, beats = state.database.heartbeat_times(
        node_id, window.start_ms, window.end_ms, MAX_HISTORY_HEARTBEATS
    )
    truncated = len(beats) >= MAX_HISTORY_HEARTBEATS
    end_ms = beats[-1] if truncated else window.end_ms
    interval_s = state.config.telemetry_interval_s
    segments = status_segments(previous, beats, interval_s, window.start_ms, end_ms)
    return {
        "node_id": node_id,
        "start": format_ms(window.start_ms),
        "end": format_ms(end_ms),
        "interval_s": interval_s,
        "heartbeats": len(beats),
        "truncated": truncated,
        "segments": [
            {"status": status, "start": format_ms(begin), "end": format_ms(finish)}
            for status, begin, finish in segments
        ],
    }
