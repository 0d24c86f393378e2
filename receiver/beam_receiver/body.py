"""Read a JSON request body without ever holding more than max_body_bytes of it.

The size is decided before parsing: a Content-Length over the limit is refused before a
byte is read, a chunked body is read only up to the limit, and a gzip body is inflated only
up to the limit, so a few kilobytes of gzip bomb cannot become gigabytes in memory.
"""

from __future__ import annotations

import json
import zlib
from typing import IO, Any

from flask import request

from beam_receiver.errors import ApiError

READ_CHUNK = 64 * 1024
GZIP_ENCODINGS = ("gzip", "x-gzip")


def too_large(max_bytes: int, what: str = "The body") -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"{what} is larger than max_body_bytes ({max_bytes} bytes); send smaller batches.",
        [{"field": None, "message": f"limit is {max_bytes} bytes"}],
    )


def check_content_type() -> str:
    """The body's content coding ("identity" or "gzip"); 415 for anything but JSON."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    ):
        shown = request.content_type or "none"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"The body must be JSON (Content-Type: application/json), not {shown[:100]}.",
            [{"field": "Content-Type", "message": f"got {shown[:100]!r}"}],
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "JSON bodies must be UTF-8.",
            [{"field": "Content-Type", "message": f"charset {charset[:40]!r} is not utf-8"}],
        )
    coding = request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
    if coding in GZIP_ENCODINGS:
        return "gzip"
    if coding != "identity":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Encoding {coding[:40]!r} is not supported; send gzip or no encoding.",
            [{"field": "Content-Encoding", "message": "supported: gzip, identity"}],
        )
    return "identity"


def read_limited(stream: IO[bytes], max_bytes: int) -> bytes:
    """At most max_bytes from the stream; one byte more means the body is too large."""
    chunks = []
    total = 0
    while True:
        chunk = stream.read(min(READ_CHUNK, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise too_large(max_bytes)
    return b"".join(chunks)


def gunzip_limited(data: bytes, max_bytes: int) -> bytes:
    """Inflate gzip (one or more members) but stop as soon as the output passes max_bytes."""
    output = bytearray()
    remaining = data
    while remaining:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            output += inflater.decompress(remaining, max_bytes + 1 - len(output))
            while inflater.unconsumed_tail and len(output) <= max_bytes:
                output += inflater.decompress(inflater.unconsumed_tail, max_bytes + 1 - len(output))
        except zlib.error as exc:
            raise ApiError(
                400,
                "invalid_gzip",
                "The body says Content-Encoding: gzip but is not valid gzip.",
                [{"field": "Content-Encoding", "message": str(exc)}],
            ) from exc
        if len(output) > max_bytes:
            raise too_large(max_bytes, "The decompressed body")
        if not inflater.eof:
            raise ApiError(
                400,
                "invalid_gzip",
                "The gzip body is truncated.",
                [{"field": "Content-Encoding", "message": "the gzip stream ends early"}],
            )
        remaining = inflater.unused_data
    return bytes(output)


def parse_json(data: bytes) -> Any:
    """The parsed document, or 400 naming what is wrong with the bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "invalid_json",
            "The body is not UTF-8 text.",
            [{"field": None, "message": f"invalid byte at offset {exc.start}"}],
        ) from exc
    if not text.strip():
        raise ApiError(400, "invalid_json", "The body is empty; send a JSON object.")
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ApiError(400, "invalid_json", "The JSON is nested too deeply.") from exc
    except ValueError as exc:  # JSONDecodeError, and int() refusing thousands of digits
        raise ApiError(
            400,
            "invalid_json",
            "The body is not valid JSON.",
            [{"field": None, "message": str(exc)[:200]}],
        ) from exc


def read_json_body(max_bytes: int) -> Any:
    """The request's JSON, after the content type, the size limit and any gzip."""
    coding = check_content_type()
    length = request.content_length
    if length is not None and length > max_bytes:
        raise too_large(max_bytes)
    data = read_limited(request.stream, max_bytes)
    if coding == "gzip":
        data = gunzip_limited(data, max_bytes)
    return parse_json(data)
