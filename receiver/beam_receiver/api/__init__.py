"""The JSON API: one blueprint per resource, plus health, metrics and its OpenAPI description."""

from __future__ import annotations

from flask import Flask

from beam_receiver.api import (
    analytics,
    collectd,
    health,
    metrics,
    nodes,
    openapi,
    readings,
    telemetry,
)


def register_api(app: Flask) -> None:
    for module in (readings, telemetry, nodes, analytics, health, metrics, openapi, collectd):
        app.register_blueprint(module.bp)
