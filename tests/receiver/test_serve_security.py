"""Exposure over real HTTP: `beam-receiver serve` (gunicorn, two workers) as nginx would
reach it. Logout ends a login in both workers, failed logins are limited across workers,
every answer carries the security headers, and X-Forwarded-* count only with `proxy_fix`.

Each request goes on a fresh connection (Connection: close), so the two workers share the
requests.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.support.constants import DEVICE, PASSWORD, USER
from tests.support.dashboard import SESSION_COOKIE, csrf_token
from tests.support.readings import valid_reading
from tests.support.receiver import ReceiverProcess, configure_receiver

CLOSE = {"Connection": "close"}
HSTS = "Strict-Transport-Security"


def behind_proxy(address: str, scheme: str = "http") -> dict[str, str]:
    """The headers nginx adds (the receiver sees the proxy's own 127.0.0.1)."""
    return {**CLOSE, "X-Forwarded-For": address, "X-Forwarded-Proto": scheme}


def login(served: ReceiverProcess, address: str, password: str) -> requests.Response:
    session = requests.Session()
    headers = behind_proxy(address)
    page = session.get(served.url + "/login", headers=headers, timeout=30)
    form = {"csrf_token": csrf_token(page.text), "username": USER, "password": password}
    return session.post(
        served.url + "/login", data=form, headers=headers, timeout=30, allow_redirects=False
    )


def opens_dashboard(served: ReceiverProcess, cookie: str) -> bool:
    """Whether a copied session cookie opens the fleet page and the API, on either worker."""
    answers = set()
    for _ in range(6):
        cookies = {SESSION_COOKIE: cookie}
        page = requests.get(
            served.url + "/", cookies=cookies, headers=CLOSE, timeout=30, allow_redirects=False
        )
        api = requests.get(served.url + "/api/nodes", cookies=cookies, headers=CLOSE, timeout=30)
        answers.add((page.status_code, api.status_code))
    assert len(answers) == 1, f"the workers disagree: {answers}"
    (answer,) = answers
    assert answer in ((200, 200), (302, 401)), answer
    return answer == (200, 200)


def test_logout_limits_and_headers_over_http_behind_a_proxy(tmp_path: Path) -> None:
    with configure_receiver(tmp_path, workers=2, threads=2, proxy_fix=True) as served:
        # Logout ends the login in both workers, also for a copy of the cookie.
        session = served.dashboard()
        cookie = session.cookies[SESSION_COOKIE]
        assert opens_dashboard(served, cookie)
        assert served.log_out(session).status_code == 302
        assert not opens_dashboard(served, cookie)

        # Five failed logins for the user, from five clients and either worker; the sixth
        # is refused even with the right password, with Retry-After.
        for number in range(5):
            assert login(served, f"198.51.100.{number}", "wrong").status_code == 401
        refused = login(served, "198.51.100.99", PASSWORD)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 900

        # Security headers on every kind of answer; HSTS when the proxy says HTTPS.
        answers = [
            requests.get(served.url + "/healthz", headers=CLOSE, timeout=30),
            requests.get(served.url + "/metrics", headers=CLOSE, timeout=30),
            requests.get(served.url + "/api/nothing", headers=CLOSE, timeout=30),
            served.post("/api/readings", valid_reading(1), **CLOSE),
            refused,
        ]
        assert [a.status_code for a in answers] == [200, 401, 404, 200, 429]
        for answer in answers:
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert answer.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
            assert HSTS not in answer.headers
        secure = requests.get(
            served.url + "/healthz", headers=behind_proxy("198.51.100.1", "https"), timeout=30
        )
        assert secure.headers[HSTS] == "max-age=31536000"
        assert served.readings(DEVICE)[0]["seq"] == 1


def test_without_proxy_fix_gunicorn_does_not_take_the_scheme_from_the_headers(
    tmp_path: Path,
) -> None:
    """gunicorn on its own believes X-Forwarded-Proto from 127.0.0.1; the receiver turns
    that off, so that `proxy_fix` is the one switch."""
    with configure_receiver(tmp_path, workers=1, threads=2) as served:
        answer = requests.get(
            served.url + "/healthz", headers=behind_proxy("198.51.100.1", "https"), timeout=30
        )
        assert answer.status_code == 200
        assert HSTS not in answer.headers
