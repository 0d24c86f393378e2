"""Flask's signed-cookie sessions, without their per-request cost on the API.

Flask builds a new signing serializer for every request, even one that carries no session
cookie, which is every request an agent sends. Here the serializer is built once per key,
and a request without the cookie gets an empty session straight away. Signing, expiry and
the cookie's attributes are Flask's own, except that a cookie set over HTTPS (directly, or
behind a TLS proxy with `proxy_fix`) is always `Secure`, whatever session_cookie_secure
says. Whether a login is still valid is decided by logins.py, not by the cookie.
"""

from __future__ import annotations

from typing import Optional

from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class CookieSessions(SecureCookieSessionInterface):
    """SecureCookieSessionInterface with a cached serializer and a no-cookie fast path."""

    def __init__(self) -> None:
        self._serializers: dict[tuple[object, ...], Optional[URLSafeTimedSerializer]] = {}

    def get_signing_serializer(self, app: Flask) -> Optional[URLSafeTimedSerializer]:
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if keys not in self._serializers:
            self._serializers[keys] = super().get_signing_serializer(app)
        return self._serializers[keys]

    def open_session(self, app: Flask, request: Request) -> Optional[SecureCookieSession]:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(super().get_cookie_secure(app)) or request.is_secure
