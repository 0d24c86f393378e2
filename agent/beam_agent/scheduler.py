"""Runs every sensor on its own thread so that no driver can stop another or the push.

A polled driver is called every `interval_ms` (fixed rate, with jitter, missed ticks skipped
rather than bunched); each call runs on the sensor's one long-lived read thread (ReadCaller),
waited for at most `timeout_ms`, so a driver that hangs costs only its own sensor. A streaming
driver runs until it raises and is restarted after a back-off, which is how serial and TCP
sources reconnect. Every sensor has a token bucket (`max_rate_hz`) so a flooding driver
cannot drown the queue.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

from beam_agent.config import SensorConfig
from beam_agent.drivers import Driver
from beam_agent.reading import Reading, Sample, format_timestamp, utc_now

log = logging.getLogger(__name__)

Sink = Callable[[Reading], object]

MAX_BACKOFF_S = 60.0


@dataclass
class SensorStats:
    """What `status` and telemetry show per sensor."""

    readings: int = 0
    errors: int = 0
    timeouts: int = 0
    throttled: int = 0
    consecutive_errors: int = 0
    last_read: Optional[str] = None
    last_error: Optional[str] = None
    last_error_at: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenBucket:
    def __init__(self, rate_hz: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_hz
        self.capacity = max(rate_hz, 10.0)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def backoff_delay(interval_s: float, consecutive_errors: int) -> float:
    """Failing sensors wait twice as long after each error, up to a minute."""
    if consecutive_errors <= 0:
        return interval_s
    return min(max(interval_s, 1.0) * 2.0 ** min(consecutive_errors - 1, 16), MAX_BACKOFF_S)


class SensorWorker:
    """One configured sensor: its driver, its thread, its counters."""

    def __init__(
        self, sensor: SensorConfig, device_id: str, sink: Sink, stop: threading.Event
    ) -> None:
        self.sensor = sensor
        self.device_id = device_id
        self.sink = sink
        self.stop = stop
        self.stats = SensorStats()
        self.lock = threading.Lock()
        self.bucket = TokenBucket(sensor.max_rate_hz)
        self.thread = threading.Thread(target=self.run, name=f"sensor:{sensor.name}", daemon=True)
        self.driver: Optional[Driver] = None

    def emit(self, sample: Sample) -> None:
        with self.lock:
            if not self.bucket.take():
                self.stats.throttled += 1
                return
            self.stats.readings += 1
            self.stats.consecutive_errors = 0
            self.stats.last_read = format_timestamp(sample.timestamp)
        self.sink(Reading.from_sample(self.device_id, self.sensor.name, sample))

    def record_error(self, message: str, *, timeout: bool = False) -> int:
        with self.lock:
            self.stats.errors += 1
            self.stats.timeouts += int(timeout)
            self.stats.consecutive_errors += 1
            self.stats.last_error = message
            self.stats.last_error_at = format_timestamp(utc_now())
            count = self.stats.consecutive_errors
        if count == 1 or count % 10 == 0:  # do not flood the journal with a dead sensor
            log.warning("sensor %s: %s (%d in a row)", self.sensor.name, message, count)
        return count

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.stats.to_dict()

    def run(self) -> None:
        try:
            self.driver = self.sensor.create_driver()
        except Exception as exc:
            self.record_error(f"driver could not be created: {exc}")
            return
        try:
            if self.driver.streaming:
                self._run_stream(self.driver)
            else:
                self._run_polled(self.driver)
        finally:
            self._close(self.driver)

    def _close(self, driver: Driver) -> None:
        try:
            driver.close()
        except Exception as exc:
            log.warning("sensor %s: close failed: %s", self.sensor.name, exc)

    def _run_stream(self, driver: Driver) -> None:
        while not self.stop.is_set():
            try:
                driver.stream(self.emit, self.stop)
                if not self.stop.is_set():  # a plugin that returns early is not spun
                    self.record_error("stream ended without an error")
                    self._close(driver)
                    self.stop.wait(backoff_delay(1.0, self.stats.consecutive_errors))
            except Exception as exc:
                errors = self.record_error(describe(exc))
                self._close(driver)
                self.stop.wait(backoff_delay(1.0, errors))

    def _run_polled(self, driver: Driver) -> None:
        interval = self.sensor.interval_ms / 1000
        timeout = self.sensor.timeout_ms / 1000
        caller = ReadCaller(driver, f"read:{self.sensor.name}")
        # Start each sensor at a random phase so a fleet of sensors does not read in lockstep.
        next_due = time.monotonic() + random.uniform(0, min(interval, 1.0))
        try:
            self._poll(caller, interval, timeout, next_due)
        finally:
            caller.close()

    def _poll(self, caller: ReadCaller, interval: float, timeout: float, next_due: float) -> None:
        while not self.stop.wait(max(0.0, next_due - time.monotonic())):
            if caller.busy:
                errors = self.record_error("previous read still hung", timeout=True)
                next_due = time.monotonic() + backoff_delay(interval, errors)
                continue
            self._read(caller, timeout)
            errors = self.stats.consecutive_errors
            if errors:
                next_due = time.monotonic() + backoff_delay(interval, errors)
            else:
                next_due += interval
                now = time.monotonic()
                if next_due < now:  # overran: skip missed ticks instead of bunching them
                    next_due = now + interval - (now - next_due) % interval
                next_due += random.uniform(-0.05, 0.05) * interval

    def _read(self, caller: ReadCaller, timeout: float) -> None:
        if not caller.call(timeout):
            self.record_error(f"read timed out after {timeout:g} s", timeout=True)
            return
        if caller.error is not None:
            self.record_error(describe(caller.error))
            return
        samples = caller.samples
        if not isinstance(samples, list) or not all(isinstance(s, Sample) for s in samples):
            self.record_error(f"driver returned {type(samples).__name__}, not a list of Sample")
            return
        for sample in samples:
            self.emit(sample)


class ReadCaller:
    """Runs `driver.read()` on a long-lived daemon thread so a caller can stop waiting.

    A read that hangs in hardware cannot be interrupted; the caller gives up after its
    timeout and the thread stays `busy` until the read returns, so hung reads never pile up.
    """

    def __init__(self, driver: Driver, name: str) -> None:
        self.driver = driver
        self.requested = threading.Event()
        self.finished = threading.Event()
        self.samples: Any = None
        self.error: Optional[BaseException] = None
        self.busy = False
        self.closed = False
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def call(self, timeout: float) -> bool:
        """Start a read and wait for it; False if it is still running after `timeout`."""
        self.finished.clear()
        self.busy = True
        self.requested.set()
        return self.finished.wait(timeout)

    def close(self) -> None:
        """End the thread once any running read returns."""
        self.closed = True
        self.requested.set()

    def _serve(self) -> None:
        while True:
            self.requested.wait()
            self.requested.clear()
            if self.closed:
                return
            self.samples, self.error = None, None
            try:
                self.samples = self.driver.read()
            except Exception as exc:
                self.error = exc
            self.busy = False
            self.finished.set()


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Scheduler:
    """Starts one SensorWorker per configured sensor and stops them together."""

    def __init__(self, sensors: Sequence[SensorConfig], device_id: str, sink: Sink) -> None:
        self.stop_event = threading.Event()
        self.workers = [SensorWorker(s, device_id, sink, self.stop_event) for s in sensors]

    def start(self) -> None:
        for worker in self.workers:
            worker.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every sensor to stop; a driver stuck in hardware is left behind (daemon thread)."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))

    def stats(self) -> dict[str, dict[str, Any]]:
        return {worker.sensor.name: worker.snapshot() for worker in self.workers}


def read_once(sensor: SensorConfig, device_id: str) -> list[Reading]:
    """One read of one sensor for `beam-agent read-once`: no queue, no seq."""
    driver = sensor.create_driver()
    try:
        samples = driver.read()
    finally:
        driver.close()
    return [Reading.from_sample(device_id, sensor.name, s) for s in samples]
