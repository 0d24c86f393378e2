"""/healthz's write probe, run at most once a second per worker.

The probe is a real write (Storage.probe_write: 32 KiB, no fsync), and
/healthz needs no token. So that a client polling it fast cannot turn it into a write load
on the agents' database, or tie up a thread for busy_timeout_ms per request while the
database is locked, each worker probes at most once per PROBE_EVERY_S; requests in between
(and those that queued behind a probe) get that probe's result.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Union

from beam_receiver.storage import Storage

PROBE_EVERY_S = 1.0


class WriteProbe:
    """The last result of Storage.probe_write, renewed when it is older than every_s."""

    def __init__(
        self,
        database: Storage,
        every_s: float = PROBE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._probed_at = float("-inf")
        self._result: Union[int, Exception] = 0

    def check(self) -> int:
        """The schema version while the database takes writes; else the probe's error."""
        with self._lock:
            if self._clock() - self._probed_at >= self._every_s:
                try:
                    self._result = self._database.probe_write()
                except self._database.errors as exc:
                    self._result = exc
                self._probed_at = self._clock()
            result = self._result
        if isinstance(result, Exception):
            raise result.with_traceback(None)
        return result
