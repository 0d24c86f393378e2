"""GET /api/openapi.json: the OpenAPI 3.1 description of this API, shipped in the package.

The description (beam_receiver/openapi.json) is written from the real validation; a test
checks that it names every route of the app and nothing else, so it cannot drift.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from flask import Blueprint, Response, current_app

bp = Blueprint("openapi", __name__)


@functools.lru_cache(maxsize=1)
def openapi_text() -> str:
    """The description as compact JSON text (read and checked once per process)."""
    source = resources.files("beam_receiver").joinpath("openapi.json").read_text("utf-8")
    return json.dumps(json.loads(source), separators=(",", ":"), ensure_ascii=False)


def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(openapi_text())
    return document


@bp.get("/api/openapi.json")
def openapi() -> Response:
    """No authentication: the description holds no data, only the shape of the API."""
    return current_app.response_class(openapi_text(), mimetype="application/json")
