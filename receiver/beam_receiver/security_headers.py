"""Headers that every answer carries: API, errors, /healthz, /metrics and the dashboard.

No answer of the receiver is meant to be sniffed into another type, framed by another site
or to leak its URL in a Referer. The dashboard sets its own Content-Security-Policy and
Referrer-Policy first (dashboard/views.py); these fill in what an answer does not set. HSTS
goes only on answers to HTTPS requests (behind a TLS proxy, with `proxy_fix`), as RFC 6797
asks: over plain HTTP the header would be ignored anyway.
"""

from __future__ import annotations

from flask import Flask, Response, request

# On every answer.
ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
)
# Nothing in a JSON or text answer may load or frame anything, or be named in a Referer.
UNLESS_SET = (
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
)
API_HEADERS = ALWAYS + UNLESS_SET
# One year; not includeSubDomains: other services on sibling names are not ours to pin.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def add_security_headers(response: Response) -> Response:
    """An answer with its own Content-Security-Policy (a dashboard page, which sets its
    Referrer-Policy too) keeps both; any other answer gets all four in one extend, the
    cheapest way on the agents' path (a few microseconds)."""
    headers = response.headers
    if "Content-Security-Policy" in headers:
        for name, value in ALWAYS:
            headers.setdefault(name, value)
    else:
        headers.extend(API_HEADERS)
    if request.is_secure:
        headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    return response


def init_security_headers(app: Flask) -> None:
    """After every request, error answers included (each error handler's answer passes)."""
    app.after_request(add_security_headers)
