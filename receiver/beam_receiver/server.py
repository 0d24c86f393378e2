"""`beam-receiver serve`: gunicorn, configured from receiver.toml, run programmatically.

gunicorn's master forks `workers` processes with `threads` threads each; every worker builds
its own app with create_app. Signals are gunicorn's: SIGTERM and SIGINT stop gracefully
(requests in flight finish), SIGHUP re-reads receiver.toml and replaces the workers one
generation at a time, and the new workers read the tokens file and expected-node list
afresh, so nothing in flight is dropped.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

from gunicorn.app.base import BaseApplication

from beam_receiver.auth import load_credentials
from beam_receiver.config import ConfigError, ReceiverConfig, load_config
from beam_receiver.inventory import load_expected_nodes
from beam_receiver.reloading import parse_and_remember
from beam_receiver.requestlog import configure_logging

log = logging.getLogger("beam_receiver.server")


def remember_files(config: ReceiverConfig) -> None:
    """Parse the tokens file and expected-node list in the master, for workers to inherit."""
    parse_and_remember(config.tokens_file, load_credentials)
    if config.expected_nodes_file is not None:
        parse_and_remember(config.expected_nodes_file, load_expected_nodes)


def gunicorn_settings(config: ReceiverConfig) -> dict[str, Any]:
    return {
        "bind": [config.listen],
        "workers": config.workers,
        "worker_class": "gthread",
        "threads": config.threads,
        "timeout": max(1, int(config.request_timeout_s)),
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": None,  # the app writes its own structured access log
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "beam-receiver",
        # gunicorn would take X-Forwarded-Proto from 127.0.0.1 and unix sockets by itself;
        # the app's ProxyFix (`proxy_fix`) is the one place that decides whom to believe.
        "secure_scheme_headers": {},
    }


class ReceiverServer(BaseApplication):  # type: ignore[misc]
    """gunicorn's application: settings from receiver.toml, one create_app per worker."""

    def __init__(
        self, config_path: Path, config: ReceiverConfig, metrics_dir: str = "", owned: bool = False
    ) -> None:
        self.config_path = config_path
        self.receiver_config = config
        self.metrics_dir = metrics_dir
        self.owns_metrics_dir = owned
        self.mark_process_dead: Callable[[int, str], None] = lambda pid, path: None
        if metrics_dir:
            # Imported now, not in child_exit: an import inside a signal handler can land
            # in the middle of another import and crash the master.
            from prometheus_client import multiprocess

            self.mark_process_dead = multiprocess.mark_process_dead
        super().__init__()

    def load_config(self) -> None:
        """Called at start and again on SIGHUP; a broken file keeps the previous settings."""
        if getattr(self, "started", False):
            try:
                self.receiver_config = load_config(self.config_path)
            except ConfigError as exc:
                log.error(
                    "SIGHUP: keeping the previous receiver.toml settings: %s",
                    exc,
                    extra={"event": "reload_failed"},
                )
            try:
                remember_files(self.receiver_config)
            except ConfigError as exc:
                log.error(
                    "SIGHUP: new workers start from the last good tokens and nodes: %s",
                    exc,
                    extra={"event": "reload_failed"},
                )
        self.started = True
        for key, value in gunicorn_settings(self.receiver_config).items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 opens one control socket per user by default; two
            # receivers on a host would fight over it. Signals are the interface here.
            self.cfg.set("control_socket_disable", True)
        self.cfg.set("child_exit", self.child_exit)
        self.cfg.set("on_exit", self.on_exit)

    def load(self) -> Any:
        """Runs in each new worker: build the app from the master's last good config, and
        start the worker's retention thread (retention.py)."""
        from beam_receiver.app import create_app  # after PROMETHEUS_MULTIPROC_DIR is set
        from beam_receiver.retention import Pruner
        from beam_receiver.state import EXTENSION_KEY

        configure_logging()
        app = create_app(self.receiver_config)
        state = app.extensions[EXTENSION_KEY]
        Pruner(state.database, state.config).start()  # a daemon thread: ends with the worker
        return app

    def child_exit(self, server: Any, worker: Any) -> None:
        """Runs in the master's SIGCHLD handler: no imports here (see __init__)."""
        if self.metrics_dir:
            self.mark_process_dead(worker.pid, self.metrics_dir)

    def on_exit(self, server: Any) -> None:
        if self.owns_metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)


def prepare_metrics_dir(config: ReceiverConfig) -> tuple[str, bool]:
    """(directory for multi-worker Prometheus counts or "", whether we created it).

    An operator's own PROMETHEUS_MULTIPROC_DIR is used as it is (clear it before starting,
    as prometheus-client asks); otherwise a fresh one is made and removed at exit.
    """
    existing: Optional[str] = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if existing:
        os.makedirs(existing, exist_ok=True)
        return existing, False
    if config.workers < 2:
        return "", False
    directory = tempfile.mkdtemp(prefix="beam-receiver-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory, True


def run(config_path: Path, config: ReceiverConfig) -> None:
    """Serve until SIGTERM/SIGINT, then return after gunicorn's graceful stop."""
    configure_logging()
    metrics_dir, owned = prepare_metrics_dir(config)
    ReceiverServer(config_path, config, metrics_dir, owned).run()
