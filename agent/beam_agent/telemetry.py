"""Heartbeat and registration payloads: how the receiver knows a node is alive and healthy."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import psutil

from beam_agent import PROTOCOL_VERSION, __version__
from beam_agent.config import AgentConfig
from beam_agent.push import lookup_name
from beam_agent.reading import format_timestamp, utc_now


def local_ip_address(api_url: str) -> Optional[str]:
    """The address this node uses to reach the receiver (a UDP connect sends no packet)."""
    parts = urlsplit(api_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        family = socket.getaddrinfo(lookup_name(host), port, proto=socket.IPPROTO_UDP)[0]
        with socket.socket(family[0], socket.SOCK_DGRAM) as sock:
            sock.connect(family[4])
            address: str = sock.getsockname()[0]
            return address
    except OSError:
        return None


def system_vitals() -> dict[str, Any]:
    """A few cheap numbers that tell an operator whether the node itself is in trouble."""
    memory = psutil.virtual_memory()
    load1, load5, load15 = psutil.getloadavg()
    vitals: dict[str, Any] = {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": memory.percent,
        "load1": load1,
        "load5": load5,
        "load15": load15,
    }
    try:
        vitals["disk_percent"] = psutil.disk_usage("/").percent
    except OSError:
        vitals["disk_percent"] = None
    process = psutil.Process()
    with process.oneshot():
        vitals["agent_rss_bytes"] = process.memory_info().rss
        times = process.cpu_times()
        vitals["agent_cpu_seconds"] = round(times.user + times.system, 3)
    return vitals


RELEASE_RECORD = "release.json"
RELEASE_KEYS = ("active", "previous", "changed_at", "changed_by", "rolled_back_from", "rollout")


def release_record(prefix: Optional[str] = None) -> Optional[dict[str, Optional[str]]]:
    """Which release this node runs and which it ran before, from the record beam.fleet
    keeps beside its releases (ROOT/release.json, ROOT/releases/<version>/venv = sys.prefix).

    None when the agent does not run from such a release (a pip install, a source tree) or
    the record cannot be read: the heartbeat must never fail for it.
    """
    venv = Path(prefix if prefix is not None else sys.prefix)
    if venv.name != "venv" or venv.parent.parent.name != "releases":
        return None
    try:
        data = json.loads((venv.parent.parent.parent / RELEASE_RECORD).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {key: data[key] if isinstance(data.get(key), str) else None for key in RELEASE_KEYS}


def heartbeat(
    config: AgentConfig,
    queue_status: Mapping[str, Any],
    sensor_stats: Mapping[str, Mapping[str, Any]],
    started_at: float,
    ip_address: Optional[str],
) -> dict[str, Any]:
    counters = queue_status.get("counters", {})
    metrics: dict[str, Any] = {
        "queue_depth": queue_status.get("depth"),
        "oldest_queued_age_s": queue_status.get("oldest_queued_age_s"),
        "pushed": counters.get("pushed"),
        "dropped": counters.get("dropped"),
        "evicted": counters.get("evicted"),
        "dead_lettered": counters.get("dead_lettered"),
        "dead_letters": queue_status.get("dead_letters"),
        # In the free-form metrics, not a top-level field: a receiver from before it refuses
        # unknown top-level fields, and must keep taking this agent's heartbeats.
        "config_error": queue_status.get("config_error"),
        "duplicates_acknowledged": counters.get("duplicates_acknowledged"),
        "last_seq": counters.get("last_seq"),
        "handoff_refused": queue_status.get("handoff_refused", 0),
        "sensor_errors": {name: stats.get("errors", 0) for name, stats in sensor_stats.items()},
        # The node's active and previous release (beam.fleet's record), for the fleet view.
        "release": release_record(),
        **system_vitals(),
    }
    return {
        "node_id": config.device_id,
        "role": config.role,
        "timestamp": format_timestamp(utc_now()),
        "uptime_seconds": round(time.monotonic() - started_at, 3),
        "software_version": __version__,
        "ip_address": ip_address,
        "metrics": metrics,
        "tags": dict(config.tags),
        "protocol_version": PROTOCOL_VERSION,
    }


def registration(config: AgentConfig, ip_address: Optional[str]) -> dict[str, Any]:
    return {
        "node_id": config.device_id,
        "role": config.role,
        "hostname": socket.gethostname(),
        "ip_address": ip_address,
        "software_version": __version__,
        "tags": dict(config.tags),
    }
