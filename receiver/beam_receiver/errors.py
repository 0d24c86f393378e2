"""Every API error is the same JSON shape: {"error": code, "message": ..., "details": [...]}.

Agents and scripts branch on the status and the `error` code, people read the message, and
`details` names the field (and, in a batch, the index) that was wrong.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from beam_receiver.state import get_state

log = logging.getLogger("beam_receiver.errors")

# Paths whose errors are JSON; everything else (the dashboard) keeps HTML error pages.
JSON_PATHS = ("/api", "/healthz", "/metrics")

# How long a client should wait before retrying when the database is busy or unreachable.
RETRY_AFTER_S = 5

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answer: status, machine-readable code, a sentence, and what exactly was wrong."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        details: Optional[list[dict[str, Any]]] = None,
        headers: Optional[dict[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def error_response(
    status: int,
    error: str,
    message: str,
    details: Optional[list[dict[str, Any]]] = None,
    headers: Optional[dict[str, str]] = None,
) -> Response:
    response = jsonify({"error": error, "message": message, "details": details or []})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def wants_json_errors() -> bool:
    path = request.path
    return path in JSON_PATHS or path.startswith("/api/")


def handle_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.error, exc.message, exc.details, exc.headers)


def handle_http_exception(exc: HTTPException) -> Any:
    """Werkzeug's 404, 405, 413 ... as JSON on API paths, as HTML pages elsewhere."""
    if not wants_json_errors():
        return exc
    status = exc.code or 500
    headers = {}
    original = exc.get_response()
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in original.headers:
            headers[name] = original.headers[name]
    message = exc.description or exc.name
    return error_response(status, ERROR_CODES.get(status, f"http_{status}"), message, [], headers)


def log_database_error(exc: Exception, event: str) -> None:
    """The database's own words (paths, lock and disk states) go to the log, with the request id;
    answers never carry them."""
    log.error(
        "database unavailable: %s",
        exc,
        extra={"event": event, "error": str(exc), "request_id": g.get("request_id")},
    )


def unavailable_response(message: str) -> Response:
    """503 with Retry-After and a generic message: the reason is in the log."""
    return error_response(503, "unavailable", message, [], {"Retry-After": str(RETRY_AFTER_S)})


def handle_database_error(exc: Exception) -> Any:
    """A locked, full, missing or unreachable database is a reason to retry later, not a 500.

    Integrity and programming errors are bugs, not outages: those stay 500s. The backend
    says which is which (Storage.is_outage).
    """
    if not get_state().database.is_outage(exc):
        return handle_unexpected_error(exc)
    log_database_error(exc, "database_error")
    message = "The database is busy or unavailable; retry later."
    if not wants_json_errors():
        unavailable = ServiceUnavailable(message)
        return unavailable.get_response(), 503, {"Retry-After": str(RETRY_AFTER_S)}
    return unavailable_response(message)


def handle_unexpected_error(exc: Exception) -> Any:
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    log.exception("unhandled error", extra={"event": "unhandled_error"})
    if not wants_json_errors():
        return "Internal Server Error", 500, {"Content-Type": "text/plain; charset=utf-8"}
    return error_response(500, "internal_error", "An unexpected error occurred; it was logged.")


def register_error_handlers(app: Flask, database_errors: tuple[type[Exception], ...]) -> None:
    """database_errors: the storage backend's exception classes (Storage.errors)."""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    for error in database_errors:
        app.register_error_handler(error, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected_error)
