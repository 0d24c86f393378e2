"""A JSON document polled over HTTP(S), e.g. a weather station's or an inverter's local API:
the object (or each object of a list) becomes the payload of one sample."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

import requests

from beam_agent import __version__
from beam_agent.drivers.base import Driver, DriverError, Option, OptionError
from beam_agent.reading import Sample

JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def json_type(value: Any) -> str:
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def select(document: Any, field_path: str) -> Any:
    """Follow a dotted path ('data.current', 'items.0') into a JSON document."""
    value = document
    walked: list[str] = []
    for key in field_path.split(".") if field_path else []:
        walked.append(key)
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise ValueError(f"response has no {'.'.join(walked)!r} (field_path {field_path!r})")
    return value


def as_objects(value: Any) -> list[dict[str, Any]]:
    """An object -> [it]; a list of objects -> the list; ValueError for anything else."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise ValueError(
                    f"item {index} of the response is a {json_type(item)}, not an object"
                )
        return value
    raise ValueError(f"response is a {json_type(value)}, not an object or a list of objects")


def redact(url: str) -> str:
    """The URL for messages and logs: without user info and query, which may hold secrets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str, url: str) -> str:
    """`text` without the URL's password and query (requests quotes them in its errors)."""
    parts = urlsplit(url)
    for secret in (parts.query, parts.password):
        if secret:
            text = text.replace(secret, "***")
    return text


class HttpJsonDriver(Driver):
    type_name = "http_json"
    description = (
        "A JSON object, or a list of objects, fetched with HTTP(S) GET on every poll; "
        "one reading per object."
    )
    options = (
        Option("url", str, help="http:// or https:// URL to GET"),
        Option(
            "timeout_s", float, 10.0, help="connect and read timeout", minimum=0.01, maximum=600
        ),
        Option(
            "headers", dict, {}, help='extra request headers, e.g. { Authorization = "Bearer ..." }'
        ),
        Option(
            "field_path",
            str,
            "",
            help="dotted path to the object or list of objects to "
            "use, e.g. 'data.current' or 'items.0'",
        ),
        Option(
            "verify_tls",
            bool,
            True,
            help="check the server's certificate; turn off only "
            "for a self-signed device on a trusted network",
        ),
    )

    @classmethod
    def validate_options(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        options = super().validate_options(raw)
        try:
            parts = urlsplit(options["url"])
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise OptionError("url", f"is not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OptionError(
                "url", f"must be an http:// or https:// URL with a host, got {options['url']!r}"
            )
        for name, value in options["headers"].items():
            if not isinstance(value, str):
                raise OptionError("headers", f"{name}: must be a string, got {value!r}")
            if any(char in name + value for char in "\r\n\0") or not name.strip():
                raise OptionError(
                    "headers",
                    f"{name!r}: header names and values must not be empty or contain line breaks",
                )
        if options["field_path"] and "" in options["field_path"].split("."):
            raise OptionError("field_path", f"has an empty segment: {options['field_path']!r}")
        return options

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(self.validate_options(options))
        self.url: str = self.config["url"]
        self.timeout_s: float = self.config["timeout_s"]
        self.headers: dict[str, str] = dict(self.config["headers"])
        self.field_path: str = self.config["field_path"]
        self.verify_tls: bool = self.config["verify_tls"]
        self.where = redact(self.url)
        self.session: Optional[requests.Session] = None  # opened on first read, kept alive

    def read(self) -> list[Sample]:
        if self.session is None:
            self.session = requests.Session()
            self.session.headers["User-Agent"] = f"beam-agent/{__version__}"
        try:
            response = self.session.get(
                self.url, headers=self.headers, timeout=self.timeout_s, verify=self.verify_tls
            )
        except requests.Timeout as exc:
            raise DriverError(f"GET {self.where} timed out after {self.timeout_s:g} s") from exc
        except requests.RequestException as exc:
            raise DriverError(f"GET {self.where} failed: {scrub(str(exc), self.url)}") from exc
        if not 200 <= response.status_code < 300:
            raise DriverError(
                f"GET {self.where} returned HTTP {response.status_code} {response.reason}".rstrip()
            )
        try:
            document = json.loads(response.content, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise DriverError(f"GET {self.where}: response is not valid JSON: {exc}") from exc
        try:
            payloads = as_objects(select(document, self.field_path))
        except ValueError as exc:
            raise DriverError(f"GET {self.where}: {exc}") from None
        return [self.sample(payload) for payload in payloads]

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
