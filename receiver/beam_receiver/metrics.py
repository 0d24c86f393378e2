"""Prometheus metrics: requests, readings accepted / duplicate / rejected, node ages.

Each app has its own registry (tests build many apps in one process). Under `beam-receiver
serve` with several gunicorn workers, the CLI sets PROMETHEUS_MULTIPROC_DIR before anything
imports prometheus_client, counters are kept in per-worker files there, and a scrape adds up
every worker's counts; without it (a single process, or another WSGI server) each process
reports only its own counts. Node ages come from the database at scrape time, so they are
the same whichever worker answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as render_registry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

STATUSES = ("online", "degraded", "offline", "unexpected")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str:
    """The shared metrics directory when several workers report together, else ''."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class NodeCollector(Collector):
    """Per-node last-seen age and status, read from the fleet at scrape time."""

    def __init__(self, nodes: Callable[[], list[dict[str, Any]]]) -> None:
        self._nodes = nodes

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "beam_receiver_node_last_seen_age_seconds",
                "Seconds since the node's last heartbeat (absent if it never sent one).",
                labels=["node_id"],
            ),
            GaugeMetricFamily(
                "beam_receiver_node_status",
                "1 for the node's current status (online, degraded, offline, unexpected).",
                labels=["node_id", "status"],
            ),
            GaugeMetricFamily("beam_receiver_nodes", "Nodes by status.", labels=["status"]),
            GaugeMetricFamily(
                "beam_receiver_node_queue_depth",
                "Readings waiting in the node's queue, as its last heartbeat said.",
                labels=["node_id"],
            ),
            GaugeMetricFamily(
                "beam_receiver_node_dropped_readings",
                "Readings the node's full queue deleted before delivery, since its queue was"
                " made (its last heartbeat's count; alert on increase()).",
                labels=["node_id"],
            ),
            GaugeMetricFamily(
                "beam_receiver_node_dead_letters",
                "Readings parked on the node as dead letters (its last heartbeat's count).",
                labels=["node_id"],
            ),
            GaugeMetricFamily(
                "beam_receiver_node_config_error",
                "1 while the node's last heartbeat reports a configuration error (its pushes"
                " get 3xx, 404 or 405: api_url is wrong), else 0.",
                labels=["node_id"],
            ),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        age, status, totals, depth, dropped, dead, config = self._families()
        counts = dict.fromkeys(STATUSES, 0)
        for node in self._nodes():
            node_id = str(node["node_id"])
            if node.get("last_seen_age_s") is not None:
                age.add_metric([node_id], float(node["last_seen_age_s"]))
            status.add_metric([node_id, str(node["status"])], 1.0)
            counts[str(node["status"])] = counts.get(str(node["status"]), 0) + 1
            if node.get("queue_depth") is not None:
                depth.add_metric([node_id], float(node["queue_depth"]))
            if node.get("dropped") is not None:
                dropped.add_metric([node_id], float(node["dropped"]))
            if node.get("dead_letters") is not None:
                dead.add_metric([node_id], float(node["dead_letters"]))
            if node.get("last_seen") is not None:
                config.add_metric([node_id], 1.0 if node.get("config_error") else 0.0)
        for name, count in counts.items():
            totals.add_metric([name], float(count))
        return [age, status, totals, depth, dropped, dead, config]


class ReceiverMetrics:
    """One app's collectors."""

    def __init__(self, nodes: Callable[[], list[dict[str, Any]]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "beam_receiver_http_requests",
            "HTTP requests by endpoint (the route, not the raw path), method and status code.",
            ["endpoint", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "beam_receiver_http_request_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.readings_accepted = Counter(
            "beam_receiver_readings_accepted",
            "Readings stored, by device.",
            ["device_id"],
            registry=self.registry,
        )
        self.readings_duplicate = Counter(
            "beam_receiver_readings_duplicates",
            "Readings acknowledged but not stored again (device_id and seq already stored).",
            ["device_id"],
            registry=self.registry,
        )
        self.readings_rejected = Counter(
            "beam_receiver_readings_rejected",
            "Readings in rejected request bodies by error code (1 for an unreadable body).",
            ["error"],
            registry=self.registry,
        )
        self.heartbeats = Counter(
            "beam_receiver_heartbeats",
            "Heartbeats received, by node.",
            ["node_id"],
            registry=self.registry,
        )
        self.deprecated_protocol = Counter(
            "beam_receiver_deprecated_protocol",
            "Accepted bodies that declared a deprecated protocol_version, by major version and"
            " endpoint (the senders need an upgrade before the version is refused).",
            ["version", "endpoint"],
            registry=self.registry,
        )
        self.node_collector = NodeCollector(nodes)
        self.registry.register(self.node_collector)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        directory = multiprocess_dir()
        if not directory:
            return render_registry(self.registry), CONTENT_TYPE_LATEST
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=directory)  # type: ignore[no-untyped-call]
        combined.register(self.node_collector)
        return render_registry(combined), CONTENT_TYPE_LATEST
