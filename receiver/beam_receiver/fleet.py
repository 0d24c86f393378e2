"""The fleet as the API and the dashboard show it: inventory and reports merged per node.

`list_nodes()` and `get_node()` return exactly the dicts GET /api/nodes returns; call them
inside an app context (a request, or `with app.app_context():`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from beam_receiver.inventory import ExpectedNode
from beam_receiver.state import ReceiverState, get_state
from beam_receiver.status import node_status
from beam_receiver.timestamps import format_ms


def reported_count(metrics: Mapping[str, Any], name: str) -> Optional[int]:
    """A counter from the heartbeat's free-form metrics, or None when it is absent or not
    a count (metrics are the node's to fill; a bad value must not break the fleet view)."""
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def reported_config_error(metrics: Mapping[str, Any]) -> Optional[dict[str, Any]]:
    """The node's configuration error from its heartbeat (`metrics.config_error`: its pushes
    get 3xx, 404 or 405, so its api_url is wrong), or None; a malformed one is ignored."""
    value = metrics.get("config_error")
    if not isinstance(value, dict) or not isinstance(value.get("message"), str):
        return None
    status = value.get("status")
    at = value.get("at")
    return {
        "status": status if isinstance(status, int) and not isinstance(status, bool) else None,
        "message": value["message"][:1000],
        "at": at if isinstance(at, str) else None,
    }


RELEASE_KEYS = ("active", "previous", "changed_at", "changed_by", "rolled_back_from", "rollout")
# beam.fleet.rollout's id, also the name of its record on the controller:
# <UTC start>-<component>-<version>, e.g. 20261204T190000Z-agent-1.2.0.
ROLLOUT_ID = re.compile(r"(?P<started>\d{8}T\d{6}Z)-(?P<component>agent|receiver)-(?P<version>.+)")


def reported_release(metrics: Mapping[str, Any]) -> Optional[dict[str, Optional[str]]]:
    """The node's active and previous release from its heartbeat (`metrics.release`, from
    beam.fleet's record on the node), or None; anything but short strings is dropped."""
    value = metrics.get("release")
    if not isinstance(value, dict):
        return None
    return {
        key: value[key][:200] if isinstance(value.get(key), str) else None for key in RELEASE_KEYS
    }


def last_rollout(nodes: Sequence[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    """The newest rollout any node reports (its release record names the rollout that made
    its last change) and where each node stands after it, or None when none reports one.

    Why from the nodes: the rollout's full record stays on the controller; what the
    receiver can vouch for is what each node says it runs. Nodes the rollout left alone
    (a later batch after a stop, or not reached) still report an older rollout or none.
    """
    ids = {
        str(node["release"]["rollout"])
        for node in nodes
        if node.get("release") and ROLLOUT_ID.fullmatch(str(node["release"].get("rollout")))
    }
    if not ids:
        return None
    newest = max(ids)  # ids start with the UTC start time
    match = ROLLOUT_ID.fullmatch(newest)
    assert match is not None
    version = match["version"]
    switched: list[str] = []
    rolled_back: list[str] = []
    other: list[str] = []
    for node in nodes:
        release = node.get("release") or {}
        if release.get("rollout") != newest:
            other.append(str(node["node_id"]))
        elif release.get("rolled_back_from") == version:
            rolled_back.append(str(node["node_id"]))
        else:
            switched.append(str(node["node_id"]))
    started = match["started"]
    return {
        "id": newest,
        "component": match["component"],
        "version": version,
        "started": f"{started[0:4]}-{started[4:6]}-{started[6:8]}T"
        f"{started[9:11]}:{started[11:13]}:{started[13:15]}Z",
        "switched": switched,
        "rolled_back": rolled_back,
        "not_changed": other,
    }


def summarize_node(
    node_id: str,
    row: Optional[Mapping[str, Any]],
    expected: Optional[ExpectedNode],
    inventory_known: bool,
    interval_s: float,
    now_s: float,
) -> dict[str, Any]:
    """One node's dict from what it reported (row) and what the inventory says (expected).

    For a node in the inventory, the inventory's role and tags win over the reported ones.
    """
    reported = dict(row or {})
    last_seen_ms = reported.get("last_seen_ms")
    last_seen_s = last_seen_ms / 1000 if last_seen_ms is not None else None
    in_inventory = expected is not None or not inventory_known
    tags = dict(reported.get("tags") or {})
    role = reported.get("role")
    if expected is not None:
        tags.update(expected.tags)
        role = expected.role if expected.role is not None else role
    registered_at_ms = reported.get("registered_at_ms")
    metrics = reported.get("metrics") or {}
    return {
        "node_id": node_id,
        "role": role,
        "status": node_status(last_seen_s, interval_s, now_s, expected=in_inventory),
        "expected": expected is not None,
        "last_seen": format_ms(last_seen_ms) if last_seen_ms is not None else None,
        "last_seen_age_s": (
            round(max(0.0, now_s - last_seen_s), 3) if last_seen_s is not None else None
        ),
        "last_heartbeat_timestamp": reported.get("last_heartbeat_timestamp"),
        "software_version": reported.get("software_version"),
        "queue_depth": reported.get("queue_depth"),
        # Readings the node's full queue deleted before delivery (its `dropped` counter):
        # they will never arrive, so the operator must see how many.
        "dropped": reported_count(metrics, "dropped"),
        # Readings the receiver refused for good, parked on the node (its dead-letter count).
        "dead_letters": reported_count(metrics, "dead_letters"),
        # Its pushes go nowhere because its api_url is wrong: readings pile up on the node.
        "config_error": reported_config_error(metrics),
        "release": reported_release(metrics),
        "hostname": reported.get("hostname"),
        "ip_address": reported.get("ip_address"),
        "tags": tags,
        "uptime_seconds": reported.get("uptime_seconds"),
        "protocol_version": reported.get("protocol_version"),
        "registered_at": format_ms(registered_at_ms) if registered_at_ms is not None else None,
        "metrics": metrics,
    }


def _inventory(state: ReceiverState) -> tuple[dict[str, ExpectedNode], bool]:
    if state.expected_nodes is None:
        return {}, False
    return state.expected_nodes.current(), True


def nodes_of(state: ReceiverState, now_s: Optional[float] = None) -> list[dict[str, Any]]:
    """Every node the inventory expects or that ever reported, by node_id."""
    now = time.time() if now_s is None else now_s
    expected, inventory_known = _inventory(state)
    rows = {row["node_id"]: row for row in state.database.node_rows()}
    interval = state.config.telemetry_interval_s
    return [
        summarize_node(
            node_id, rows.get(node_id), expected.get(node_id), inventory_known, interval, now
        )
        for node_id in sorted(set(rows) | set(expected))
    ]


def list_nodes() -> list[dict[str, Any]]:
    """Every expected or reporting node with its status, sorted by node_id."""
    return nodes_of(get_state())


def get_node(node_id: str) -> Optional[dict[str, Any]]:
    """One node, or None if it neither reported nor is in the inventory."""
    state = get_state()
    expected, inventory_known = _inventory(state)
    row = state.database.node_row(node_id)
    if row is None and node_id not in expected:
        return None
    return summarize_node(
        node_id,
        row,
        expected.get(node_id),
        inventory_known,
        state.config.telemetry_interval_s,
        time.time(),
    )
