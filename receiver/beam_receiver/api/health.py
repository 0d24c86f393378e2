"""GET /healthz: 200 while the database answers, 503 (with Retry-After) when it does not."""

from __future__ import annotations

import logging
import sqlite3

from flask import Blueprint, Response, jsonify

from beam_receiver import __version__
from beam_receiver.errors import RETRY_AFTER_S, error_response
from beam_receiver.state import get_state

bp = Blueprint("health", __name__)
log = logging.getLogger("beam_receiver.health")


@bp.get("/healthz")
def healthz() -> Response:
    state = get_state()
    try:
        version = state.database.ping()
    except sqlite3.Error as exc:
        log.error("health check failed: %s", exc, extra={"event": "health_failed"})
        return error_response(
            503,
            "unavailable",
            "The database does not answer.",
            [{"field": "database", "message": str(exc)}],
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    return jsonify(
        {"status": "ok", "database": "ok", "schema_version": version, "version": __version__}
    )
