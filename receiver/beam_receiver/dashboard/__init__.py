"""The dashboard blueprint: login, fleet table and per-node charts."""

from __future__ import annotations

from flask import Flask

from .views import bp


def init_dashboard(app: Flask) -> None:
    """Register the dashboard (blueprint "dashboard") on the app built by create_app."""
    app.register_blueprint(bp)
