"""GET /healthz: 200 while the database takes a write, 503 (with Retry-After) when not.

A read alone would pass on a full disk, a read-only file or a lock held for good, and
every batch would still fail: so the check is a real write (Storage.probe_write), made at
most once a second per worker (health_probe.py).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from beam_receiver import __version__
from beam_receiver.errors import log_database_error, unavailable_response
from beam_receiver.state import get_state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    state = get_state()
    try:
        version = state.write_probe.check()
    except state.database.errors as exc:
        log_database_error(exc, "health_failed")
        return unavailable_response("The database does not take writes; retry later.")
    return jsonify(
        {"status": "ok", "database": "ok", "schema_version": version, "version": __version__}
    )
