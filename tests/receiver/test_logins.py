"""Dashboard logins are recorded server-side: logout, a new password or a removed user end
them, in every worker, even for a copy of the cookie.

Real apps from create_app on real files; logins go through the login form.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from flask import Flask
from flask.testing import FlaskClient

from beam_receiver.app import create_app
from beam_receiver.config import load_config

from tests.support.app import Receiver
from tests.support.constants import DEVICE, OPERATOR, OPERATOR_TOKEN, PASSWORD, TOKENS, USER
from tests.support.dashboard import SESSION_COOKIE, form_login, form_logout, session_cookie
from tests.support.files import bump_mtime
from tests.support.receiver import write_tokens_file


def replay(app: Flask, cookie: str) -> FlaskClient:
    """A new client (another browser, or an attacker) presenting a copied session cookie."""
    client = app.test_client()
    client.set_cookie(SESSION_COOKIE, cookie)
    return client


def logged_in(client: FlaskClient) -> bool:
    """Whether the client's session opens both the dashboard and the API."""
    page = client.get("/").status_code
    api = client.get("/api/nodes").status_code
    assert (page, api) in ((200, 200), (302, 401)), (page, api)
    return page == 200


def login_rows(receiver: Receiver) -> list[tuple[str, str]]:
    rows = receiver.state.database.read("SELECT id_hash, username FROM dashboard_logins")
    return [tuple(row) for row in rows]


def test_logout_ends_the_session_even_for_a_copy_of_the_cookie(receiver: Receiver) -> None:
    assert form_login(receiver.client).status_code == 302
    cookie = session_cookie(receiver.client)
    copy = replay(receiver.app, cookie)
    assert logged_in(copy)
    response = form_logout(receiver.client)
    assert response.status_code == 302
    assert not logged_in(receiver.client)
    assert not logged_in(replay(receiver.app, cookie))
    assert login_rows(receiver) == []


def test_logout_in_one_worker_ends_the_session_in_another(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    other_worker = create_app(load_config(receiver.directory / "receiver.toml"))
    try:
        assert form_login(receiver.client).status_code == 302
        there = replay(other_worker, session_cookie(receiver.client))
        assert logged_in(there)
        assert form_logout(receiver.client).status_code == 302
        assert not logged_in(there)
        # Devices never depended on any of it.
        response = there.post("/api/readings", json=make_reading(1), headers=receiver.headers())
        assert response.status_code == 200
    finally:
        other_worker.extensions["beam_receiver"].database.close()


def test_each_login_is_its_own_and_logout_ends_only_that_one(receiver: Receiver) -> None:
    laptop, phone = receiver.app.test_client(), receiver.app.test_client()
    assert form_login(laptop).status_code == 302
    assert form_login(phone).status_code == 302
    assert len(login_rows(receiver)) == 2
    assert form_logout(laptop).status_code == 302
    assert not logged_in(laptop)
    assert logged_in(phone)


def test_a_new_password_ends_the_users_logins(receiver: Receiver) -> None:
    assert form_login(receiver.client).status_code == 302
    cookie = session_cookie(receiver.client)
    write_tokens_file(
        receiver.tokens_file,
        {DEVICE: TOKENS[DEVICE]},
        {OPERATOR: OPERATOR_TOKEN},
        {USER: "a new passphrase"},
    )
    bump_mtime(receiver.tokens_file)
    assert not logged_in(replay(receiver.app, cookie))
    fresh = receiver.app.test_client()
    assert form_login(fresh, password=PASSWORD).status_code == 401
    assert form_login(fresh, password="a new passphrase").status_code == 302
    assert logged_in(fresh)


def test_the_database_holds_a_digest_of_the_login_id_not_the_id(receiver: Receiver) -> None:
    assert form_login(receiver.client).status_code == 302
    serializer = receiver.app.session_interface.get_signing_serializer(receiver.app)  # type: ignore[attr-defined]
    login_id = serializer.loads(session_cookie(receiver.client))["_user_id"]
    assert login_id != USER
    assert login_rows(receiver) == [(hashlib.sha256(login_id.encode()).hexdigest(), USER)]
    # The page shows the user's name, never the login's id.
    html = receiver.client.get("/").get_data(as_text=True)
    assert f'<span class="who">{USER}</span>' in html and login_id not in html


def test_a_cookie_naming_only_the_user_opens_nothing(receiver: Receiver) -> None:
    """What sessions signed before logins were recorded carry: the user's name as its id."""
    receiver.client.get("/login")
    with receiver.client.session_transaction() as session:
        session["_user_id"] = USER
        session["_fresh"] = True
    assert not logged_in(receiver.client)


def test_api_requests_of_agents_create_no_login_rows(
    receiver: Receiver, make_reading: Callable[..., dict[str, Any]]
) -> None:
    assert receiver.post_readings(make_reading(1)).status_code == 200
    assert receiver.get("/api/nodes").status_code == 200
    assert login_rows(receiver) == []
