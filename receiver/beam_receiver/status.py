"""A node's status from its last heartbeat: a pure function, so every edge is testable."""

from __future__ import annotations

from typing import Optional

ONLINE = "online"
DEGRADED = "degraded"
OFFLINE = "offline"
UNEXPECTED = "unexpected"
ONLINE_INTERVALS = 2
DEGRADED_INTERVALS = 5


def node_status(
    last_seen_s: Optional[float], interval_s: float, now_s: float, expected: bool = True
) -> str:
    """online within 2 telemetry intervals, degraded within 5, offline beyond or never.

    A node the inventory does not list is `unexpected` whatever its heartbeat says: the
    inventory is the source of truth, and an unknown node is what an operator must see.
    """
    if not expected:
        return UNEXPECTED
    if last_seen_s is None:
        return OFFLINE
    age = max(0.0, now_s - last_seen_s)
    if age <= ONLINE_INTERVALS * interval_s:
        return ONLINE
    if age <= DEGRADED_INTERVALS * interval_s:
        return DEGRADED
    return OFFLINE
