"""A node's status from its last heartbeat: a pure function, so every edge is testable."""

from __future__ import annotations

from collections.abc import Sequence
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


NO_RECORD = "none"


def status_segments(
    previous_ms: Optional[int],
    beats_ms: Sequence[int],
    interval_s: float,
    start_ms: int,
    end_ms: int,
) -> list[tuple[str, int, int]]:
    """A node's status over [start_ms, end_ms] as (status, from_ms, to_ms), neighbours merged.

    After each heartbeat (previous_ms: the last one before the window, if kept; beats_ms:
    those in it, oldest first) the node is online for ONLINE_INTERVALS telemetry intervals,
    degraded up to DEGRADED_INTERVALS, then offline until the next one: node_status over
    time. Before the first heartbeat on record the status is NO_RECORD ("none")."""
    online_ms = round(ONLINE_INTERVALS * interval_s * 1000)
    degraded_ms = round(DEGRADED_INTERVALS * interval_s * 1000)
    beats = ([previous_ms] if previous_ms is not None else []) + list(beats_ms)
    raw: list[tuple[str, int, int]] = []
    if not beats or beats[0] > start_ms:
        raw.append((NO_RECORD, start_ms, beats[0] if beats else end_ms))
    for index, beat in enumerate(beats):
        following = beats[index + 1] if index + 1 < len(beats) else end_ms
        raw.append((ONLINE, beat, min(following, beat + online_ms)))
        raw.append((DEGRADED, beat + online_ms, min(following, beat + degraded_ms)))
        raw.append((OFFLINE, beat + degraded_ms, following))
    merged: list[tuple[str, int, int]] = []
    for status, begin, finish in raw:
        begin, finish = max(begin, start_ms), min(finish, end_ms)
        if finish <= begin:
            continue
        if merged and merged[-1][0] == status and merged[-1][2] == begin:
            merged[-1] = (status, merged[-1][1], finish)
        else:
            merged.append((status, begin, finish))
    return merged
