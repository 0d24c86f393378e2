"""Turning query strings and validation failures into answers, the same way everywhere."""

from __future__ import annotations

from flask import request

from beam_receiver.errors import ApiError
from beam_receiver.validation import ValidationError


def query_args() -> dict[str, str]:
    """The query string as name -> value; a repeated name is ambiguous, so it is a 400."""
    repeated = sorted(name for name in request.args if len(request.args.getlist(name)) > 1)
    if repeated:
        raise ApiError(
            400,
            "invalid_query",
            "A query parameter was given more than once.",
            [{"field": name, "message": "given more than once"} for name in repeated],
        )
    return request.args.to_dict()


def invalid(exc: ValidationError, error: str) -> ApiError:
    """A 400 carrying the validation details (field and, in a batch, index)."""
    return ApiError(400, error, exc.message, exc.details)
