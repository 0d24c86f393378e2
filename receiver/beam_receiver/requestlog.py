"""Request ids, one structured (JSON) log line per request, and the request metrics.

An incoming X-Request-ID is kept (so a proxy's or an agent's id follows the request through
the logs), otherwise one is made; either way it is echoed as a response header and stamped
on every log line written while the request runs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from typing import Any, Optional

from flask import Flask, Response, g, has_request_context, request

from beam_receiver.state import get_state

REQUEST_ID_HEADER = "X-Request-ID"
# The methods a metric label may name; any other counts as "other", so that a client
# inventing methods cannot add series without bound. (The endpoint label is a route or
# "unmatched", and the code is one the app chose: both bounded already.)
LABELLED_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
access_log = logging.getLogger("beam_receiver.access")

# LogRecord attributes that are not extra fields.
STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def request_id_from(header: Optional[str]) -> str:
    """The client's id when it is a sane token, else a fresh random one."""
    if header and REQUEST_ID_PATTERN.fullmatch(header):
        return header
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if "request_id" not in entry and has_request_context():
            request_id = g.get("request_id")
            if request_id:
                entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the receiver's loggers (serve and the WSGI entry call this)."""
    logger = logging.getLogger("beam_receiver")
    if any(getattr(h, "_beam_receiver", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._beam_receiver = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _start_request() -> None:
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or request_id_from(None)
    response.headers[REQUEST_ID_HEADER] = request_id
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics = get_state().metrics
    method = request.method if request.method in LABELLED_METHODS else "other"
    metrics.requests.labels(endpoint, method, str(response.status_code)).inc()
    metrics.latency.labels(endpoint).observe(elapsed)
    caller = g.get("caller")
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "event": "request",
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "endpoint": endpoint,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 2),
            "remote_addr": request.remote_addr,
            "caller": f"{caller.kind}:{caller.name}" if caller is not None else None,
            "request_bytes": request.content_length,
            "agent_version": request.headers.get("X-Beam-Agent-Version"),
        },
    )
    return response


def init_request_logging(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)
