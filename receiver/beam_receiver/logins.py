"""Dashboard logins kept server-side, so that logging out really ends them.

Flask's session is a signed cookie: by itself a copy of it keeps working until it expires
(31 days), whatever happens at logout. So each login gets a random id; the cookie carries
the id (as Flask-Login's user id), and the database holds its SHA-256 with the user's name
and a fingerprint of their password hash. Every request that asks who is logged in (the
dashboard's pages, and API reads made with a session) looks the id up: logout deletes the
row, and a new password in the tokens file no longer matches the fingerprint, so both end
the login in every worker at once. Agents send bearer tokens and never ask for
current_user, so their requests never pay for the lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Optional

import flask_login
from flask import Flask, current_app

from beam_receiver.auth import password_fingerprint
from beam_receiver.state import get_state
from beam_receiver.storage import DashboardLogin
from beam_receiver.timestamps import now_ms

LOGIN_ID_BYTES = 32


class DashboardUser(flask_login.UserMixin):  # type: ignore[misc]
    """A person logged in to the dashboard: the [users] name and this login's id."""

    def __init__(self, name: str, login_id: str) -> None:
        self.name = name
        self.login_id = login_id

    def get_id(self) -> str:
        """What Flask-Login keeps in the cookie: the login, not the user, so it can end."""
        return self.login_id


def _id_hash(login_id: str) -> str:
    return hashlib.sha256(login_id.encode("utf-8")).hexdigest()


def _lifetime_ms() -> int:
    """How long Flask accepts a session cookie: a login older than that is gone anyway."""
    return int(current_app.permanent_session_lifetime.total_seconds() * 1000)


def start_login(username: str) -> Optional[DashboardUser]:
    """Record a login for a user whose password was just checked (None if just removed)."""
    fingerprint = password_fingerprint(username)
    if fingerprint is None:
        return None
    login_id = secrets.token_urlsafe(LOGIN_ID_BYTES)
    now = now_ms()
    get_state().database.start_login(
        _id_hash(login_id), DashboardLogin(username, fingerprint, now), now - _lifetime_ms()
    )
    return DashboardUser(username, login_id)


def resume_login(login_id: str) -> Optional[DashboardUser]:
    """Flask-Login's user loader: the login, while it is recorded, young enough, and the
    user's password is still the one they logged in with."""
    login = get_state().database.dashboard_login(_id_hash(login_id))
    if login is None or login.started_at_ms < now_ms() - _lifetime_ms():
        return None
    fingerprint = password_fingerprint(login.username)
    if fingerprint is None or not secrets.compare_digest(fingerprint, login.password_fingerprint):
        return None
    return DashboardUser(login.username, login_id)


def end_login(user: DashboardUser) -> None:
    """Delete the login's record: its cookie stops working in every worker."""
    get_state().database.end_login(_id_hash(user.login_id))


def init_logins(app: Flask) -> flask_login.LoginManager:
    """Flask-Login for the dashboard; API views use auth.require_device / require_operator."""
    manager = flask_login.LoginManager()
    manager.login_view = "dashboard.login"
    manager.login_message = "Log in to see the fleet."
    manager.user_loader(resume_login)
    manager.init_app(app)
    return manager
