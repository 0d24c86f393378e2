"""Retention: readings older than `readings_retention_days` and heartbeat events older than
`telemetry_retention_days` are deleted, a small batch per transaction.

Each batch is one short write (BATCH_ROWS rows, oldest first, through an index), and the
pass pauses between batches, so ingest never waits behind more than one batch. The pass
runs in every gunicorn worker (`Pruner`, started by server.py) and as `beam-receiver
prune`. Two passes at once are harmless: each batch deletes whatever is still old.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from beam_receiver.config import ReceiverConfig
from beam_receiver.storage import Storage
from beam_receiver.timestamps import now_ms

log = logging.getLogger("beam_receiver.retention")

BATCH_ROWS = 1000
PAUSE_S = 0.05  # between batches: room for the writes queued behind one
EVERY_S = 600.0  # between passes in a worker
FIRST_AFTER_S = (30.0, 120.0)  # a worker's first pass: after start-up, not all at once
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Cutoffs:
    """Delete what is older than these epoch-ms instants; None keeps everything."""

    readings_before_ms: Optional[int]
    telemetry_before_ms: Optional[int]

    @classmethod
    def of(cls, config: ReceiverConfig, now: int) -> Cutoffs:
        def before(days: float) -> Optional[int]:
            return now - int(days * DAY_MS) if days > 0 else None

        return cls(before(config.readings_retention_days), before(config.telemetry_retention_days))


@dataclass(frozen=True)
class PruneResult:
    readings: int
    telemetry_events: int


def prune(
    storage: Storage,
    cutoffs: Cutoffs,
    batch_rows: int = BATCH_ROWS,
    pause_s: float = PAUSE_S,
    stop: Optional[threading.Event] = None,
) -> PruneResult:
    """One full pass: batches until nothing older than the cutoffs is left (or `stop`)."""
    wait: Callable[[float], bool] = (stop or threading.Event()).wait

    def drain(delete: Callable[[int, int], int], before_ms: Optional[int]) -> int:
        total = 0
        while before_ms is not None and not (stop and stop.is_set()):
            deleted = delete(before_ms, batch_rows)
            total += deleted
            if deleted < batch_rows or wait(pause_s):
                break
        return total

    readings = drain(storage.prune_readings, cutoffs.readings_before_ms)
    events = drain(storage.prune_telemetry, cutoffs.telemetry_before_ms)
    return PruneResult(readings, events)


class Pruner:
    """A daemon thread in a worker: a retention pass every EVERY_S seconds.

    A failed pass (database unavailable) is logged and tried again at the next one; the
    thread never takes the worker down.
    """

    def __init__(
        self,
        storage: Storage,
        config: ReceiverConfig,
        every_s: float = EVERY_S,
        first_after_s: Optional[float] = None,
    ) -> None:
        self.storage = storage
        self.config = config
        self.every_s = every_s
        self.first_after_s = (
            random.uniform(*FIRST_AFTER_S) if first_after_s is None else first_after_s
        )
        self.stop = threading.Event()
        self.passes = 0
        self.thread = threading.Thread(target=self._run, name="beam-retention", daemon=True)

    @property
    def needed(self) -> bool:
        return self.config.readings_retention_days > 0 or self.config.telemetry_retention_days > 0

    def start(self) -> None:
        if self.needed:
            self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _run(self) -> None:
        delay = self.first_after_s
        while not self.stop.wait(delay):
            delay = self.every_s
            try:
                result = prune(self.storage, Cutoffs.of(self.config, now_ms()), stop=self.stop)
            except self.storage.errors as exc:
                log.warning(
                    "retention pass failed: %s",
                    exc,
                    extra={"event": "retention_failed", "error": str(exc)},
                )
                continue
            self.passes += 1
            if result.readings or result.telemetry_events:
                log.info(
                    "retention pass deleted %d readings and %d heartbeat events",
                    result.readings,
                    result.telemetry_events,
                    extra={
                        "event": "retention",
                        "readings": result.readings,
                        "telemetry_events": result.telemetry_events,
                    },
                )
