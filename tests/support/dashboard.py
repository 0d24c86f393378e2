"""The dashboard's forms through Flask's test client: CSRF tokens, logging in and out as a
browser does (the form's POST, not a session written by hand)."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.constants import PASSWORD, USER

CSRF_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SESSION_COOKIE = "beam_receiver_session"


def csrf_token(html: str) -> str:
    """The first form's CSRF token in a page."""
    found = CSRF_TOKEN.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def form_login(
    client: FlaskClient, username: str = USER, password: str = PASSWORD, **request: Any
) -> TestResponse:
    """GET /login for its token, then POST the form; `request` goes to both (environ_base,
    base_url, headers ...). 302 means logged in."""
    token = csrf_token(client.get("/login", **request).get_data(as_text=True))
    form = {"csrf_token": token, "username": username, "password": password}
    return client.post("/login", data=form, **request)


def form_logout(client: FlaskClient) -> TestResponse:
    """POST the fleet page's logout form (the client must be logged in)."""
    page = client.get("/")
    assert page.status_code == 200, "not logged in"
    return client.post("/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True))})


def session_cookie(client: FlaskClient) -> str:
    """The client's session cookie, to replay from another client."""
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None, "no session cookie"
    return cookie.value
