"""GET /metrics: Prometheus text format (operator token required if so configured)."""

from __future__ import annotations

from flask import Blueprint, Response

from beam_receiver.auth import require_operator
from beam_receiver.state import get_state

bp = Blueprint("metrics", __name__)


def _render() -> Response:
    body, content_type = get_state().metrics.render()
    return Response(body, content_type=content_type)


_render_for_operators = require_operator(_render)


@bp.get("/metrics")
def metrics() -> Response:
    if get_state().config.metrics_require_operator:
        return _render_for_operators()
    return _render()
