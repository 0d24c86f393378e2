"""Deprecated protocol versions: accepted, but counted and logged so they can be retired."""

from __future__ import annotations

import logging
from typing import Any

from flask import g

from beam_receiver.protocol import is_deprecated, supported_range
from beam_receiver.state import get_state
from beam_receiver.validation import declared_versions

log = logging.getLogger(__name__)


def note_deprecated(body: Any, endpoint: str) -> None:
    """After a body was accepted: count each deprecated version it declared, by version and
    endpoint (beam_receiver_deprecated_protocol_total), and log a warning naming the node."""
    for major in sorted(declared_versions(body)):
        if not is_deprecated(major):
            continue
        get_state().metrics.deprecated_protocol.labels(str(major), endpoint).inc()
        caller = g.get("caller")
        log.warning(
            "%s sent protocol_version %d, which is deprecated; %s",
            getattr(caller, "name", "?"),
            major,
            supported_range(),
            extra={"event": "deprecated_protocol", "protocol_version": major},
        )
