"""The JSON API: one blueprint per resource, plus health and metrics."""

from __future__ import annotations

from flask import Flask

from beam_receiver.api import analytics, collectd, health, metrics, nodes, readings, telemetry


def register_api(app: Flask) -> None:
    for module in (readings, telemetry, nodes, analytics, health, metrics, collectd):
        app.register_blueprint(module.bp)
