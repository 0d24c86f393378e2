"""Security headers on every answer, HSTS over HTTPS only, and `proxy_fix`: behind one
reverse proxy the client's address, scheme and host come from its X-Forwarded-* headers;
without it those headers change nothing.

Real apps from create_app on real files, through Flask's test client (base_url
https://... is a request that came over TLS).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest
from werkzeug.test import TestResponse

from tests.support.app import Receiver
from tests.support.constants import PASSWORD, USER
from tests.support.dashboard import csrf_token, form_login

HSTS = "Strict-Transport-Security"
ON_EVERY_ANSWER = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def assert_security_headers(response: TestResponse) -> None:
    for name, value in ON_EVERY_ANSWER.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    for name in (*ON_EVERY_ANSWER, "Content-Security-Policy", "Referrer-Policy", HSTS):
        assert len(response.headers.getlist(name)) <= 1, (name, "sent twice")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] in ("no-referrer", "same-origin")


def every_kind_of_answer(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]], **request: Any
) -> dict[str, TestResponse]:
    """One answer of each kind the receiver gives: API, errors, health, metrics, pages."""
    client = receiver.client

    def explode() -> str:
        raise RuntimeError("a bug")

    receiver.app.add_url_rule("/api/explode", "explode", explode)
    answers = {
        "200 write": client.post(
            "/api/readings", json=make_reading(1), headers=receiver.headers(), **request
        ),
        "400": client.post(
            "/api/readings", json={"seq": "x"}, headers=receiver.headers(), **request
        ),
        "401": client.get("/api/nodes", **request),
        "403": client.get("/api/nodes", headers=receiver.headers(), **request),
        "404": client.get("/api/nothing-here", **request),
        "405": client.delete("/api/readings", headers=receiver.operator(), **request),
        "413": client.post(
            "/api/readings",
            data=b"{}",
            headers=receiver.headers(),
            content_type="application/json",
            environ_overrides={"CONTENT_LENGTH": str(10**9)},
            **request,
        ),
        "500": client.get("/api/explode", **request),
        "healthz": client.get("/healthz", **request),
        "metrics": client.get("/metrics", headers=receiver.operator(), **request),
        "metrics 401": client.get("/metrics", **request),
        "openapi": client.get("/api/openapi.json", **request),
        "login page": client.get("/login", **request),
        "redirect to login": client.get("/", **request),
        "static file": client.get("/dashboard/static/dashboard.css", **request),
        "html 404": client.get("/no-such-page", **request),
    }
    with receiver.write_lock_held():
        answers["503"] = client.post(
            "/api/readings", json=make_reading(2), headers=receiver.headers(), **request
        )
    return answers


@pytest.mark.parametrize("base_url", ["http://localhost", "https://receiver.example"])
def test_every_answer_carries_the_security_headers_and_hsts_only_over_https(
    make_receiver: Callable[..., Receiver],
    make_reading: Callable[..., dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    base_url: str,
) -> None:
    receiver = make_receiver(busy_timeout_ms=50)
    with caplog.at_level(logging.CRITICAL):
        answers = every_kind_of_answer(receiver, make_reading, base_url=base_url)
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "200 write": 200,
        "400": 400,
        "401": 401,
        "403": 403,
        "404": 404,
        "405": 405,
        "413": 413,
        "500": 500,
        "healthz": 200,
        "metrics": 200,
        "metrics 401": 401,
        "openapi": 200,
        "login page": 200,
        "redirect to login": 302,
        "static file": 200,
        "html 404": 404,
        "503": 503,
    }
    for response in answers.values():
        assert_security_headers(response)
        if base_url.startswith("https:"):
            assert response.headers[HSTS] == "max-age=31536000"
        else:
            assert HSTS not in response.headers
    # The dashboard keeps its own, richer policy; JSON answers may load nothing at all.
    assert "script-src 'self'" in answers["login page"].headers["Content-Security-Policy"]
    assert answers["login page"].headers["Referrer-Policy"] == "same-origin"
    assert answers["healthz"].headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert answers["healthz"].headers["Referrer-Policy"] == "no-referrer"


def forwarded(address: str, scheme: str = "https", host: str = "fleet.example") -> dict[str, Any]:
    """What nginx adds in front of the receiver, from 127.0.0.1."""
    return {
        "environ_base": {"REMOTE_ADDR": "127.0.0.1"},
        "headers": {
            "X-Forwarded-For": address,
            "X-Forwarded-Proto": scheme,
            "X-Forwarded-Host": host,
        },
    }


def logged_address(caplog: pytest.LogCaptureFixture, request: Callable[[], Any]) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="beam_receiver.access"):
        request()
    (record,) = [r for r in caplog.records if r.name == "beam_receiver.access"]
    return str(record.remote_addr)  # type: ignore[attr-defined]


def failed_login(receiver: Receiver, address: str) -> int:
    """A wrong password through the login form, from `address` behind the proxy."""
    options = forwarded(address)
    client = receiver.app.test_client()
    page = client.get("/login", **options)
    form = {"csrf_token": csrf_token(page.get_data(as_text=True))}
    form.update(username=f"guess-{address}", password="wrong")
    # The browser's Referer: same origin, as the public host the proxy forwards.
    headers = {**options["headers"], "Referer": "https://fleet.example/login"}
    return client.post(
        "/login", data=form, environ_base=options["environ_base"], headers=headers
    ).status_code


def test_without_proxy_fix_forwarded_headers_change_nothing(
    make_receiver: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    receiver = make_receiver(login_max_failures_per_address=2)
    options = forwarded("198.51.100.7")
    response = receiver.client.get("/healthz", **options)
    assert HSTS not in response.headers
    request = lambda: receiver.client.get("/healthz", **options)  # noqa: E731
    assert logged_address(caplog, request) == "127.0.0.1"
    # Every client counts as the proxy's address for the login limit: one shared count.
    assert [failed_login(receiver, f"198.51.100.{n}") for n in range(3)] == [401, 401, 429]


def test_with_proxy_fix_the_client_address_scheme_and_host_come_from_the_proxy(
    make_receiver: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    receiver = make_receiver(proxy_fix=True, login_max_failures_per_address=2)
    response = receiver.client.get("/healthz", **forwarded("198.51.100.7"))
    assert response.headers[HSTS] == "max-age=31536000"
    request = lambda: receiver.client.get("/healthz", **forwarded("198.51.100.7"))  # noqa: E731
    assert logged_address(caplog, request) == "198.51.100.7"
    # Only the proxy's own entry is believed: a client's forged one before it is ignored.
    forged = forwarded("10.9.9.9, 198.51.100.8")
    assert logged_address(caplog, lambda: receiver.client.get("/healthz", **forged)) == (
        "198.51.100.8"
    )
    # Plain HTTP at the proxy: no HSTS.
    plain = receiver.client.get("/healthz", **forwarded("198.51.100.7", scheme="http"))
    assert HSTS not in plain.headers
    # The login limit counts the client's address, not the proxy's.
    assert [failed_login(receiver, "198.51.100.7") for _ in range(3)] == [401, 401, 429]
    assert failed_login(receiver, "198.51.100.9") == 401


def test_behind_a_tls_proxy_the_session_cookie_is_secure_and_the_login_form_works(
    make_receiver: Callable[..., Receiver],
) -> None:
    """Flask-WTF checks an HTTPS form's Referer against the host: the public one here."""
    receiver = make_receiver(proxy_fix=True)
    options = forwarded("198.51.100.7")
    headers = {**options["headers"], "Referer": "https://fleet.example/login"}
    client = receiver.app.test_client()
    page = client.get("/login", **options)
    assert "Secure" in page.headers["Set-Cookie"]
    form = {"csrf_token": csrf_token(page.get_data(as_text=True)), "username": USER}
    form["password"] = PASSWORD
    response = client.post(
        "/login", data=form, environ_base=options["environ_base"], headers=headers
    )
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]
    assert response.headers[HSTS] == "max-age=31536000"


def test_over_plain_http_the_cookie_is_secure_only_if_configured(
    make_receiver: Callable[..., Receiver],
) -> None:
    plain = make_receiver()
    assert form_login(plain.client).status_code == 302
    cookie = plain.client.get_cookie("beam_receiver_session")
    assert cookie is not None and not cookie.secure
    configured = make_receiver(session_cookie_secure=True)
    page = configured.client.get("/login")
    assert "Secure" in page.headers["Set-Cookie"]
