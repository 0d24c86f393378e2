"""create_app(config): the Flask application factory; every blueprint is registered here."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from beam_receiver.api import register_api
from beam_receiver.auth import load_credentials
from beam_receiver.backend import open_storage
from beam_receiver.config import ReceiverConfig
from beam_receiver.dashboard import init_dashboard
from beam_receiver.errors import register_error_handlers
from beam_receiver.fleet import nodes_of
from beam_receiver.health_probe import WriteProbe
from beam_receiver.inventory import load_expected_nodes
from beam_receiver.logins import init_logins
from beam_receiver.metrics import ReceiverMetrics
from beam_receiver.reloading import ReloadingFile
from beam_receiver.requestlog import init_request_logging
from beam_receiver.secret_key import load_or_create_secret_key
from beam_receiver.security_headers import init_security_headers
from beam_receiver.sessions import CookieSessions
from beam_receiver.state import EXTENSION_KEY, ReceiverState


def create_app(config: ReceiverConfig) -> Flask:
    """A ready app: schema migrated, tokens and expected nodes loaded, session key in place.

    Raises ConfigError for a broken tokens or expected-nodes file (or database password
    file), one of the storage's `errors` when the database cannot be opened, and
    SecretKeyError for an unusable session key file.
    """
    database = open_storage(config)
    try:
        database.migrate()
    except BaseException:
        database.close()
        raise
    credentials = ReloadingFile(config.tokens_file, load_credentials)
    expected_nodes = (
        ReloadingFile(config.expected_nodes_file, load_expected_nodes)
        if config.expected_nodes_file is not None
        else None
    )

    app = Flask(__name__)
    app.session_interface = CookieSessions()
    app.config.update(
        SECRET_KEY=load_or_create_secret_key(config.secret_key_path),
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        SESSION_COOKIE_NAME="beam_receiver_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.session_cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=config.session_cookie_secure,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]

    # Node ages are read from this app's own state whenever /metrics is scraped.
    metrics = ReceiverMetrics(lambda: nodes_of(app.extensions[EXTENSION_KEY]))
    app.extensions[EXTENSION_KEY] = ReceiverState(
        config=config,
        database=database,
        credentials=credentials,
        expected_nodes=expected_nodes,
        metrics=metrics,
        write_probe=WriteProbe(database),
    )

    if config.proxy_fix:
        # One reverse proxy in front: its X-Forwarded-For, -Proto and -Host are the client's
        # address, scheme and host (for the login throttle, HSTS, Secure cookies and logs).
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=1, x_proto=1, x_host=1
        )
    init_logins(app)
    register_error_handlers(app, database.errors)
    init_security_headers(app)
    init_request_logging(app)
    register_api(app)
    init_dashboard(app)
    return app
