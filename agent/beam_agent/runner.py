"""`beam-agent run`: wires sensors, the queue, the push loop and telemetry, and stops cleanly.

Threads: one per sensor (scheduler), one writer (hand-off buffer -> SQLite queue), one
pusher (queue -> receiver), one telemetry (register, then heartbeats). The main thread waits
for a signal, pings the systemd watchdog while the other threads are alive, and on SIGTERM
shuts down in order so that everything read is either committed or was never given a seq.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any, Optional

from beam_agent import __version__, systemd
from beam_agent.buffer import HandoffBuffer
from beam_agent.config import AgentConfig
from beam_agent.push import Backoff, FailureLog, Pusher, ReceiverClient
from beam_agent.queue import ReadingQueue
from beam_agent.reading import Reading
from beam_agent.scheduler import Scheduler
from beam_agent.telemetry import heartbeat, local_ip_address, registration

log = logging.getLogger(__name__)

SHUTDOWN_BUDGET_S = 8.0  # the contract promises exit within 10 s of SIGTERM
WRITE_BATCH = 2000
WRITE_LINGER_S = 0.25
WRITE_IDLE_WAIT_S = 30.0  # an idle writer sleeps this long; a reading or close() wakes it
STATS_EVERY_S = 5.0


class Agent:
    def __init__(self, config: AgentConfig, stop_event: Optional[threading.Event] = None) -> None:
        self.config = config
        self.stop_event = stop_event or threading.Event()
        self.started_at = time.monotonic()
        self.queue = ReadingQueue(
            config.state_dir,
            config.queue.max_readings,
            config.queue.overflow,
            max_bytes=config.queue.max_bytes,
            min_free_bytes=config.queue.min_free_bytes,
        )
        self.buffer: HandoffBuffer[Reading] = HandoffBuffer()
        self.scheduler = Scheduler(config.sensors, config.device_id, self.buffer.put)
        self.client = ReceiverClient(
            config.api_url,
            config.device_id,
            config.read_token,
            config.push.timeout_s,
            __version__,
            ca_file=config.ca_file,
        )
        self.pusher = Pusher(
            self.queue, self.client, config.push.batch_size, config.push.interval_ms
        )
        self.writer_done = threading.Event()
        self.saved_stats: Optional[dict[str, dict[str, Any]]] = None
        self.threads = {
            "writer": threading.Thread(target=self._write_loop, name="writer", daemon=True),
            "pusher": threading.Thread(
                target=self.pusher.run, args=(self.stop_event,), name="pusher", daemon=True
            ),
            "telemetry": threading.Thread(
                target=self._telemetry_loop, name="telemetry", daemon=True
            ),
        }

    def run(self) -> int:
        install_stop_handlers(self.stop_event)
        for thread in self.threads.values():
            thread.start()
        self.scheduler.start()
        log.info(
            "agent %s started: %d sensors, pushing to %s",
            self.config.device_id,
            len(self.config.sensors),
            self.config.api_url,
        )
        systemd.ready(f"{len(self.config.sensors)} sensors")
        watchdog = systemd.watchdog_interval()
        tick = min(watchdog or STATS_EVERY_S, STATS_EVERY_S)
        while not self.stop_event.wait(tick):
            if watchdog and all(t.is_alive() for t in self.threads.values()):
                systemd.watchdog_ping()  # a dead writer or pusher lets systemd restart us
            self._save_sensor_stats()
        return self.shutdown()

    def shutdown(self) -> int:
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S
        systemd.stopping()
        self.queue.wake()  # an idle pusher sleeps until readings arrive: stop it now
        self.scheduler.stop(timeout=2.0)
        self.writer_done.set()
        self.buffer.close()
        self.threads["writer"].join(max(0.1, deadline - time.monotonic()))
        for name in ("pusher", "telemetry"):
            self.threads[name].join(max(0.1, deadline - time.monotonic()))
        self._save_sensor_stats()
        depth = self.queue_depth()  # before closing: a closed queue has no depth to tell
        if not self.threads["pusher"].is_alive():
            self.queue.close()
        log.info("agent stopped; %d readings queued for the next start", depth)
        return 0

    def queue_depth(self) -> int:
        try:
            return self.queue.depth()
        except Exception:  # closed already
            return -1

    def _write_loop(self) -> None:
        """Commit readings in groups; keep going until stopping and the buffer is empty."""
        while True:
            batch = self.buffer.take(WRITE_BATCH, wait_s=WRITE_IDLE_WAIT_S, linger_s=WRITE_LINGER_S)
            if batch:
                try:
                    self.queue.enqueue(batch)
                except Exception:
                    log.exception("could not write %d readings to the queue", len(batch))
                    self.buffer.put_back(batch)  # keep them, in order, for the next attempt
                    time.sleep(1.0)
            elif self.writer_done.is_set():
                return

    def _save_sensor_stats(self) -> None:
        """Write the sensors' statistics for `status`, only when they changed: a commit
        (and its fsync) every few seconds with nothing new is most of an idle agent's work."""
        stats = self.scheduler.stats()
        if stats == self.saved_stats:
            return
        try:
            self.queue.record_sensor_stats(stats)
        except Exception:
            log.exception("could not save sensor statistics")
        else:
            self.saved_stats = stats

    def _telemetry_loop(self) -> None:
        ip_address = local_ip_address(self.config.api_url)
        backoff = Backoff()
        failures = FailureLog()  # each problem is logged once, not every interval
        while not self.stop_event.is_set():  # register first; the receiver needs our tags
            outcome = self.client.post_json(
                "/api/nodes/register", registration(self.config, ip_address)
            )
            if outcome.ok:
                if failures.recovered():
                    log.info("registered with the receiver")
                break
            if failures.is_new(outcome.message):
                log.warning("registration failed, retrying: %s", outcome.message)
            if self.stop_event.wait(backoff.next_delay(outcome.retry_after)):
                return
        while not self.stop_event.is_set():
            body = heartbeat(
                self.config, self.status(), self.scheduler.stats(), self.started_at, ip_address
            )
            outcome = self.client.post_json("/api/telemetry", body)
            if outcome.ok:
                self.pusher.receiver_answered()
                if failures.recovered():
                    log.info("the receiver accepts heartbeats again")
            elif failures.is_new(outcome.message):
                log.warning("heartbeat failed: %s", outcome.message)
            self.stop_event.wait(self.config.telemetry.interval_s)

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.queue.status()
        result["handoff_refused"] = self.buffer.refused
        return result


def install_stop_handlers(stop_event: threading.Event) -> None:
    """SIGTERM and SIGINT ask for a clean stop; `cli` calls this before the heavy imports so
    a stop requested during start-up is honoured too (exit 0, not death by signal)."""

    def request_stop(signum: int, _frame: Optional[FrameType]) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop_event.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def run_agent(config: AgentConfig, stop_event: Optional[threading.Event] = None) -> int:
    return Agent(config, stop_event).run()
